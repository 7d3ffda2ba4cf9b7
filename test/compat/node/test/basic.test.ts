// The guide's "Basic Setup": the contacts schema protected with
// multigres_protect('contacts', 'tenant_id'), createTenantDb(tenantId) with
// user `app_user.${tenantId}`, and db.select().from(contacts) returning only
// the tenant's rows, through node-postgres and Drizzle.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { eq, sql } from "drizzle-orm";
import { createTenantDb, endAllPools } from "../src/db.ts";
import { contacts } from "../src/schema.ts";
import { direct, endDirect, names, rejection, wantError, wantTenantChangeRefused } from "./helpers.ts";

after(async () => {
  await endAllPools();
  await endDirect();
});

test("db.select().from(contacts) returns only the tenant's contacts", async () => {
  for (const [tenant, want] of [["acme", ["Alice", "Bob"]], ["globex", ["Gina"]]] as const) {
    const db = createTenantDb(tenant);
    const allContacts = await db.select().from(contacts);
    assert.deepEqual(names(allContacts), want, tenant);
    assert.ok(allContacts.every((c) => c.tenantId === tenant), `${tenant} got ${JSON.stringify(allContacts)}`);
  }
  // The table really holds all three (ground truth past the proxy).
  const all = await direct("SELECT name FROM contacts WHERE id <= 3");
  assert.deepEqual(names(all), ["Alice", "Bob", "Gina"]);
});

test("the connection carries the tenant context and the role", async () => {
  const db = createTenantDb("acme");
  const { rows } = await db.$client.query(
    "SELECT current_tenant_id() AS tenant, current_user AS role, current_setting('app.current_tenant_id') AS setting");
  assert.deepEqual(rows, [{ tenant: "acme", role: "app_user", setting: "acme" }]);
});

test("another tenant's rows cannot be read, changed, deleted or created", async () => {
  const db = createTenantDb("acme");
  assert.deepEqual(await db.select().from(contacts).where(eq(contacts.id, 3)), []);
  const updated = await db.update(contacts).set({ name: "pwned" }).where(eq(contacts.id, 3));
  assert.equal(updated.rowCount, 0);
  const deleted = await db.delete(contacts).where(eq(contacts.id, 3));
  assert.equal(deleted.rowCount, 0);
  const moved = await rejection(db.update(contacts).set({ tenantId: "globex" }).where(eq(contacts.id, 1)),
    "moving acme's row to globex");
  wantTenantChangeRefused(moved);
  const err = await rejection(db.insert(contacts).values({ tenantId: "globex", name: "intruder" }), "insert for globex");
  wantError(err, "42501", 'new row violates row-level security policy for table "contacts"');
  assert.deepEqual(await direct("SELECT tenant_id, name FROM contacts WHERE id IN (1, 3) ORDER BY id"),
    [{ tenant_id: "acme", name: "Alice" }, { tenant_id: "globex", name: "Gina" }]);
  assert.deepEqual(await direct("SELECT count(*)::int AS n FROM contacts WHERE name = 'intruder'"), [{ n: 0 }]);
});

test("a tenant writes its own rows with the tenant column it names", async () => {
  const db = createTenantDb("basic_writer");
  const [row] = await db.insert(contacts)
    .values({ tenantId: "basic_writer", name: "Wanda", email: "w@example.test" }).returning();
  assert.equal(row.tenantId, "basic_writer");
  assert.deepEqual(names(await db.select().from(contacts)), ["Wanda"]);
  assert.deepEqual(names(await createTenantDb("acme").select().from(contacts)), ["Alice", "Bob"]);
});

test("node-postgres named prepared statements, reused across calls", async () => {
  const db = createTenantDb("acme");
  for (let i = 0; i < 8; i++) {
    const { rows } = await db.$client.query({
      name: "contacts-by-ids",
      text: "SELECT name FROM contacts WHERE id = ANY($1::int[]) ORDER BY name",
      values: [[1, 2, 3]],
    });
    assert.deepEqual(names(rows), ["Alice", "Bob"], `execution ${i + 1}`);
  }
  // Drizzle's sql template with a parameter (unnamed extended protocol).
  const { rows } = await db.execute(sql`SELECT count(*)::int AS n FROM ${contacts} WHERE ${contacts.id} <> ${0}`);
  assert.deepEqual(rows, [{ n: 2 }]);
});
