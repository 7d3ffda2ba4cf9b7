// postgres.js with Drizzle (drizzle-orm/postgres-js), with prepare: false
// (unnamed statements) and prepare: true (postgres.js's default: named
// server-side statements, reused).
import { test } from "node:test";
import assert from "node:assert/strict";
import postgres from "postgres";
import { drizzle } from "drizzle-orm/postgres-js";
import { eq, sql as dsql } from "drizzle-orm";
import * as schema from "../src/schema.ts";
import { multigres } from "../src/config.ts";
import { names, rejection, wantError } from "./helpers.ts";

const { contacts, auditLog } = schema;

function tenantSql(tenantId: string, prepare: boolean) {
  return postgres({
    host: multigres.host,
    port: multigres.port,
    user: `app_user.${tenantId}`,
    password: "app_user_password",
    database: multigres.database,
    prepare,
    max: 3,
  });
}

for (const prepare of [false, true]) {
  test(`postgres.js + Drizzle, prepare: ${prepare}`, async () => {
    const acmeSql = tenantSql("acme", prepare);
    const globexSql = tenantSql("globex", prepare);
    try {
      const acme = drizzle(acmeSql, { schema });
      const globex = drizzle(globexSql, { schema });
      assert.deepEqual(names(await acme.select().from(contacts)), ["Alice", "Bob"]);
      assert.deepEqual(names(await globex.select().from(contacts)), ["Gina"]);

      // The same parameterised statement many times (prepared once per
      // connection with prepare: true), from both tenants at once.
      await Promise.all(Array.from({ length: 30 }, async (_, i) => {
        const [db, tenant] = i % 2 ? [acme, "acme"] : [globex, "globex"];
        const rows = await db.select().from(contacts).where(eq(contacts.tenantId, tenant));
        assert.ok(rows.length > 0 && rows.every((r) => r.tenantId === tenant), `${tenant}: ${JSON.stringify(rows)}`);
        const other = await db.select().from(contacts).where(eq(contacts.id, tenant === "acme" ? 3 : 1));
        assert.deepEqual(other, [], `${tenant} reads the other tenant's row`);
      }));

      // Raw postgres.js tagged templates, parameterised.
      const rows = await acmeSql`SELECT name, current_tenant_id() AS tenant FROM contacts WHERE id = ANY(${[1, 2, 3]}::int[]) ORDER BY name`;
      assert.deepEqual([...rows], [{ name: "Alice", tenant: "acme" }, { name: "Bob", tenant: "acme" }]);

      // Writes for the other tenant fail; a transaction rolls back whole.
      const tenantId = `pgjs_${prepare}`;
      const mine = tenantSql(tenantId, prepare);
      try {
        const db = drizzle(mine, { schema });
        const err = await rejection(db.transaction(async (tx) => {
          await tx.insert(contacts).values({ name: "Pat", tenantId });
          await tx.insert(auditLog).values({ action: "contact_created", tenantId: "acme" });
        }), "postgres.js transaction writing for acme");
        wantError(err, "42501", "new row violates row-level security policy");
        await db.transaction(async (tx) => {
          await tx.insert(contacts).values({ name: "Pat", tenantId });
          await tx.insert(auditLog).values({ action: "contact_created", tenantId });
        });
        assert.deepEqual(names(await db.select().from(contacts)), ["Pat"]);
        const { tenant } = (await db.execute(dsql`SELECT current_tenant_id() AS tenant`))[0] as { tenant: string };
        assert.equal(tenant, tenantId);
      } finally {
        await mine.end();
      }
    } finally {
      await acmeSql.end();
      await globexSql.end();
    }
  });
}
