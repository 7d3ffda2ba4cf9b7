// The guide's "Express Integration": the app from src/server.ts on a
// loopback port, driven with real HTTP requests (fetch).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { app } from "../src/server.ts";
import { endAllPools } from "../src/db.ts";
import { direct, endDirect, names } from "./helpers.ts";

let server: Server;
let base: string;

before(async () => {
  server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  server.close();
  await once(server, "close");
  await endAllPools();
  await endDirect();
});

async function call(method: string, path: string, tenant?: string) {
  const headers: Record<string, string> = tenant ? { "x-tenant-id": tenant } : {};
  const res = await fetch(base + path, { method, headers });
  return { status: res.status, body: await res.json() };
}

test("no x-tenant-id header: 400 Missing tenant ID", async () => {
  assert.deepEqual(await call("GET", "/contacts"), { status: 400, body: { error: "Missing tenant ID" } });
  assert.deepEqual(await call("DELETE", "/contacts/1"), { status: 400, body: { error: "Missing tenant ID" } });
});

test("GET /contacts returns only the tenant's contacts", async () => {
  for (const [tenant, want] of [["acme", ["Alice", "Bob"]], ["globex", ["Gina"]], ["acme", ["Alice", "Bob"]]] as const) {
    const { status, body } = await call("GET", "/contacts", tenant);
    assert.equal(status, 200);
    assert.deepEqual(names(body), want, tenant);
    assert.ok(body.every((c: any) => c.tenantId === tenant), JSON.stringify(body));
  }
});

test("DELETE /contacts/:id of another tenant's contact affects zero rows", async () => {
  const [gina] = await direct("SELECT id FROM contacts WHERE tenant_id = 'globex' AND name = 'Gina'");
  const res = await call("DELETE", `/contacts/${gina.id}`, "acme");
  assert.deepEqual(res, { status: 200, body: { ok: true } });
  // The row is still there (ground truth past the proxy), and globex still sees it.
  assert.deepEqual(await direct("SELECT name, tenant_id FROM contacts WHERE id = $1", [gina.id]),
    [{ name: "Gina", tenant_id: "globex" }]);
  assert.deepEqual(names((await call("GET", "/contacts", "globex")).body), ["Gina"]);
});

test("DELETE /contacts/:id of the tenant's own contact deletes it", async () => {
  const [row] = await direct(
    "INSERT INTO contacts (tenant_id, name) VALUES ('express_del', 'Temp') RETURNING id");
  assert.deepEqual(names((await call("GET", "/contacts", "express_del")).body), ["Temp"]);
  assert.deepEqual(await call("DELETE", `/contacts/${row.id}`, "express_del"), { status: 200, body: { ok: true } });
  assert.deepEqual(await direct("SELECT id FROM contacts WHERE id = $1", [row.id]), []);
});
