// db.ts: the guide's "Database connection" and "Pool-per-tenant vs
// pool-per-request" examples. The only differences from the guide are the
// host, port and database (the test's), and that every pool is remembered
// so that a test can end them all (endAllPools).
import { drizzle, NodePgDatabase } from "drizzle-orm/node-postgres";
import { Pool } from "pg";
import * as schema from "./schema.ts";
import { multigres } from "./config.ts";

const created = new Set<Pool>();
function track(pool: Pool): Pool {
  created.add(pool);
  return pool;
}

export async function endAllPools(): Promise<void> {
  const pools = [...created];
  created.clear();
  await Promise.all(pools.filter((p) => !p.ended).map((p) => p.end()));
}

export function createTenantDb(tenantId: string) {
  const pool = track(new Pool({
    host: multigres.host,
    port: multigres.port,                // Multigres port
    user: `app_user.${tenantId}`,        // tenant encoded in username
    password: "app_user_password",
    database: multigres.database,
  }));

  return drizzle(pool, { schema });
}

// Pool-per-tenant (recommended for most apps).
const tenantPools = new Map<string, NodePgDatabase<typeof schema>>();

export function getTenantDb(tenantId: string): NodePgDatabase<typeof schema> {
  let db = tenantPools.get(tenantId);
  if (!db) {
    const pool = track(new Pool({
      host: multigres.host,
      port: multigres.port,
      user: `app_user.${tenantId}`,
      password: "app_user_password",
      database: multigres.database,
      max: 5,                  // per-tenant pool size
      idleTimeoutMillis: 30000,
    }));
    db = drizzle(pool, { schema });
    tenantPools.set(tenantId, db);
  }
  return db;
}

export function tenantPoolCount(): number {
  return tenantPools.size;
}

// Single shared pool: a new pool per request with max: 1.
export function getRequestTenantDb(tenantId: string): NodePgDatabase<typeof schema> {
  const pool = track(new Pool({
    host: multigres.host,
    port: multigres.port,
    user: `app_user.${tenantId}`,
    password: "app_user_password",
    database: multigres.database,
    max: 1,
  }));
  return drizzle(pool, { schema });
}

// Multiple context variables: app_user.<list_id>:<user_id>, against the
// proxy configured with context_variables = app.current_list_id,app.current_user_id.
export function getListDb(listId: string, userId: string) {
  const pool = track(new Pool({
    host: multigres.host,
    port: multigres.listPort,
    user: `app_user.${listId}:${userId}`,
    password: "app_user_password",
    database: multigres.database,
  }));
  return drizzle(pool, { schema });
}
