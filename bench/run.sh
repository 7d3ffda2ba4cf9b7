#!/usr/bin/env bash
# bench/run.sh: pgbench side by side against direct PostgreSQL, PgBouncer and
# multigres (guard on, guard off, signed context), interleaved in one run on
# this machine (`make bench`).
#
# It starts a throwaway PostgreSQL cluster, PgBouncer and three multigres
# instances on free 127.0.0.1 ports, loads `pgbench -i -s 10`, puts
# pgbench_accounts under a multigres tenant policy (RLS really on), copies
# that database to a second one with signed context on, and then, for every
# round, runs every test against each of its targets in rotating order. The
# table reports the median TPS per (test, target) and is appended to
# docs/benchmarks.md.
#
# Usage: bash bench/run.sh [--quick] [--no-docs]
#   --quick    1 round of 3 s per run, for smoke tests (does not write the docs
#              unless BENCH_DOCS=1)
#   --no-docs  print the table only
# Environment:
#   BENCH_ROUNDS   rounds (default 3)          BENCH_SECONDS  -T per run (default 10)
#   BENCH_CLIENTS  -c (default 16)             BENCH_THREADS  -j (default 2)
#   BENCH_SCALE    pgbench -i -s (default 10)  BENCH_DOCS     1/0: write docs/benchmarks.md
#   MULTIGRES_BIN  proxy binary (default bin/multigres)
#   BENCH_KEEP_LOGS=1  keep the temp dir's logs (pgbench, PgBouncer, multigres)
#
# Extending: a target is one `target` line plus a function printing
# "host port user [dbname]" (see "Targets" below); a test is one `bench_test`
# line, optionally limited to some targets; a ratio column is one `ratio`
# line; another proxy instance is one more `start_multigres NAME --flag=value`
# call.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-16}
THREADS=${BENCH_THREADS:-2}
SCALE=${BENCH_SCALE:-10}
# Connection limits follow the client count, with room for the checks.
MAX_CONN=$(( CLIENTS + 40 > 200 ? CLIENTS + 40 : 200 ))
MULTIGRES_BIN=${MULTIGRES_BIN:-$ROOT/bin/multigres}
# multigres reads MULTIGRES_* variables as config and refuses unknown ones:
# keep the script's own setting out of the children's environment.
export -n MULTIGRES_BIN
DOCS_FILE=$ROOT/docs/benchmarks.md
WRITE_DOCS=${BENCH_DOCS:-}
QUICK=0

for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-docs) WRITE_DOCS=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "bench: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  ROUNDS=${BENCH_ROUNDS_QUICK:-1}
  SECS=${BENCH_SECONDS_QUICK:-3}
  WRITE_DOCS=${WRITE_DOCS:-0}
fi
WRITE_DOCS=${WRITE_DOCS:-1}

# Throwaway credentials: every server listens on 127.0.0.1 only and is
# destroyed on exit.
SUPER_PW=bench_super_password
APP_PW=bench_app_password
AUTH_PW=bench_auth_password
DB=bench
# SIGNED_DB holds the same data as DB, with signed context on (multigres init
# --context-signing). Signing is per database, and once on, unsigned
# connections read a NULL tenant there: so only the signing target uses it.
SIGNED_DB=bench_signed
TENANT=bench

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Tools. PostgreSQL and PgBouncer refuse to run as root: as root they run as
# the postgres OS user.
# ---------------------------------------------------------------------------
find_pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir)
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  die "PostgreSQL server binaries (initdb) not found; run scripts/ensure-deps.sh postgres"
}
PG_BIN=$(find_pg_bindir)
PGBOUNCER_BIN=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)
[ -x "$PGBOUNCER_BIN" ] || die "pgbouncer not found; run scripts/ensure-deps.sh pgbouncer"
[ -x "$MULTIGRES_BIN" ] || die "$MULTIGRES_BIN not found; run make build"
PGBENCH="$PG_BIN/pgbench"; [ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench)
PSQL="$PG_BIN/psql"; [ -x "$PSQL" ] || PSQL=$(command -v psql)

RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the postgres OS user"
  RUN_AS=(runuser -u postgres --)
fi
as_pg() { "${RUN_AS[@]}" "$@"; }
# give_pg FILE...: files the postgres OS user must read (when running as root).
give_pg() { if [ ${#RUN_AS[@]} -gt 0 ]; then chown postgres: "$@"; fi; }

# Clients never negotiate TLS or GSS: the same plaintext TCP path for every
# target, so the comparison is about the proxies, not about encryption.
export PGSSLMODE=disable PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10
unset PGOPTIONS PGSERVICE PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE || true

# ---------------------------------------------------------------------------
# Temp dir and cleanup: every process this script starts is stopped on exit.
# ---------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/multigres-bench.XXXXXX)
chmod 700 "$TMP"
give_pg "$TMP"
declare -a KILL_PIDS=()
PG_STARTED=0

cleanup() {
  local rc=$? pid
  set +e
  for pid in "${KILL_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  if [ -f "$TMP/pgbouncer.pid" ]; then
    kill -TERM "$(cat "$TMP/pgbouncer.pid")" 2>/dev/null
  fi
  for pid in "${KILL_PIDS[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  done
  if [ "$PG_STARTED" = 1 ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$TMP/data" -m immediate -t 30 stop >/dev/null 2>&1
  fi
  if [ "${BENCH_KEEP_LOGS:-0}" = 1 ]; then
    rm -rf "$TMP/data"
    log "logs kept in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints an unused TCP port on 127.0.0.1 below the ephemeral range,
# different from every port handed out before.
declare -a USED_PORTS=()
free_port() {
  local p i
  for i in $(seq 1 500); do
    p=$((20000 + RANDOM % 12000))
    [[ " ${USED_PORTS[*]} " == *" $p "* ]] && continue
    if ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then continue; fi
    USED_PORTS+=("$p")
    echo "$p"
    return
  done
  die "no free port found"
}

# wait_port waits (bounded) until something accepts TCP connections on port.
wait_port() {
  local port=$1 what=$2 i
  for i in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$what did not listen on 127.0.0.1:$port within 30 s"
}

# psql_as USER PASSWORD PORT SQL [DBNAME]: one result value, unaligned.
psql_as() {
  PGPASSWORD=$2 timeout 60 "$PSQL" -X -q -v ON_ERROR_STOP=1 -At \
    -h 127.0.0.1 -p "$3" -U "$1" -d "${5:-$DB}" -c "$4"
}
super_sql() { psql_as postgres "$SUPER_PW" "$PG_PORT" "$1"; }

# ---------------------------------------------------------------------------
# PostgreSQL: throwaway cluster tuned like a benchmark box. fsync,
# synchronous_commit and full_page_writes are off: -S never writes, and the
# data is thrown away.
# ---------------------------------------------------------------------------
start_postgres() {
  PG_PORT=$(free_port)
  printf '%s\n' "$SUPER_PW" >"$TMP/pwfile"
  give_pg "$TMP/pwfile"
  log "initdb ($PG_BIN)"
  as_pg "$PG_BIN/initdb" -D "$TMP/data" -U postgres --pwfile="$TMP/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
  rm -f "$TMP/pwfile"
  cat >>"$TMP/data/postgresql.conf" <<EOF
# bench/run.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP'
max_connections = $MAX_CONN
password_encryption = 'scram-sha-256'
shared_buffers = 256MB
effective_cache_size = 1GB
work_mem = 8MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 2GB
checkpoint_timeout = 30min
autovacuum = off
log_min_messages = warning
log_connections = off
log_disconnections = off
ssl = off
EOF
  cat >"$TMP/data/pg_hba.conf" <<EOF
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
EOF
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$TMP/data" -l "$TMP/postgres.log" -w -t 60 start >/dev/null ||
    { tail -n 30 "$TMP/postgres.log" >&2; die "PostgreSQL did not start"; }
  PG_STARTED=1
}

# ---------------------------------------------------------------------------
# Data: pgbench tables, multigres init, and a tenant policy on
# pgbench_accounts. Every row belongs to tenant "bench", so all three paths
# read the same rows through the same RLS policy as the same role app_user.
# ---------------------------------------------------------------------------
load_data() {
  psql_as postgres "$SUPER_PW" "$PG_PORT" "CREATE DATABASE $DB" postgres >/dev/null
  log "pgbench -i -s $SCALE"
  PGPASSWORD=$SUPER_PW timeout 600 "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" \
    -U postgres "$DB" >"$TMP/pgbench-init.log" 2>&1 ||
    { tail -n 20 "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }
  log "multigres init"
  timeout 120 "$MULTIGRES_BIN" init \
    --database-url "postgres://postgres:$SUPER_PW@127.0.0.1:$PG_PORT/$DB?sslmode=disable" \
    --auth-password "$AUTH_PW" >"$TMP/init.log" 2>&1 ||
    { cat "$TMP/init.log" >&2; die "multigres init failed"; }
  log "protecting pgbench_accounts (tenant_id = 'bench' on every row)"
  super_sql "
    ALTER ROLE app_user PASSWORD '$APP_PW';
    ALTER TABLE pgbench_accounts ADD COLUMN tenant_id text NOT NULL DEFAULT '$TENANT';
    CREATE INDEX pgbench_accounts_tenant_aid ON pgbench_accounts (tenant_id, aid);
    SELECT multigres_protect('pgbench_accounts', 'tenant_id');
    GRANT SELECT, INSERT, UPDATE, DELETE ON pgbench_branches, pgbench_tellers, pgbench_history TO app_user;
    -- Direct and PgBouncer clients log in as plain app_user; this default
    -- gives them the tenant that multigres sets from app_user.$TENANT. A
    -- role setting survives PgBouncer's DISCARD ALL (a startup 'options'
    -- parameter would not pass PgBouncer at all).
    ALTER ROLE app_user IN DATABASE $DB SET app.current_tenant_id = '$TENANT';" >/dev/null
  super_sql "VACUUM ANALYZE" >/dev/null
  # The signed database is a copy (same rows, index, policy, grants and
  # statistics), then init --context-signing on it. Nothing is connected to
  # DB yet, so it can serve as a template. Database ACLs (the TEMPORARY
  # revoke) are not copied, so the second init hardens it again.
  log "creating $SIGNED_DB (copy of $DB) with signed context"
  psql_as postgres "$SUPER_PW" "$PG_PORT" "CREATE DATABASE $SIGNED_DB TEMPLATE $DB" postgres >/dev/null
  timeout 120 "$MULTIGRES_BIN" init --context-signing \
    --database-url "postgres://postgres:$SUPER_PW@127.0.0.1:$PG_PORT/$SIGNED_DB?sslmode=disable" \
    --auth-password "$AUTH_PW" >"$TMP/init-signed.log" 2>&1 ||
    { cat "$TMP/init-signed.log" >&2; die "multigres init --context-signing failed"; }
  # The same role default as in DB: with signing on it must not help a
  # direct login (check_paths expects 0 rows there).
  super_sql "ALTER ROLE app_user IN DATABASE $SIGNED_DB SET app.current_tenant_id = '$TENANT'" >/dev/null
  super_sql "CHECKPOINT" >/dev/null
}

# ---------------------------------------------------------------------------
# PgBouncer, session mode, SCRAM userlist with the verifier from pg_authid
# (so it also logs in upstream with SCRAM passthrough, like multigres).
# ---------------------------------------------------------------------------
start_pgbouncer() {
  PGB_PORT=$(free_port)
  local verifier
  verifier=$(super_sql "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'")
  [[ "$verifier" == SCRAM-SHA-256* ]] || die "app_user has no SCRAM verifier"
  printf '"app_user" "%s"\n' "$verifier" >"$TMP/userlist.txt"
  cat >"$TMP/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $TMP/userlist.txt
pool_mode = session
default_pool_size = $((CLIENTS + 4))
max_client_conn = $MAX_CONN
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
client_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
logfile = $TMP/pgbouncer.log
pidfile = $TMP/pgbouncer.pid
EOF
  give_pg "$TMP/userlist.txt" "$TMP/pgbouncer.ini"
  log "starting PgBouncer on 127.0.0.1:$PGB_PORT"
  as_pg "$PGBOUNCER_BIN" -d -q "$TMP/pgbouncer.ini" >"$TMP/pgbouncer.out" 2>&1 ||
    { cat "$TMP/pgbouncer.out" "$TMP/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not start"; }
  wait_port "$PGB_PORT" PgBouncer
}

# ---------------------------------------------------------------------------
# multigres instances: start_multigres NAME [extra serve flags...]. The port
# lands in MG_PORT[NAME]. Boolean flags take a value only with `=`
# (--guard=off).
# ---------------------------------------------------------------------------
declare -A MG_PORT=()
start_multigres() {
  local name=$1; shift
  local port
  port=$(free_port)
  log "starting multigres[$name] on 127.0.0.1:$port $*"
  "$MULTIGRES_BIN" serve --listen-host 127.0.0.1 --port "$port" \
    --upstream-host 127.0.0.1 --upstream-port "$PG_PORT" \
    --auth-password "$AUTH_PW" --server-tls-mode disable --client-tls-mode disable \
    --log-level warn "$@" >"$TMP/multigres-$name.log" 2>&1 &
  KILL_PIDS+=("$!")
  MG_PORT[$name]=$port
  wait_port "$port" "multigres[$name]"
}

# ---------------------------------------------------------------------------
# Targets: `target NAME LABEL FUNCTION`; FUNCTION prints "host port user
# [dbname]" (default DB). All use the password of app_user. Order here is the
# column order.
# ---------------------------------------------------------------------------
declare -a TARGETS=()
declare -A TARGET_LABEL=() TARGET_FN=()
target() { TARGETS+=("$1"); TARGET_LABEL[$1]=$2; TARGET_FN[$1]=$3; }

conn_direct()    { echo "127.0.0.1 $PG_PORT app_user"; }
conn_pgbouncer() { echo "127.0.0.1 $PGB_PORT app_user"; }
conn_multigres() { echo "127.0.0.1 ${MG_PORT[session]} app_user.$TENANT"; }
conn_mg_noguard() { echo "127.0.0.1 ${MG_PORT[noguard]} app_user.$TENANT"; }
conn_mg_signed()  { echo "127.0.0.1 ${MG_PORT[signed]} app_user.$TENANT $SIGNED_DB"; }

target direct     "direct"              conn_direct
target pgbouncer  "PgBouncer"           conn_pgbouncer
target multigres  "multigres"           conn_multigres
target mg_noguard "multigres guard off" conn_mg_noguard
target mg_signed  "multigres signed"    conn_mg_signed

# Ratio columns: `ratio LABEL A B` is the median TPS of A divided by B's.
# Signing on vs off compares multigres signed (SIGNED_DB) with multigres
# (DB): the same rows, index and policy; the difference is the signed
# reader and the MAC the proxy sets. An unsigned proxy cannot serve as the
# "off" side on SIGNED_DB, because it would read 0 rows there.
declare -a RATIOS=()
declare -A RATIO_LABEL=()
ratio() { RATIOS+=("$2/$3"); RATIO_LABEL["$2/$3"]=$1; }
ratio "multigres/direct"    multigres direct
ratio "multigres/PgBouncer" multigres pgbouncer
ratio "guard on/off"        multigres mg_noguard
ratio "signing on/off"      mg_signed multigres

# ---------------------------------------------------------------------------
# Tests: `bench_test NAME "pgbench flags" [TARGET...]` (default: every
# target). -S is the built-in select-only script. With -C pgbench opens a
# new connection for every transaction and its tps includes the connection
# time.
#
# -S's statement has nothing the guard's pre-filter flags, so the guard never
# parses it. GUARD_SCRIPT is the guard's hard case: a statement that the
# pre-filter sends to pg_query (it contains "set") and that the guard
# allows. Verdicts are cached by statement text: with -M simple the text
# carries the aid, so almost every statement misses the cache and is parsed
# (worst case); with -M extended the Parse text is constant and hits.
# ---------------------------------------------------------------------------
GUARD_SQL="SELECT abalance FROM pgbench_accounts WHERE aid = :aid AND current_setting('search_path') IS NOT NULL;"
GUARD_SCRIPT=$TMP/guard-parsed.sql
printf '\\set aid random(1, %d)\n%s\n' $((100000 * SCALE)) "$GUARD_SQL" >"$GUARD_SCRIPT"

declare -a TESTS=()
declare -A TEST_FLAGS=() TEST_TARGETS=()
bench_test() {
  local name=$1 flags=$2; shift 2
  TESTS+=("$name"); TEST_FLAGS[$name]=$flags
  if [ $# -gt 0 ]; then TEST_TARGETS[$name]="$*"; else TEST_TARGETS[$name]="${TARGETS[*]}"; fi
}

bench_test "-S simple"        "-S -M simple"
bench_test "-S extended"      "-S -M extended"
# -C measures logins; the guard and signing do not change them much, and 5
# targets x 10 s of -C would add ~2 min per round: original three only.
bench_test "-S -C simple"     "-S -C -M simple" direct pgbouncer multigres
bench_test "guard-parsed simple"   "-f $GUARD_SCRIPT -M simple"   multigres mg_noguard
bench_test "guard-parsed extended" "-f $GUARD_SCRIPT -M extended" multigres mg_noguard
# e.g. bench_test "-S prepared" "-S -M prepared"

# test_label TEST: the pgbench flags as shown in the table (the temp path of
# the custom script replaced by its name).
test_label() { local f=${TEST_FLAGS[$1]}; echo "${f//$GUARD_SCRIPT/guard-parsed.sql}"; }

# ---------------------------------------------------------------------------
# Sanity: every path returns the same rows, RLS is really on, and multigres
# sets the tenant itself (another tenant sees nothing).
# ---------------------------------------------------------------------------
check_paths() {
  local want name host port user db got
  want=$(super_sql "SELECT count(*) FROM pgbench_accounts")
  [ "$want" -gt 0 ] || die "pgbench_accounts is empty"
  got=$(psql_as postgres "$SUPER_PW" "$PG_PORT" "SELECT count(*) FROM pgbench_accounts" "$SIGNED_DB")
  [ "$got" = "$want" ] || die "$SIGNED_DB has $got rows, $DB has $want"
  for name in "${TARGETS[@]}"; do
    read -r host port user db < <("${TARGET_FN[$name]}")
    db=${db:-$DB}
    got=$(psql_as "$user" "$APP_PW" "$port" "SELECT count(*) FROM pgbench_accounts" "$db" 2>&1) ||
      die "${TARGET_LABEL[$name]}: count query failed: $got"
    [ "$got" = "$want" ] || die "${TARGET_LABEL[$name]}: $user sees $got of $want rows of pgbench_accounts in $db"
    log "check ${TARGET_LABEL[$name]} ($user @ $port/$db): $got rows"
  done
  # Signing is enforced: on SIGNED_DB the role default (or any SET) without
  # the proxy's MAC reads as no tenant, even directly.
  got=$(psql_as app_user "$APP_PW" "$PG_PORT" \
    "SELECT current_setting('app.current_tenant_id', true) || ':' || count(*) FROM pgbench_accounts" "$SIGNED_DB")
  [ "$got" = "$TENANT:0" ] || die "signing is not enforced: app_user directly on $SIGNED_DB (setting:rows) gives $got"
  log "check signing: app_user directly on $SIGNED_DB, tenant setting '$TENANT' without a MAC, sees 0 rows"
  # The guard flags really differ: guard on refuses set_config of the
  # tenant, guard off lets it through (the hardened database still confines
  # it to this session).
  local refuse="SELECT set_config('app.current_tenant_id', 'nobody', false)"
  if got=$(psql_as "app_user.$TENANT" "$APP_PW" "${MG_PORT[session]}" "$refuse" 2>&1); then
    die "multigres (guard on) let set_config through: $got"
  fi
  [[ "$got" == *"set_config"* ]] || die "multigres (guard on): unexpected error for set_config: $got"
  got=$(psql_as "app_user.$TENANT" "$APP_PW" "${MG_PORT[noguard]}" "$refuse" 2>&1) ||
    die "multigres guard off refused set_config: $got"
  log "check guard: on refuses set_config, off lets it through"
  got=$(psql_as "app_user.$TENANT" "$APP_PW" "${MG_PORT[session]}" "${GUARD_SQL//:aid/1}" 2>&1) ||
    die "multigres (guard on) refused the guard-parsed statement: $got"
  log "check guard: the guard-parsed statement is allowed"
  got=$(psql_as app_user "$APP_PW" "$PG_PORT" \
    "SET app.current_tenant_id = 'nobody'; SELECT count(*) FROM pgbench_accounts")
  [ "$got" = 0 ] || die "RLS is not on: app_user with another tenant sees $got rows"
  got=$(psql_as "app_user.nobody" "$APP_PW" "${MG_PORT[session]}" "SELECT count(*) FROM pgbench_accounts")
  [ "$got" = 0 ] || die "multigres: app_user.nobody sees $got rows"
  got=$(psql_as "app_user.nobody" "$APP_PW" "${MG_PORT[signed]}" "SELECT count(*) FROM pgbench_accounts" "$SIGNED_DB")
  [ "$got" = 0 ] || die "multigres signed: app_user.nobody sees $got rows"
  log "check RLS: another tenant sees 0 rows directly and through multigres (unsigned and signed)"
}

# ---------------------------------------------------------------------------
# Running pgbench. RESULTS["test|target"] holds the TPS of each good run;
# ERRORS counts failed runs.
# ---------------------------------------------------------------------------
declare -A RESULTS=() FAILS=()
declare -a ERROR_TEXT=()

# parse_tps FILE: pgbench 15 prints "tps = N (without initial connection
# time)", or with -C "tps = N (including reconnection times)". Either way it
# is the only "tps = " line.
parse_tps() { awk '/^tps = /{print $3; exit}' "$1"; }

run_one() {
  local test=$1 name=$2 round=$3 host port user db out rc tps conn
  read -r host port user db < <("${TARGET_FN[$name]}")
  out="$TMP/run-$round-${name}-${test//[^A-Za-z0-9]/_}.log"
  # shellcheck disable=SC2086 # TEST_FLAGS is a list of flags
  set +e
  PGPASSWORD=$APP_PW timeout -k 5 $((SECS + 60)) "$PGBENCH" -n -c "$CLIENTS" -j "$THREADS" -T "$SECS" \
    ${TEST_FLAGS[$test]} -h "$host" -p "$port" -U "$user" "${db:-$DB}" >"$out" 2>&1
  rc=$?
  set -e
  tps=$(parse_tps "$out")
  if [ "$rc" -ne 0 ] || [ -z "$tps" ] || grep -q -E '^(client [0-9]+ aborted|pgbench: error)' "$out"; then
    FAILS["$test|$name"]=$(( ${FAILS["$test|$name"]:-0} + 1 ))
    ERROR_TEXT+=("round $round, $test, ${TARGET_LABEL[$name]} (exit $rc):"$'\n'"$(grep -v -E '^(pgbench \(|transaction type|scaling factor|query mode|number of (clients|threads)|maximum number|duration|latency|initial connection|average connection)' "$out" | head -n 15 || true)")
    printf '  %-22s %-20s FAILED (exit %s)\n' "$test" "${TARGET_LABEL[$name]}" "$rc" >&2
    return 0
  fi
  RESULTS["$test|$name"]+="$tps "
  conn=$(awk '/^average connection time = /{printf ", %s ms per connection", $5; exit}' "$out")
  printf '  %-22s %-20s %10.1f tps%s\n' "$test" "${TARGET_LABEL[$name]}" "$tps" "$conn" >&2
}

median() {
  tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR]=$1} END {
    if (NR == 0) { print ""; exit }
    if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
start_postgres
load_data
start_pgbouncer
start_multigres session --pool-mode session
start_multigres noguard --pool-mode session --guard=off
start_multigres signed --pool-mode session --context-signing=on
check_paths

log "fsync=off, synchronous_commit=off, full_page_writes=off (throwaway cluster)"
NRUNS=0
for test in "${TESTS[@]}"; do read -r -a tt <<<"${TEST_TARGETS[$test]}"; NRUNS=$((NRUNS + ${#tt[@]})); done
log "$ROUNDS round(s) x $NRUNS runs (${#TESTS[@]} tests, up to ${#TARGETS[@]} targets) x ${SECS} s; pgbench -c $CLIENTS -j $THREADS -n"
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r/$ROUNDS"
  for ((ti = 0; ti < ${#TESTS[@]}; ti++)); do
    read -r -a tt <<<"${TEST_TARGETS[${TESTS[$ti]}]}"
    nt=${#tt[@]}
    # Rotate the target order per round and test, so no target always runs
    # first (cold) or right after another one (warm).
    off=$(( (r - 1 + ti) % nt ))
    for ((k = 0; k < nt; k++)); do
      run_one "${TESTS[$ti]}" "${tt[$(( (off + k) % nt ))]}" "$r"
    done
  done
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# Table: test | TPS per target | ratio columns. A cell of a target that a
# test does not run is "–".
declare -A MED=()
for test in "${TESTS[@]}"; do
  for name in "${TARGETS[@]}"; do
    MED["$test|$name"]=$(printf '%s' "${RESULTS["$test|$name"]:-}" | median)
  done
done

table() {
  local hdr="| test |" sep="|---|" name col test row a b v
  for name in "${TARGETS[@]}"; do hdr+=" ${TARGET_LABEL[$name]} TPS |"; sep+="---:|"; done
  for col in "${RATIOS[@]}"; do hdr+=" ${RATIO_LABEL[$col]} |"; sep+="---:|"; done
  echo "$hdr"; echo "$sep"
  for test in "${TESTS[@]}"; do
    row="| \`$(test_label "$test")\` |"
    for name in "${TARGETS[@]}"; do
      v=${MED["$test|$name"]}
      if [[ " ${TEST_TARGETS[$test]} " != *" $name "* ]]; then
        row+=" – |"; continue
      fi
      if [ -n "$v" ]; then row+=" $(printf '%.0f' "$v")"; else row+=" n/a"; fi
      [ -n "${FAILS["$test|$name"]:-}" ] && row+=" (${FAILS["$test|$name"]} failed)"
      row+=" |"
    done
    for col in "${RATIOS[@]}"; do
      a=${MED["$test|${col%/*}"]}; b=${MED["$test|${col#*/}"]}
      if [ -n "$a" ] && [ -n "$b" ]; then
        row+=" $(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }') |"
      else
        row+=" – |"
      fi
    done
    echo "$row"
  done
}

# runs lists every run's TPS in round order, to show the spread behind each
# median.
runs() {
  local test name line v
  for test in "${TESTS[@]}"; do
    line="- \`$(test_label "$test")\`:"
    for name in ${TEST_TARGETS[$test]}; do
      v=$(printf '%s' "${RESULTS["$test|$name"]:-}" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? ", " : ""), $i }')
      line+=" ${TARGET_LABEL[$name]} ${v:-none};"
    done
    echo "${line%;}"
  done
}

TABLE=$(table)
RUNS=$(runs)
PG_VERSION=$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
PGB_VERSION=$("$PGBOUNCER_BIN" --version | head -n 1 | sed 's/^PgBouncer //')
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
STAMP=$(date -u '+%Y-%m-%d %H:%M UTC')

SECTION=$(cat <<EOF
## $STAMP

- Machine: \`$(uname -srm)\`, ${CPU:-unknown CPU}, $(nproc) cores, $MEM RAM; load average ${START_LOAD} before, ${END_LOAD} after.
- PostgreSQL $PG_VERSION (fsync, synchronous_commit and full_page_writes off), PgBouncer $PGB_VERSION (session mode), multigres \`$COMMIT\` (session mode; guard on unless "guard off"; "signed" = \`--context-signing=on\` on \`$SIGNED_DB\`).
- pgbench -n -c $CLIENTS -j $THREADS -T $SECS, scale $SCALE; $ROUNDS interleaved round(s); median TPS per cell.

$TABLE

TPS of every run, in round order:

$RUNS
EOF
)

echo
echo "$SECTION"
if [ ${#ERROR_TEXT[@]} -gt 0 ]; then
  echo
  echo "Failed runs (pgbench output without its settings lines):"
  for e in "${ERROR_TEXT[@]}"; do echo "$e"; echo; done
  for name in "${!MG_PORT[@]}"; do
    if [ -s "$TMP/multigres-$name.log" ]; then
      echo "multigres[$name] log (last 20 lines):"; tail -n 20 "$TMP/multigres-$name.log"
    fi
  done
fi

if [ "$WRITE_DOCS" = 1 ]; then
  MARK='<!-- bench/run.sh inserts new results below this line, newest first -->'
  if [ -f "$DOCS_FILE" ] && grep -qF "$MARK" "$DOCS_FILE"; then
    MARK=$MARK SECT=$SECTION awk '
      { print } $0 == ENVIRON["MARK"] { print ""; print ENVIRON["SECT"] }' "$DOCS_FILE" >"$TMP/benchmarks.md"
    cat "$TMP/benchmarks.md" >"$DOCS_FILE"
  else
    { [ -f "$DOCS_FILE" ] || printf '# Benchmarks\n\n%s\n' "$MARK"; echo; echo "$SECTION"; } >>"$DOCS_FILE"
  fi
  log "appended the results to docs/benchmarks.md"
fi
