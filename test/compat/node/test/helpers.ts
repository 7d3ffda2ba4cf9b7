// Shared by the tests: the guide's admin pools (through multigres as the
// superuser_bypass user, and straight to PostgreSQL), the ground truth the
// tests compare against, and small assertion helpers.
import assert from "node:assert/strict";
import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import * as schema from "../src/schema.ts";
import { multigres, postgresDirect } from "../src/config.ts";

const { Pool } = pg;

// The guide's "Admin / Worker Operations" pools.
export function adminPools() {
  // Admin pool — bypasses Multigres tenant extraction
  const adminPool = new Pool({
    host: multigres.host,
    port: multigres.port,           // through Multigres (bypass)
    user: "postgres",               // configured in superuser_bypass
    password: "postgres_password",
    database: multigres.database,
  });

  // Or connect directly to Postgres, skipping Multigres entirely
  const directPool = new Pool({
    host: postgresDirect.host,
    port: postgresDirect.port,      // direct to Postgres
    user: "postgres",
    password: "postgres_password",
    database: multigres.database,
  });

  const adminDb = drizzle(adminPool, { schema });
  const directDb = drizzle(directPool, { schema });
  return { adminPool, directPool, adminDb, directDb };
}

// direct runs sql as the superuser on PostgreSQL itself (past multigres)
// and returns the rows: the ground truth.
let directPool: pg.Pool | undefined;
export async function direct(sql: string, values: unknown[] = []): Promise<any[]> {
  directPool ??= new Pool({
    host: postgresDirect.host,
    port: postgresDirect.port,
    user: "postgres",
    password: "postgres_password",
    database: multigres.database,
    max: 2,
  });
  return (await directPool.query(sql, values)).rows;
}

export async function endDirect(): Promise<void> {
  const p = directPool;
  directPool = undefined;
  await p?.end();
}

// names is the sorted list of the rows' name fields.
export function names(rows: { name: string }[]): string[] {
  return rows.map((r) => r.name).sort();
}

// rejection awaits p, which must fail, and returns its error.
export async function rejection(p: Promise<unknown>, what: string): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail(`${what}: succeeded, want an error`);
}

// wantError checks a PostgreSQL error's SQLSTATE and message (a substring
// or a pattern). Drizzle wraps driver errors ("Failed query: ...") and
// keeps the driver's error as cause.
export function wantError(err: any, code: string, message: string | RegExp) {
  const pgErr = err?.code ? err : err?.cause;
  assert.ok(pgErr, `want a PostgreSQL error, got ${err}`);
  assert.equal(pgErr.code, code, `SQLSTATE of ${pgErr.message}`);
  if (typeof message === "string") {
    assert.ok(pgErr.message.includes(message), `message ${JSON.stringify(pgErr.message)} does not contain ${JSON.stringify(message)}`);
  } else {
    assert.match(pgErr.message, message);
  }
}
