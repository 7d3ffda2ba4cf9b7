// The guide's "Multiple Context Variables": context_variables =
// app.current_list_id,app.current_user_id (the proxy on MG_LIST_PORT), the
// username app_user.<list_id>:<user_id>, and the guide's policy on
// list_contacts: list_id = current_setting('app.current_list_id', true) AND
// has_list_access(list_id), which checks app.current_user_id.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { getListDb, endAllPools } from "../src/db.ts";
import { listContacts } from "../src/schema.ts";
import { direct, endDirect, names, rejection, wantError } from "./helpers.ts";

after(async () => {
  await endAllPools();
  await endDirect();
});

test("both variables are set from app_user.list123:user456", async () => {
  const db = getListDb("list123", "user456");
  const { rows } = await db.execute(sql`SELECT current_setting('app.current_list_id') AS list,
    current_setting('app.current_user_id') AS "user", current_user AS role`);
  assert.deepEqual(rows, [{ list: "list123", user: "user456", role: "app_user" }]);
});

test("the policy sees the list's rows only for a member of the list", async () => {
  assert.deepEqual(names(await getListDb("list123", "user456").select().from(listContacts)), ["Lena", "Liam"]);
  assert.deepEqual(names(await getListDb("list999", "user789").select().from(listContacts)), ["Otto"]);
  // user789 is not a member of list123: has_list_access is false.
  assert.deepEqual(await getListDb("list123", "user789").select().from(listContacts), []);
});

test("a member cannot write into another list", async () => {
  const db = getListDb("list123", "user456");
  const err = await rejection(db.insert(listContacts).values({ listId: "list999", name: "intruder" }), "insert into list999");
  wantError(err, "42501", 'new row violates row-level security policy for table "list_contacts"');
  const [row] = await db.insert(listContacts).values({ listId: "list123", name: "Lola" }).returning();
  assert.equal(row.listId, "list123");
  assert.deepEqual(await direct("SELECT name FROM list_contacts WHERE list_id = 'list999'"), [{ name: "Otto" }]);
  assert.deepEqual(await direct("SELECT list_id FROM list_contacts WHERE name = 'Lola'"), [{ list_id: "list123" }]);
});
