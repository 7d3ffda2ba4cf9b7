// The guide's "Pool-per-tenant vs pool-per-request": a cached Map of pools
// (max: 5) and a fresh pool per request (max: 1). Many tenants' queries run
// at the same time, and each sees only its own rows.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { getTenantDb, getRequestTenantDb, tenantPoolCount, endAllPools } from "../src/db.ts";
import { contacts } from "../src/schema.ts";
import { names } from "./helpers.ts";

after(endAllPools);

const want: Record<string, string[]> = { acme: ["Alice", "Bob"], globex: ["Gina"], pools_empty: [] };

// check runs one "request": the tenant's contacts and its context.
async function check(db: ReturnType<typeof getTenantDb>, tenant: string) {
  const rows = await db.select().from(contacts);
  assert.deepEqual(names(rows), want[tenant], tenant);
  const ctx = await db.execute(sql`SELECT current_tenant_id() AS tenant`);
  assert.deepEqual(ctx.rows, [{ tenant }]);
}

test("pool per tenant: one cached pool per tenant, max 5 connections", async () => {
  const acme = getTenantDb("acme");
  assert.equal(getTenantDb("acme"), acme, "the pool is cached");
  const tenants = Object.keys(want);
  // 60 concurrent requests over three tenants: each pool opens up to 5
  // connections, and they are reused.
  await Promise.all(Array.from({ length: 60 }, (_, i) => {
    const tenant = tenants[i % tenants.length];
    return check(getTenantDb(tenant), tenant);
  }));
  assert.equal(tenantPoolCount(), tenants.length);
  const pool = acme.$client;
  assert.ok(pool.totalCount >= 1 && pool.totalCount <= 5, `acme pool has ${pool.totalCount} connections`);
});

test("pool per request: a new max-1 pool for every request", async () => {
  const tenants = Object.keys(want);
  await Promise.all(Array.from({ length: 24 }, async (_, i) => {
    const tenant = tenants[i % tenants.length];
    const db = getRequestTenantDb(tenant);
    assert.equal(db.$client.options.max, 1);
    await check(db, tenant);
    await check(db, tenant); // the same single connection again
    assert.equal(db.$client.totalCount, 1);
    await db.$client.end();
  }));
});
