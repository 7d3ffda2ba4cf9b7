// Where multigres and PostgreSQL are, from the environment that
// node_test.go sets (see test/compat/internal/compatenv). The guide writes
// host "localhost", port 6432 and database "mydb"; the tests use the
// throwaway ones. Users and passwords are the guide's.
function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through \`go test ./test/compat/node\``);
  }
  return value;
}

export const multigres = {
  host: env("MG_HOST"),
  port: Number(env("MG_PORT")),
  listPort: Number(env("MG_LIST_PORT")), // context_variables = app.current_list_id,app.current_user_id
  database: env("MG_DATABASE"),
};

export const postgresDirect = {
  host: env("MG_PG_HOST"),
  port: Number(env("MG_PG_PORT")),
};

export const poolMode = env("MG_POOL_MODE"); // session or transaction
