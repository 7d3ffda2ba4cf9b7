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

// onCitus says the suite runs through multigres in front of a Citus
// coordinator (test/compat/nodecitus) rather than a plain PostgreSQL.
export const onCitus = process.env.MG_UPSTREAM === "citus";

// wantError checks a PostgreSQL error's SQLSTATE and message (a substring
// or a pattern). Drizzle wraps driver errors ("Failed query: ...") and
// keeps the driver's error as cause. On Citus a worker reports the shard
// it ran on, so a quoted relation name in a string message also matches
// that relation's shard ("contacts" matches "contacts_102008"); the
// SQLSTATE and everything else must be the same as on PostgreSQL.
export function wantError(err: any, code: string, message: string | RegExp) {
  const pgErr = err?.code ? err : err?.cause;
  assert.ok(pgErr, `want a PostgreSQL error, got ${err}`);
  assert.equal(pgErr.code, code, `SQLSTATE of ${pgErr.message}`);
  if (typeof message === "string" && onCitus) {
    message = shardTolerant(message);
  }
  if (typeof message === "string") {
    assert.ok(pgErr.message.includes(message), `message ${JSON.stringify(pgErr.message)} does not contain ${JSON.stringify(message)}`);
  } else {
    assert.match(pgErr.message, message);
  }
}

// shardTolerant turns a message into a pattern in which every quoted
// name "x" also matches Citus' shard name "x_<shard id>".
function shardTolerant(message: string): RegExp {
  const parts = message.split(/("[^"]*")/);
  const pattern = parts.map((part) => {
    const quoted = /^"([^"]*)"$/.exec(part);
    return quoted ? `"${escapeRegExp(quoted[1])}(?:_\\d+)?"` : escapeRegExp(part);
  }).join("");
  return new RegExp(pattern);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// wantTenantChangeRefused checks the refusal of an UPDATE that moves a row
// to another tenant. PostgreSQL's row-level security refuses it (42501).
// On Citus, with the table distributed by its tenant column, Citus itself
// refuses it first: changing a row's distribution column is not supported
// there (0A000). Either way the row stays where it was, which the callers
// check against the ground truth.
export function wantTenantChangeRefused(err: any) {
  if (onCitus) {
    wantError(err, "0A000", "modifying the partition value of rows is not allowed");
    return;
  }
  wantError(err, "42501", "new row violates row-level security policy");
}
