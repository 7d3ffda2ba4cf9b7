// The guide's "Connection String Format": postgresql://app_user.acme:password@host:port/db,
// and app_user.list123%3Auser456 for two context variables, with
// node-postgres and postgres.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import postgres from "postgres";
import { drizzle } from "drizzle-orm/node-postgres";
import { contacts } from "../src/schema.ts";
import { multigres } from "../src/config.ts";
import { names } from "./helpers.ts";

const hostPort = (port: number) => `${multigres.host}:${port}`;
const acmeURL = `postgresql://app_user.acme:app_user_password@${hostPort(multigres.port)}/${multigres.database}`;
const listURL = `postgresql://app_user.list123%3Auser456:app_user_password@${hostPort(multigres.listPort)}/${multigres.database}`;

test("the %3A-encoded username decodes to app_user.list123:user456", () => {
  assert.equal(decodeURIComponent(new URL(listURL).username), "app_user.list123:user456");
});

test("node-postgres with a connection string", async () => {
  const pool = new pg.Pool({ connectionString: acmeURL });
  try {
    assert.deepEqual(names(await drizzle(pool).select().from(contacts)), ["Alice", "Bob"]);
  } finally {
    await pool.end();
  }
  const lists = new pg.Pool({ connectionString: listURL });
  try {
    const { rows } = await lists.query(
      "SELECT current_setting('app.current_list_id') AS list, current_setting('app.current_user_id') AS \"user\"");
    assert.deepEqual(rows, [{ list: "list123", user: "user456" }]);
    assert.deepEqual(names((await lists.query("SELECT name FROM list_contacts")).rows).filter((n) => n !== "Lola"),
      ["Lena", "Liam"]);
  } finally {
    await lists.end();
  }
});

test("postgres.js with a connection string", async () => {
  const sql = postgres(acmeURL, { max: 2 });
  try {
    assert.deepEqual(names(await sql`SELECT name FROM contacts`), ["Alice", "Bob"]);
  } finally {
    await sql.end();
  }
  const lists = postgres(listURL, { max: 1 });
  try {
    const rows = await lists`SELECT current_setting('app.current_list_id') AS list, current_setting('app.current_user_id') AS "user"`;
    assert.deepEqual([...rows], [{ list: "list123", user: "user456" }]);
  } finally {
    await lists.end();
  }
});
