// The guide's "Transactions": db.transaction with two inserts. Both commit,
// or, when the second fails, both roll back; the tenant context holds on
// every statement. Each case uses its own tenant so that the other test
// files' row counts are not disturbed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { createTenantDb, endAllPools } from "../src/db.ts";
import { contacts, auditLog } from "../src/schema.ts";
import { direct, endDirect, rejection, wantError } from "./helpers.ts";

after(async () => {
  await endAllPools();
  await endDirect();
});

async function groundTruth(tenantId: string) {
  const c = await direct("SELECT name FROM contacts WHERE tenant_id = $1 ORDER BY name", [tenantId]);
  const a = await direct("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY action", [tenantId]);
  return { contacts: c.map((r) => r.name), audit: a.map((r) => r.action) };
}

async function tenantOf(tx: { execute: (q: any) => Promise<any> }): Promise<string> {
  const { rows } = await tx.execute(sql`SELECT current_tenant_id() AS tenant`);
  return rows[0].tenant;
}

test("both inserts commit", async () => {
  const tenantId = "txn_commit";
  const db = createTenantDb(tenantId);
  await db.transaction(async (tx) => {
    // Both statements run on the same connection, same tenant context
    await tx.insert(contacts).values({ name: "Alice", tenantId, email: "a@b.com" });
    assert.equal(await tenantOf(tx), tenantId);
    await tx.insert(auditLog).values({ action: "contact_created", tenantId });
    assert.equal(await tenantOf(tx), tenantId);
  });
  assert.deepEqual(await groundTruth(tenantId), { contacts: ["Alice"], audit: ["contact_created"] });
  assert.deepEqual((await db.select().from(contacts)).map((c) => c.name), ["Alice"]);
});

test("the second insert fails: both roll back", async () => {
  const tenantId = "txn_rollback";
  const db = createTenantDb(tenantId);
  const err = await rejection(db.transaction(async (tx) => {
    await tx.insert(contacts).values({ name: "Alice", tenantId, email: "a@b.com" });
    await tx.insert(auditLog).values({ action: "", tenantId }); // CHECK (action <> '')
  }), "transaction with a failing second insert");
  wantError(err, "23514", "audit_log_action_check");
  assert.deepEqual(await groundTruth(tenantId), { contacts: [], audit: [] });
  // The pool's connection is fine afterwards, still scoped.
  assert.deepEqual(await db.select().from(contacts), []);
  assert.equal(await tenantOf(db), tenantId);
});

test("a row for another tenant fails the transaction (RLS WITH CHECK) and rolls it back", async () => {
  const tenantId = "txn_cross";
  const db = createTenantDb(tenantId);
  const err = await rejection(db.transaction(async (tx) => {
    await tx.insert(contacts).values({ name: "Carl", tenantId });
    await tx.insert(auditLog).values({ action: "contact_created", tenantId: "acme" });
  }), "transaction writing acme's audit log");
  wantError(err, "42501", 'new row violates row-level security policy for table "audit_log"');
  assert.deepEqual(await groundTruth(tenantId), { contacts: [], audit: [] });
  assert.deepEqual(await groundTruth("acme"), { contacts: ["Alice", "Bob"], audit: [] });
});

test("explicit rollback, and concurrent transactions of different tenants", async () => {
  const tenants = ["txn_a", "txn_b", "txn_c", "txn_d"];
  await Promise.all(tenants.map(async (tenantId, i) => {
    const db = createTenantDb(tenantId);
    for (let round = 0; round < 3; round++) {
      await db.transaction(async (tx) => {
        await tx.insert(contacts).values({ name: `c${round}`, tenantId });
        await new Promise((r) => setImmediate(r)); // let the other tenants interleave
        assert.equal(await tenantOf(tx), tenantId);
        await tx.insert(auditLog).values({ action: `a${round}`, tenantId });
        if (round === 1 && i % 2 === 0) {
          tx.rollback(); // throws; drizzle rolls the transaction back
        }
      }).catch((err) => {
        if (!(round === 1 && i % 2 === 0)) throw err;
      });
    }
    const want = i % 2 === 0 ? ["c0", "c2"] : ["c0", "c1", "c2"];
    assert.deepEqual((await db.select().from(contacts)).map((c) => c.name).sort(), want, tenantId);
    assert.deepEqual(await groundTruth(tenantId),
      { contacts: want, audit: want.map((c) => "a" + c.slice(1)) });
  }));
});
