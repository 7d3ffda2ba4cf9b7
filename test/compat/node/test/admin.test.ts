// The guide's "Admin / Worker Operations": the superuser_bypass user
// (postgres) through multigres, and a pool straight to PostgreSQL, both
// see every tenant's rows.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { inArray, sql } from "drizzle-orm";
import { contacts } from "../src/schema.ts";
import { adminPools, names } from "./helpers.ts";

const { adminPool, directPool, adminDb, directDb } = adminPools();
after(async () => {
  await adminPool.end();
  await directPool.end();
});

test("the bypass pool through multigres and the direct pool see all tenants", async () => {
  for (const [what, db] of [["through multigres", adminDb], ["direct", directDb]] as const) {
    // This sees ALL tenants' data — no RLS filtering
    const allContacts = await db.select().from(contacts);
    const tenants = new Set(allContacts.map((c) => c.tenantId));
    assert.ok(tenants.has("acme") && tenants.has("globex"), `${what}: tenants ${[...tenants]}`);
    const seed = allContacts.filter((c) => c.id <= 3);
    assert.deepEqual(names(seed), ["Alice", "Bob", "Gina"], what);
    assert.deepEqual(names(await db.select().from(contacts).where(inArray(contacts.id, [1, 2, 3]))),
      ["Alice", "Bob", "Gina"], what);
  }
});

test("the bypass user is the superuser without tenant context", async () => {
  const { rows } = await adminDb.execute(sql`SELECT current_user AS role, current_tenant_id() AS tenant`);
  assert.deepEqual(rows, [{ role: "postgres", tenant: null }]);
});
