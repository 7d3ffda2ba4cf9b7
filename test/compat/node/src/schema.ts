// schema.ts: the guide's schema, plus the tables the other examples use.
import { pgTable, serial, text, varchar } from "drizzle-orm/pg-core";

export const contacts = pgTable("contacts", {
  id: serial("id").primaryKey(),
  tenantId: varchar("tenant_id", { length: 255 }).notNull(),
  name: text("name").notNull(),
  email: text("email"),
});

// The Transactions example's second table (protected with
// multigres_protect('audit_log', 'tenant_id'); action must not be empty).
export const auditLog = pgTable("audit_log", {
  id: serial("id").primaryKey(),
  tenantId: varchar("tenant_id", { length: 255 }).notNull(),
  action: text("action").notNull(),
});

// The Multiple Context Variables example: the guide's policy on list_id
// and has_list_access(list_id).
export const listContacts = pgTable("list_contacts", {
  id: serial("id").primaryKey(),
  listId: text("list_id").notNull(),
  name: text("name").notNull(),
});
