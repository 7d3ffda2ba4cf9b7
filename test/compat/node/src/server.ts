// server.ts: the guide's Express integration. Added to the guide's text:
// the imports of contacts and eq (the guide leaves them out) and the export
// of app, so that a test can listen on a loopback port.
import express from "express";
import { eq } from "drizzle-orm";
import { createTenantDb } from "./db.ts";
import { contacts } from "./schema.ts";

const app = express();

// Middleware: resolve tenant, attach scoped db to request
app.use((req, res, next) => {
  const tenantId = req.headers["x-tenant-id"] as string;
  if (!tenantId) {
    return res.status(400).json({ error: "Missing tenant ID" });
  }

  // Create a tenant-scoped db — every query through this instance
  // is isolated to this tenant by the database, not by your code
  req.db = createTenantDb(tenantId);
  next();
});

// Routes just use req.db — no tenant filtering needed
app.get("/contacts", async (req, res) => {
  const result = await req.db.select().from(contacts);
  res.json(result);
  // Returns ONLY this tenant's contacts. Guaranteed.
});

app.delete("/contacts/:id", async (req, res) => {
  await req.db.delete(contacts).where(eq(contacts.id, req.params.id));
  // Can only delete this tenant's contacts. Even if the ID belongs
  // to another tenant, the DELETE affects zero rows.
  res.json({ ok: true });
});

export { app };
