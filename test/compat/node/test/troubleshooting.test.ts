// The guide's "Troubleshooting": each error as the guide prints it, and
// "Queries return zero rows" for a tenant without data.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTenantDb, endAllPools } from "../src/db.ts";
import { contacts } from "../src/schema.ts";
import { multigres } from "../src/config.ts";
import { adminPools, direct, endDirect, names, rejection, wantError } from "./helpers.ts";

after(async () => {
  await endAllPools();
  await endDirect();
});

// connectError connects as user to the proxy on port and returns the
// error the connection fails with.
async function connectError(user: string, port = multigres.port) {
  const client = new pg.Client({
    host: multigres.host, port, user, password: "app_user_password", database: multigres.database,
  });
  const err = await rejection(client.connect(), `connect as ${user}`);
  await client.end().catch(() => {});
  return err;
}

test(`"Username must contain context values separated by '.'"`, async () => {
  const err = await connectError("app_user");
  assert.equal(err.message, "Username must contain context values separated by '.'");
  assert.equal(err.code, "28000");
  assert.equal(err.severity, "FATAL");
  assert.match(err.detail, /app_user\.acme/);
});

test(`"Expected N context value(s), got M"`, async () => {
  let err = await connectError("app_user.val1:val2");
  assert.equal(err.message, "Expected 1 context value(s), got 2");
  assert.equal(err.code, "28000");
  // context_variables = a,b needs two values.
  err = await connectError("app_user.list123", multigres.listPort);
  assert.equal(err.message, "Expected 2 context value(s), got 1");
  assert.equal(err.code, "28000");
});

test("Queries return zero rows: a tenant without data", async () => {
  const db = createTenantDb("tenant_without_data");
  assert.deepEqual(await db.select().from(contacts), []);
  // 1. the tenant ID is what was asked for...
  const { rows } = await db.$client.query("SELECT current_tenant_id() AS tenant");
  assert.deepEqual(rows, [{ tenant: "tenant_without_data" }]);
  // 3. ...and connecting as postgres shows the data exists, for other tenants.
  const { adminPool, directPool, adminDb } = adminPools();
  try {
    assert.ok(names(await adminDb.select().from(contacts)).includes("Alice"));
  } finally {
    await adminPool.end();
    await directPool.end();
  }
});

test(`"permission denied for table X", fixed by multigres_protect`, async () => {
  const db = createTenantDb("acme");
  const err = await rejection(db.$client.query("SELECT * FROM notes"), "select from an unprotected table");
  wantError(err, "42501", "permission denied for table notes");
  assert.equal(err.message, "permission denied for table notes");
  await direct("SELECT multigres_protect('notes', 'tenant_id')");
  await direct("INSERT INTO notes (tenant_id, body) VALUES ('acme', 'for acme'), ('globex', 'for globex')");
  const { rows } = await db.$client.query("SELECT body FROM notes");
  assert.deepEqual(rows, [{ body: "for acme" }]);
});
