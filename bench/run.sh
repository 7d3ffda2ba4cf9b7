#!/usr/bin/env bash
# bench/run.sh: benchmarks side by side against direct PostgreSQL, PgBouncer
# and multigres, interleaved in one run on this machine (`make bench`).
#
# It starts a throwaway PostgreSQL cluster, PgBouncer and multigres instances
# on free 127.0.0.1 ports, loads `pgbench -i -s 10`, puts pgbench_accounts
# under a multigres tenant policy (RLS really on), and runs the suites below.
# Every round runs every test against each of its targets in a rotating
# order; the tables report the median per (test, target) and are appended to
# docs/benchmarks.md.
#
# Suites (BENCH_SUITES, default "transaction switching memory"; "all" adds
# "session"):
#   transaction  pgbench -S (-M simple, extended, prepared) and -S -C
#                with 64 clients over 8 server connections: multigres in
#                transaction mode (default_pool_size=8, guard on, every client
#                another tenant: 64 pgbench processes with -c 1, users
#                app_user.t1..t64), PgBouncer in transaction mode
#                (default_pool_size=8) and direct PostgreSQL, each driven by
#                the same 64 processes; plus direct and PgBouncer driven by
#                one pgbench -c 64 -j 2, to show what the process shape costs
#   switching    bench/tenantload through multigres in transaction
#                mode, 1,000 client connections, 64 in flight: 1,000 tenants
#                rotating vs one tenant
#   memory       proxy VmRSS with 10,000 idle tenant connections
#                (bench/idleconns), KiB per connection over the baseline
#   session      pgbench -c 16 against direct, PgBouncer and
#                multigres in session mode (guard on, guard off, signed)
#
# Usage: bash bench/run.sh [--quick] [--no-docs]
#   --quick    1 round of 3 s per run (+2 s ramp), 200 switching and 1,000
#              idle connections, for smoke tests (does not write the docs
#              unless BENCH_DOCS=1)
#   --no-docs  print the tables only
# Environment:
#   BENCH_SUITES   see above                   BENCH_ROUNDS   rounds (default 3)
#   BENCH_SECONDS  -T per run (default 10)     BENCH_SCALE    pgbench -i -s (default 10)
#   BENCH_CLIENTS  session suite -c (default 16)  BENCH_THREADS  -j (default 2)
#   BENCH_TX_CLIENTS  transaction suite clients = pgbench processes (default 64)
#   BENCH_RAMP     extra -T seconds of the transaction suite's pgbench runs
#                  (default 3; their TPS is measured over the seconds in
#                  which every process was running)
#   BENCH_POOL_SIZE   default_pool_size of multigres and PgBouncer in
#                     transaction mode (default 8)
#   BENCH_TX_POOL_MODE  pool_mode of the "multigres tx" instances (default
#                     transaction; session only to test the harness)
#   BENCH_MG_TX_FLAGS  extra serve flags of the "multigres tx" instances
#                     (default none, e.g. --workers=1)
#   BENCH_SWITCH_CONNS  switching: client connections (default 1000)
#   BENCH_SWITCH_TENANTS  switching: tenants rotating (default 1000)
#   BENCH_SWITCH_MODES  switching: protocols (default "simple extended")
#   BENCH_IDLE_CONNS  memory: idle connections (default 10000)
#   BENCH_DOCS     1/0: write docs/benchmarks.md
#   MULTIGRES_BIN  proxy binary (default bin/multigres)
#   BENCH_KEEP_LOGS=1  keep the temp dir's logs (pgbench, PgBouncer, multigres)
#
# Extending: a target is one `target` line plus a function printing
# "host port user [dbname]" (see "Targets" below; "{i}" in the user is the
# pgbench process number of a multi-process target); a test is one
# `bench_test` line, optionally limited to some targets; a ratio column is
# one `ratio` line; another proxy instance is one more `start_multigres NAME
# --flag=value` call.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-16}
THREADS=${BENCH_THREADS:-2}
SCALE=${BENCH_SCALE:-10}
TX_CLIENTS=${BENCH_TX_CLIENTS:-64}
POOL_SIZE=${BENCH_POOL_SIZE:-8}
TX_POOL_MODE=${BENCH_TX_POOL_MODE:-transaction}
# Extra `multigres serve` flags for the transaction-mode instances (e.g.
# "--workers=1"); split on spaces.
MG_TX_FLAGS=${BENCH_MG_TX_FLAGS:-}
SWITCH_CONNS=${BENCH_SWITCH_CONNS:-1000}
SWITCH_TENANTS=${BENCH_SWITCH_TENANTS:-1000}
SWITCH_MODES=${BENCH_SWITCH_MODES:-simple extended}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
SUITES=${BENCH_SUITES:-transaction switching memory}
# The transaction suite's pgbench runs last RAMP seconds longer than SECS:
# its 64 processes do not all get going at once on a busy 2-core machine, and
# the TPS is taken over the seconds in which all of them ran (see
# window_tps).
RAMP=${BENCH_RAMP:-3}
[ "$SUITES" = all ] && SUITES="transaction switching memory session"
# Connection limits follow the client counts, with room for the checks.
MAX_CONN=$(( CLIENTS + 40 > 200 ? CLIENTS + 40 : 200 ))
MAX_CONN=$(( TX_CLIENTS + 100 > MAX_CONN ? TX_CLIENTS + 100 : MAX_CONN ))
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
  RAMP=${BENCH_RAMP_QUICK:-2}
  SWITCH_CONNS=${BENCH_SWITCH_CONNS_QUICK:-200}
  IDLE_CONNS=${BENCH_IDLE_CONNS_QUICK:-1000}
  WRITE_DOCS=${WRITE_DOCS:-0}
fi
WRITE_DOCS=${WRITE_DOCS:-1}
# Connection k is tenant k mod SWITCH_TENANTS + 1: no more tenants than
# connections.
SWITCH_TENANTS=$(( SWITCH_TENANTS < SWITCH_CONNS ? SWITCH_TENANTS : SWITCH_CONNS ))
has_suite() { [[ " $SUITES " == *" $1 "* ]]; }
for s in $SUITES; do
  case "$s" in transaction|switching|memory|session) ;; *) echo "bench: unknown suite $s" >&2; exit 2 ;; esac
done

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
# SIGNED_PL_DB is another copy with signed context on, with the portable
# PL/pgSQL reader forced (what a server that cannot load the native reader,
# ext/multigres_context.c, gets: most managed PostgreSQL services).
SIGNED_PL_DB=bench_signed_pl
TENANT=bench
# TX_DB holds the same data as DB, but the accounts belong to TX_TENANTS
# tenants t1..tN (aid N+k belongs to t(k)): the transaction, switching and
# memory suites log in as many tenants. Direct and PgBouncer connections get
# tenant t1 from a role default.
TX_DB=bench_tx
TX_TENANTS=1000

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
  for pid in "$TMP"/pgbouncer-*.pid; do
    [ -f "$pid" ] && kill -TERM "$(cat "$pid")" 2>/dev/null
  done
  for pid in "${KILL_PIDS[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  done
  if [ "$PG_STARTED" = 1 ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$TMP/data" -m immediate -t 30 stop >/dev/null 2>&1
  fi
  if [ -n "$HUGE_PAGES_WAS" ]; then
    echo "$HUGE_PAGES_WAS" >/proc/sys/vm/nr_hugepages 2>/dev/null
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
# Huge pages for shared_buffers when this machine can reserve them (root,
# and nobody else's reservation in the way): without them every new backend
# (16 per session-suite run) faults in each 4 KiB page of shared_buffers it
# touches, which on this VM was half of the server's CPU per transaction
# and most of the run-to-run noise (docs/benchmarks.md, 2026-11-23). The
# previous reservation is restored on exit. HUGE_PAGES ends up "on" when
# reserved, else "off".
HUGE_PAGES=off
HUGE_PAGES_WAS=
reserve_huge_pages() {
  local f=/proc/sys/vm/nr_hugepages want=640 free
  [ "${BENCH_HUGE_PAGES:-1}" = 1 ] && [ -w "$f" ] || return 0
  HUGE_PAGES_WAS=$(cat "$f")
  [ "$HUGE_PAGES_WAS" -ge "$want" ] || echo "$want" >"$f" 2>/dev/null || return 0
  free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "${free:-0}" -ge 600 ]; then HUGE_PAGES=on; else echo "$HUGE_PAGES_WAS" >"$f"; HUGE_PAGES_WAS=; fi
}

# copy_signed NAME: a copy of DB with signed context on (init
# --context-signing), and the same role default as in DB: with signing on
# it must not help a direct login (check_session expects 0 rows there).
copy_signed() {
  log "creating $1 (copy of $DB) with signed context"
  psql_as postgres "$SUPER_PW" "$PG_PORT" "CREATE DATABASE $1 TEMPLATE $DB" postgres >/dev/null
  timeout 120 "$MULTIGRES_BIN" init --context-signing \
    --database-url "postgres://postgres:$SUPER_PW@127.0.0.1:$PG_PORT/$1?sslmode=disable" \
    --auth-password "$AUTH_PW" >"$TMP/init-$1.log" 2>&1 ||
    { cat "$TMP/init-$1.log" >&2; die "multigres init --context-signing ($1) failed"; }
  psql_as postgres "$SUPER_PW" "$PG_PORT" "ALTER ROLE app_user IN DATABASE $1 SET app.current_tenant_id = '$TENANT'" postgres >/dev/null
}

start_postgres() {
  PG_PORT=$(free_port)
  printf '%s\n' "$SUPER_PW" >"$TMP/pwfile"
  give_pg "$TMP/pwfile"
  log "initdb ($PG_BIN)"
  as_pg "$PG_BIN/initdb" -D "$TMP/data" -U postgres --pwfile="$TMP/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
  rm -f "$TMP/pwfile"
  # shared_buffers holds every database the suites read (bench and
  # bench_signed, about 190 MB each at scale 10, plus bench_tx): at 256MB
  # the session suite's signed target, the only one on bench_signed, read
  # its pages back from the OS page cache (pread and copy; perf showed
  # about 9 µs more of it per transaction than on bench), which the other
  # targets did not.
  # The native context reader (make bench builds it), loadable from a copy
  # the server's OS user owns.
  local native_lib="${MULTIGRES_NATIVE_LIB:-$ROOT/ext/multigres_context.so}" libpath='$libdir'
  if [ -f "$native_lib" ]; then
    mkdir -p "$TMP/lib" && cp "$native_lib" "$TMP/lib/" && give_pg "$TMP/lib" "$TMP/lib/$(basename "$native_lib")"
    libpath="\$libdir:$TMP/lib"
  fi
  reserve_huge_pages
  cat >>"$TMP/data/postgresql.conf" <<EOF
# bench/run.sh
dynamic_library_path = '$libpath'
huge_pages = $HUGE_PAGES
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP'
max_connections = $MAX_CONN
password_encryption = 'scram-sha-256'
shared_buffers = 1GB
effective_cache_size = 2GB
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
  copy_signed "$SIGNED_DB"
  SIGNED_READER=$(psql_as postgres "$SUPER_PW" "$PG_PORT" "SELECT multigres.context_reader()" "$SIGNED_DB")
  log "$SIGNED_DB: context reader $SIGNED_READER"
  copy_signed "$SIGNED_PL_DB"
  got=$(psql_as postgres "$SUPER_PW" "$PG_PORT" "SELECT multigres.install_context_readers(true, false)" "$SIGNED_PL_DB")
  [ "$got" = plpgsql ] || die "$SIGNED_PL_DB: installing the PL/pgSQL reader gave $got"
  # The many-tenant copy: the same rows, index and policy, with aid spread
  # over tenants t1..t$TX_TENANTS (each owns $((100000 * SCALE / TX_TENANTS)) rows). pgbench -S's
  # random aid then belongs to the connection's tenant with probability
  # 1/$TX_TENANTS on every path: every target runs the same plan (an index
  # probe and the RLS filter) and almost always returns no row.
  log "creating $TX_DB (copy of $DB, accounts spread over tenants t1..t$TX_TENANTS)"
  psql_as postgres "$SUPER_PW" "$PG_PORT" "CREATE DATABASE $TX_DB TEMPLATE $DB" postgres >/dev/null
  psql_as postgres "$SUPER_PW" "$PG_PORT" "
    UPDATE pgbench_accounts SET tenant_id = 't' || ((aid - 1) % $TX_TENANTS + 1);
    ALTER ROLE app_user IN DATABASE $TX_DB SET app.current_tenant_id = 't1';" "$TX_DB" >/dev/null
  psql_as postgres "$SUPER_PW" "$PG_PORT" "VACUUM FULL ANALYZE pgbench_accounts" "$TX_DB" >/dev/null
  # Database ACLs are not copied: harden the copy again.
  timeout 120 "$MULTIGRES_BIN" init \
    --database-url "postgres://postgres:$SUPER_PW@127.0.0.1:$PG_PORT/$TX_DB?sslmode=disable" \
    --auth-password "$AUTH_PW" >"$TMP/init-tx.log" 2>&1 ||
    { cat "$TMP/init-tx.log" >&2; die "multigres init on $TX_DB failed"; }
  super_sql "CHECKPOINT" >/dev/null
}

# ---------------------------------------------------------------------------
# PgBouncer: start_pgbouncer NAME MODE POOL_SIZE. SCRAM userlist with the
# verifier from pg_authid (so it also logs in upstream with SCRAM
# passthrough, like multigres). The port lands in PGB_PORT[NAME]. Both
# databases are served; the session suite uses DB, the transaction suite
# TX_DB.
# ---------------------------------------------------------------------------
declare -A PGB_PORT=()
start_pgbouncer() {
  local name=$1 mode=$2 pool=$3 port verifier
  port=$(free_port)
  if [ ! -f "$TMP/userlist.txt" ]; then
    verifier=$(super_sql "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'")
    [[ "$verifier" == SCRAM-SHA-256* ]] || die "app_user has no SCRAM verifier"
    printf '"app_user" "%s"\n' "$verifier" >"$TMP/userlist.txt"
    give_pg "$TMP/userlist.txt"
  fi
  cat >"$TMP/pgbouncer-$name.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB
$TX_DB = host=127.0.0.1 port=$PG_PORT dbname=$TX_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $TMP/userlist.txt
pool_mode = $mode
default_pool_size = $pool
max_client_conn = $(( MAX_CONN + SWITCH_CONNS + IDLE_CONNS + 100 ))
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
client_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
logfile = $TMP/pgbouncer-$name.log
pidfile = $TMP/pgbouncer-$name.pid
EOF
  give_pg "$TMP/pgbouncer-$name.ini"
  log "starting PgBouncer[$name] ($mode mode, pool $pool) on 127.0.0.1:$port"
  # runuser starts with the PAM default of 1024 open files: raise it to the
  # hard limit for the memory suite's thousands of clients.
  as_pg bash -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"' pgbouncer \
    "$PGBOUNCER_BIN" -d -q "$TMP/pgbouncer-$name.ini" >"$TMP/pgbouncer-$name.out" 2>&1 ||
    { cat "$TMP/pgbouncer-$name.out" "$TMP/pgbouncer-$name.log" >&2 2>/dev/null; die "PgBouncer[$name] did not start"; }
  PGB_PORT[$name]=$port
  wait_port "$port" "PgBouncer[$name]"
}

# ---------------------------------------------------------------------------
# multigres instances: start_multigres NAME [extra serve flags...]. The port
# lands in MG_PORT[NAME]. Boolean flags take a value only with `=`
# (--guard=off).
# ---------------------------------------------------------------------------
declare -A MG_PORT=() MG_PID=()
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
  MG_PID[$name]=$!
  MG_PORT[$name]=$port
  wait_port "$port" "multigres[$name]"
}

# ---------------------------------------------------------------------------
# Targets: `target NAME LABEL FUNCTION [multi]`; FUNCTION prints "host port
# user [dbname]" (default DB). All use the password of app_user. With
# "multi", pgbench runs as one process per client (-c 1 -j 1 each), and
# "{i}" in the user is the process number 1..clients; the TPS of a run is the
# sum over the processes. Order here is the column order.
# ---------------------------------------------------------------------------
declare -a TARGETS=()
declare -A TARGET_LABEL=() TARGET_FN=() TARGET_MULTI=() TARGET_TENANTS=()
target() { TARGETS+=("$1"); TARGET_LABEL[$1]=$2; TARGET_FN[$1]=$3; TARGET_MULTI[$1]=$([ "${4:-}" = multi ] && echo 1 || echo 0); }

# transaction suite: 64 clients over POOL_SIZE server connections, TX_DB.
conn_tx_direct()    { echo "127.0.0.1 $PG_PORT app_user $TX_DB"; }
conn_tx_pgbouncer() { echo "127.0.0.1 ${PGB_PORT[tx]} app_user $TX_DB"; }
conn_tx_multigres() { echo "127.0.0.1 ${MG_PORT[tx]} app_user.t{i} $TX_DB"; }
target tx_multigres  "multigres tx"              conn_tx_multigres multi
target tx_pgbouncer  "PgBouncer tx"              conn_tx_pgbouncer multi
target tx_direct     "direct"                    conn_tx_direct multi
target tx_pgbouncer1 "PgBouncer tx, 1 pgbench"   conn_tx_pgbouncer
target tx_direct1    "direct, 1 pgbench"         conn_tx_direct
# switching suite: bench/tenantload through the same multigres tx instance;
# "{i}" is the tenant number 1..TARGET_TENANTS.
target sw_rotating "$SWITCH_TENANTS tenants rotating" conn_tx_multigres
target sw_one      "1 tenant"                         conn_tx_multigres
TARGET_TENANTS[sw_rotating]=$SWITCH_TENANTS
TARGET_TENANTS[sw_one]=1
# session suite: -c 16, DB.
conn_direct()     { echo "127.0.0.1 $PG_PORT app_user"; }
conn_pgbouncer()  { echo "127.0.0.1 ${PGB_PORT[session]} app_user"; }
conn_multigres()  { echo "127.0.0.1 ${MG_PORT[session]} app_user.$TENANT"; }
conn_mg_noguard() { echo "127.0.0.1 ${MG_PORT[noguard]} app_user.$TENANT"; }
conn_mg_signed()  { echo "127.0.0.1 ${MG_PORT[signed]} app_user.$TENANT $SIGNED_DB"; }
conn_mg_signed_pl() { echo "127.0.0.1 ${MG_PORT[signed]} app_user.$TENANT $SIGNED_PL_DB"; }
target direct     "direct"              conn_direct
target pgbouncer  "PgBouncer"           conn_pgbouncer
target multigres  "multigres"           conn_multigres
target mg_noguard "multigres guard off" conn_mg_noguard
target mg_signed  "multigres signed"    conn_mg_signed
target mg_signed_pl "multigres signed, PL/pgSQL reader" conn_mg_signed_pl

# Ratio columns: `ratio SUITE LABEL A B` is the median of A divided by B's.
# Signing on vs off compares multigres signed (SIGNED_DB) with multigres
# (DB): the same rows, index and policy; the difference is the signed
# reader and the MAC the proxy sets. An unsigned proxy cannot serve as the
# "off" side on SIGNED_DB, because it would read 0 rows there.
declare -a RATIOS=()
declare -A RATIO_LABEL=() RATIO_SUITE=()
ratio() { RATIOS+=("$3/$4"); RATIO_SUITE["$3/$4"]=$1; RATIO_LABEL["$3/$4"]=$2; }
ratio transaction "multigres tx/PgBouncer tx" tx_multigres tx_pgbouncer
ratio transaction "multigres tx/direct"       tx_multigres tx_direct
ratio transaction "PgBouncer tx/direct"       tx_pgbouncer tx_direct
ratio transaction "direct 64 processes/1 pgbench" tx_direct tx_direct1
ratio switching   "rotating/1 tenant"         sw_rotating sw_one
ratio session "multigres/direct"    multigres direct
ratio session "multigres/PgBouncer" multigres pgbouncer
ratio session "guard on/off"        multigres mg_noguard
ratio session "signing on/off"      mg_signed multigres
ratio session "signing on/off, PL/pgSQL reader" mg_signed_pl multigres

# ---------------------------------------------------------------------------
# Tests: `bench_test SUITE NAME "flags" [TARGET...]` (default: every target
# of the suite's first test... so always list them). A test of a suite not in
# BENCH_SUITES is not registered. pgbench tests: -S is the built-in
# select-only script; with -C pgbench opens a new connection for every
# transaction and its tps includes the connection time. Switching tests run
# bench/tenantload and "flags" is its -mode.
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
declare -A TEST_FLAGS=() TEST_TARGETS=() TEST_SUITE=() TEST_KIND=() TEST_CLIENTS=()
bench_test() {
  local suite=$1 name=$2 flags=$3; shift 3
  has_suite "$suite" || return 0
  TESTS+=("$name"); TEST_FLAGS[$name]=$flags; TEST_SUITE[$name]=$suite; TEST_TARGETS[$name]="$*"
  case "$suite" in
    switching) TEST_KIND[$name]=tenantload; TEST_CLIENTS[$name]=$TX_CLIENTS ;;
    transaction) TEST_KIND[$name]=pgbench; TEST_CLIENTS[$name]=$TX_CLIENTS ;;
    *) TEST_KIND[$name]=pgbench; TEST_CLIENTS[$name]=$CLIENTS ;;
  esac
}

TX_ALL="tx_multigres tx_pgbouncer tx_direct tx_pgbouncer1 tx_direct1"
bench_test transaction "tx -S simple"    "-S -M simple"   $TX_ALL
bench_test transaction "tx -S extended"  "-S -M extended" $TX_ALL
# PgBouncer 1.18 cannot run -M prepared in transaction mode (a statement
# prepared on one server connection is missing on the next): it runs anyway,
# so the table records the failure.
bench_test transaction "tx -S prepared"  "-S -M prepared" tx_multigres tx_pgbouncer tx_direct
bench_test transaction "tx -S -C simple" "-S -C -M simple" tx_multigres tx_pgbouncer tx_direct
for m in $SWITCH_MODES; do
  bench_test switching "switch $m" "$m" sw_rotating sw_one
done
bench_test session "-S simple"   "-S -M simple"   direct pgbouncer multigres mg_noguard mg_signed mg_signed_pl
bench_test session "-S extended" "-S -M extended" direct pgbouncer multigres mg_noguard mg_signed mg_signed_pl
# -C measures logins; the guard and signing do not change them much: the
# three original targets only.
bench_test session "-S -C simple" "-S -C -M simple" direct pgbouncer multigres
bench_test session "guard-parsed simple"   "-f $GUARD_SCRIPT -M simple"   multigres mg_noguard
bench_test session "guard-parsed extended" "-f $GUARD_SCRIPT -M extended" multigres mg_noguard

# test_label TEST: the flags as shown in the tables (the temp path of the
# custom script replaced by its name).
test_label() {
  local f=${TEST_FLAGS[$1]}
  case "${TEST_KIND[$1]}" in
    tenantload) echo "tenantload -mode $f" ;;
    *) echo "${f//$GUARD_SCRIPT/guard-parsed.sql}" ;;
  esac
}

# ---------------------------------------------------------------------------
# Sanity checks. Session suite: every path returns the same rows, RLS is
# really on, and multigres sets the tenant itself (another tenant sees
# nothing).
# ---------------------------------------------------------------------------
check_session() {
  local want name host port user db got
  want=$(super_sql "SELECT count(*) FROM pgbench_accounts")
  [ "$want" -gt 0 ] || die "pgbench_accounts is empty"
  got=$(psql_as postgres "$SUPER_PW" "$PG_PORT" "SELECT count(*) FROM pgbench_accounts" "$SIGNED_DB")
  [ "$got" = "$want" ] || die "$SIGNED_DB has $got rows, $DB has $want"
  for name in direct pgbouncer multigres mg_noguard mg_signed mg_signed_pl; do
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
  got=$(psql_as app_user "$APP_PW" "$PG_PORT" "SELECT count(*) FROM pgbench_accounts" "$SIGNED_PL_DB")
  [ "$got" = 0 ] || die "signing is not enforced on $SIGNED_PL_DB: app_user directly sees $got rows"
  log "check RLS: another tenant sees 0 rows directly and through multigres (unsigned and signed)"
}

# check_tx: TX_DB paths see exactly their tenant's rows, the guard is on,
# and the tx instance really shares POOL_SIZE server connections.
check_tx() {
  local per=$((100000 * SCALE / TX_TENANTS)) got name host port user db t pids
  got=$(psql_as app_user "$APP_PW" "$PG_PORT" "SELECT count(*) FROM pgbench_accounts" "$TX_DB")
  [ "$got" = "$per" ] || die "direct app_user on $TX_DB sees $got rows, want $per (tenant t1)"
  got=$(psql_as app_user "$APP_PW" "$PG_PORT" \
    "SET app.current_tenant_id = 'nobody'; SELECT count(*) FROM pgbench_accounts" "$TX_DB")
  [ "$got" = 0 ] || die "RLS is not on in $TX_DB: another tenant sees $got rows"
  for name in tx_direct tx_pgbouncer tx_multigres; do
    [ -n "${ACTIVE[$name]:-}" ] || [ "$name" = tx_multigres ] || continue
    read -r host port user db < <("${TARGET_FN[$name]}")
    for t in 1 2 "$TX_TENANTS"; do
      [ "$name" = tx_multigres ] || [ "$t" = 1 ] || continue
      got=$(psql_as "${user//\{i\}/$t}" "$APP_PW" "$port" \
        "SELECT count(*) || ':' || count(*) FILTER (WHERE tenant_id = 't$t') FROM pgbench_accounts" "$db" 2>&1) ||
        die "${TARGET_LABEL[$name]}: count query failed: $got"
      [ "$got" = "$per:$per" ] || die "${TARGET_LABEL[$name]}: ${user//\{i\}/$t} sees (rows:own rows) $got, want $per:$per"
    done
    log "check ${TARGET_LABEL[$name]} ($user @ $port/$db): $per rows, all of the login's tenant"
  done
  port=${MG_PORT[tx]}
  got=$(psql_as "app_user.nobody" "$APP_PW" "$port" "SELECT count(*) FROM pgbench_accounts" "$TX_DB")
  [ "$got" = 0 ] || die "multigres tx: app_user.nobody sees $got rows"
  if got=$(psql_as "app_user.t1" "$APP_PW" "$port" \
    "SELECT set_config('app.current_tenant_id', 't2', false)" "$TX_DB" 2>&1); then
    die "multigres tx (guard on) let set_config through: $got"
  fi
  log "check multigres tx: app_user.nobody sees 0 rows, the guard refuses set_config"
  # Transaction pooling: 3 x POOL_SIZE logins in a row, one query each, must
  # share at most POOL_SIZE server backends.
  pids=$(for t in $(seq 1 $((3 * POOL_SIZE))); do
    psql_as "app_user.t$t" "$APP_PW" "$port" "SELECT pg_backend_pid()" "$TX_DB"
  done | sort -u | wc -l)
  if [ "$TX_POOL_MODE" = transaction ]; then
    [ "$pids" -le "$POOL_SIZE" ] || die "multigres tx: $((3 * POOL_SIZE)) logins used $pids server backends (pool $POOL_SIZE): not transaction pooling"
  fi
  log "check multigres tx ($TX_POOL_MODE mode): $((3 * POOL_SIZE)) successive logins used $pids server backend(s)"
}

# ---------------------------------------------------------------------------
# Running the load. RESULTS["test|target"] holds the TPS of each good run,
# CPU["test|target"] the load generator's CPU share and the machine's busy
# share ("client%/busy%") of each, SWITCHED the tenantload switch fractions;
# FAILS counts failed runs.
# ---------------------------------------------------------------------------
declare -A RESULTS=() FAILS=() CPU=() SWITCHED=() BACKENDS=() ERR_SEEN=() WINDOWS=()
declare -a ERROR_TEXT=()
NPROC=$(nproc)

# parse_tps FILE: pgbench 15 prints "tps = N (without initial connection
# time)", or with -C "tps = N (including reconnection times)". Either way it
# is the only "tps = " line.
parse_tps() { awk '/^tps = /{print $3; exit}' "$1"; }
# cpu_ticks: "total idle" jiffies of the whole machine.
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6; exit}' /proc/stat; }
# children_cpu FILE: user+system seconds of the children line of `times`.
children_cpu() {
  awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } print s }' "$1"
}

# run_pgbench TEST NAME OUT: one pgbench run (or CLIENTS processes of one
# client each); sets RUN_TPS (empty on failure), RUN_ERR and RUN_CPU.
# The transaction suite also logs per-second aggregates (pgbench -l
# --aggregate-interval=1; PostgreSQL 15's pgbench aligns them to whole
# seconds), one file per process, and takes as its TPS the mean number of
# transactions per second over the seconds in which at least 90% of the
# processes were running (window_tps; a process runs from its first to its
# last second with a transaction, those two excluded). On a busy 2-core
# machine 64 processes get going over several seconds, and the plain sum of
# their TPS (each over its own run) would count a process that runs while
# others are still connecting, or already finished, as if it ran under full
# load. The plain sum is kept as RUN_SUM, for comparison.
window_tps() {
  awk 'FNR == 1 { nf++ } $2 > 0 { s = $1; if (!(nf in first) || s < first[nf]) first[nf] = s
         if (!(nf in last) || s > last[nf]) last[nf] = s; per[s] += $2 }
    END {
      if (nf == 0) exit
      lo = -1; hi = -1
      for (f = 1; f <= nf; f++) { if (!(f in first)) exit
        if (lo < 0 || first[f] < lo) lo = first[f]; if (last[f] > hi) hi = last[f] }
      for (t = lo; t <= hi; t++) { act[t] = 0; for (f = 1; f <= nf; f++) if (first[f] < t && t < last[f]) act[t]++ }
      # 90% of the processes; on a short run where they never overlap that
      # much, half of them (the table then says so: "50% window").
      for (q = 90; q >= 50; q -= 40) {
        need = int(q / 100 * nf + 0.999); sum = 0; secs = 0
        for (t = lo; t <= hi; t++) if (act[t] >= need) { sum += per[t]; secs++ }
        if (secs > 0) { printf "%.3f %d %d\n", sum / secs, secs, q; exit } } }' "$@"
}

run_pgbench() {
  local test=$1 name=$2 out=$3 clients=${TEST_CLIENTS[$1]} host port user db i f rc w
  local -a agg=()
  read -r host port user db < <("${TARGET_FN[$name]}")
  db=${db:-$DB}
  local secs=$SECS
  if [ "${TEST_SUITE[$test]}" = transaction ]; then
    secs=$((SECS + RAMP))
    [ "${TARGET_MULTI[$name]}" = 1 ] && agg=(-l --aggregate-interval=1)
  fi
  # shellcheck disable=SC2086 # TEST_FLAGS is a list of flags
  if [ "${TARGET_MULTI[$name]}" = 1 ]; then
    # A start barrier: forking 64 subshells on a busy 2-core machine takes
    # seconds, so each one waits until all exist and "$out.go" appears, and
    # only then starts pgbench. The wait polls with `read -t` on a FIFO that
    # nobody writes: a sleep without forking a process.
    rm -f "$out.go" "$out.fifo"; mkfifo "$out.fifo"
    (
      for ((i = 1; i <= clients; i++)); do
        (
          : >"$out.$i.ready"
          while [ ! -e "$out.go" ]; do read -r -t 0.05 _ <>"$out.fifo" || true; done
          # exec: one fork less per process. Its exit status is lost; the
          # log tells failures apart (no "tps = " line, or an error).
          PGPASSWORD=$APP_PW exec timeout -k 5 $((secs + 60)) "$PGBENCH" -n -c 1 -j 1 -T "$secs" \
            "${agg[@]}" ${agg[0]:+--log-prefix="$out.$i.agg"} ${TEST_FLAGS[$test]} -h "$host" -p "$port" \
            -U "${user//\{i\}/$i}" "$db" >"$out.$i.log" 2>&1
        ) &
      done
      while [ "$(find "$(dirname "$out")" -maxdepth 1 -name "$(basename "$out").*.ready" | wc -l)" -lt "$clients" ]; do
        read -r -t 0.05 _ <>"$out.fifo" || true
      done
      : >"$out.go"
      wait
      times >"$out.times"
    )
    rm -f "$out".*.ready "$out.fifo"
  else
    (
      rc=0
      PGPASSWORD=$APP_PW timeout -k 5 $((secs + 60)) "$PGBENCH" -n -c "$clients" -j "$THREADS" -T "$secs" \
        "${agg[@]}" ${agg[0]:+--log-prefix="$out.1.agg"} ${TEST_FLAGS[$test]} -h "$host" -p "$port" -U "$user" "$db" >"$out.1.log" 2>&1 || rc=$?
      echo "$rc" >"$out.1.rc"
      times >"$out.times"
    )
  fi
  RUN_CPU=$(children_cpu "$out.times")
  RUN_TPS=0; RUN_ERR=
  for f in "$out".*.log; do
    rc=$(cat "${f%.log}.rc" 2>/dev/null || echo 0)
    i=$(parse_tps "$f")
    if [ "$rc" = 0 ] && grep -q '^number of transactions actually processed: 0$' "$f"; then
      RUN_ERR="no transactions: a pgbench process ran none (${f##*/}; its connections took longer than -T $secs?)"
      RUN_TPS=
      return 0
    fi
    if [ "$rc" != 0 ] || [ -z "$i" ] || grep -q -E '^(client [0-9]+ aborted|pgbench: error)' "$f"; then
      RUN_ERR="exit $rc: $(grep -v -E '^(pgbench \(|transaction type|scaling factor|query mode|number of (clients|threads|transactions|failed)|maximum number|duration|latency|initial connection|average connection|tps = )' "$f" | head -n 6 || true)"
      RUN_TPS=
      return 0
    fi
    RUN_TPS=$(awk -v a="$RUN_TPS" -v b="$i" 'BEGIN { printf "%.3f", a + b }')
  done
  RUN_SUM=$RUN_TPS
  if [ ${#agg[@]} -gt 0 ]; then
    w=$(window_tps "$out".*.agg.*)
    if [ -n "$w" ]; then
      read -r RUN_TPS RUN_WINDOW RUN_WINDOW_Q <<<"$w"
    else
      RUN_WINDOW=none
    fi
  fi
  return 0
}

# run_tenantload TEST NAME OUT: one bench/tenantload run.
run_tenantload() {
  local test=$1 name=$2 out=$3 host port user db rc=0 line
  read -r host port user db < <("${TARGET_FN[$name]}")
  PGPASSWORD=$APP_PW timeout -k 5 $((SECS + 120)) "$TENANTLOAD" -addr "$host:$port" -user "${user//\{i\}/%d}" \
    -db "${db:-$DB}" -tenants "${TARGET_TENANTS[$name]}" -conns "$SWITCH_CONNS" -workers "${TEST_CLIENTS[$test]}" \
    -duration "${SECS}s" -mode "${TEST_FLAGS[$test]}" -scale "$SCALE" >"$out.1.log" 2>&1 || rc=$?
  line=$(grep '^tps=' "$out.1.log" || true)
  RUN_TPS=; RUN_ERR=; RUN_CPU=0; RUN_SWITCHED=; RUN_BACKENDS=
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    RUN_ERR="exit $rc: $(head -n 6 "$out.1.log" || true)"
    return 0
  fi
  RUN_TPS=$(kv tps "$line"); RUN_CPU=$(kv cpu_s "$line")
  RUN_SWITCHED=$(kv switched "$line"); RUN_BACKENDS=$(kv backends "$line")
}
kv() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }

run_one() {
  local test=$1 name=$2 round=$3 out c0 c1 t0 t1 busy client extra=
  out="$TMP/run-$round-${name}-${test//[^A-Za-z0-9]/_}"
  read -r -a c0 < <(cpu_ticks); t0=$(date +%s.%N)
  RUN_SWITCHED=; RUN_BACKENDS=; RUN_SUM=; RUN_WINDOW=
  case "${TEST_KIND[$test]}" in
    tenantload) run_tenantload "$test" "$name" "$out" ;;
    *) run_pgbench "$test" "$name" "$out" ;;
  esac
  read -r -a c1 < <(cpu_ticks); t1=$(date +%s.%N)
  # (Parentheses: in awk, "printf x, a > b" would redirect to a file.)
  busy=$(awk -v t="$((c1[0] - c0[0]))" -v i="$((c1[1] - c0[1]))" 'BEGIN { printf "%.0f", (t > 0 ? 100 * (t - i) / t : 0) }')
  client=$(awk -v c="${RUN_CPU:-0}" -v a="$t0" -v b="$t1" -v n="$NPROC" \
    'BEGIN { w = b - a; printf "%.0f", (w > 0 ? 100 * c / (w * n) : 0) }')
  if [ -z "$RUN_TPS" ]; then
    FAILS["$test|$name"]=$(( ${FAILS["$test|$name"]:-0} + 1 ))
    if [ -z "${ERR_SEEN["$test|$name"]:-}" ]; then
      ERR_SEEN["$test|$name"]=1
      ERROR_TEXT+=("round $round, $test, ${TARGET_LABEL[$name]} (${RUN_ERR%%:*}):"$'\n'"${RUN_ERR#*: }")
    fi
    printf '  %-18s %-28s FAILED (%s)\n' "$test" "${TARGET_LABEL[$name]}" "${RUN_ERR%%$'\n'*}" >&2
    return 0
  fi
  RESULTS["$test|$name"]+="$RUN_TPS "
  CPU["$test|$name"]+="$client/$busy "
  if [ -n "$RUN_WINDOW" ]; then
    if [ "$RUN_WINDOW" = none ]; then
      extra=", no window: sum of pgbench tps"
      WINDOWS["$test|$name"]+="sum "
    else
      extra=$(awk -v s="$RUN_SUM" -v w="$RUN_WINDOW" -v q="$RUN_WINDOW_Q" \
        'BEGIN { printf ", %d s with >= %d%% of the processes running; sum of pgbench tps %.0f", w, q, s }')
      WINDOWS["$test|$name"]+="${RUN_WINDOW}s@${RUN_WINDOW_Q}% "
    fi
  fi
  if [ -n "$RUN_SWITCHED" ]; then
    SWITCHED["$test|$name"]+="$RUN_SWITCHED "; BACKENDS["$test|$name"]+="$RUN_BACKENDS "
    extra=$(awk -v s="$RUN_SWITCHED" -v b="$RUN_BACKENDS" 'BEGIN { printf ", %.1f%% switched, %d backends", 100 * s, b }')
  fi
  printf '  %-18s %-28s %10.1f tps (client CPU %s%%, machine busy %s%%%s)\n' \
    "$test" "${TARGET_LABEL[$name]}" "$RUN_TPS" "$client" "$busy" "$extra" >&2
}

median() {
  tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR]=$1} END {
    if (NR == 0) { print ""; exit }
    if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'
}

# ---------------------------------------------------------------------------
# Memory: a fresh multigres instance in transaction mode (and PgBouncer tx
# for reference), IDLE_CONNS idle tenant connections, VmRSS over the
# baseline. MEMORY[name] holds idleconns' key=value line.
# ---------------------------------------------------------------------------
declare -A MEMORY=()
declare -a MEMORY_ROWS=()
run_memory() {
  local rc=0 line pid which
  for which in multigres multigres1 pgbouncer; do
    # A fresh proxy for each measurement: Go keeps freed heap for a while,
    # so a proxy that already held connections has a higher baseline.
    # "multigres1": all connections one tenant (app_user.t1), to tell
    # per-connection from per-tenant memory.
    if [ "$which" != pgbouncer ]; then
      # shellcheck disable=SC2086
      start_multigres "mem$which" --pool-mode "$TX_POOL_MODE" --default-pool-size "$POOL_SIZE" $MG_TX_FLAGS
      pid=${MG_PID[mem$which]}
      set -- -addr "127.0.0.1:${MG_PORT[mem$which]}" -user "app_user.t%d"
      [ "$which" = multigres1 ] && set -- "$@" -tenants 1
    else
      [ -n "${PGB_PORT[tx]:-}" ] || continue
      pid=$(cat "$TMP/pgbouncer-tx.pid")
      set -- -addr "127.0.0.1:${PGB_PORT[tx]}" -user app_user
    fi
    log "memory: $IDLE_CONNS idle connections to $which (pid $pid)"
    rc=0
    PGPASSWORD=$APP_PW timeout -k 5 600 "$IDLECONNS" "$@" -db "$TX_DB" -conns "$IDLE_CONNS" -pid "$pid" \
      >"$TMP/memory-$which.log" 2>&1 || rc=$?
    line=$(grep '^conns=' "$TMP/memory-$which.log" || true)
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
      ERROR_TEXT+=("memory, $which (exit $rc):"$'\n'"$(head -n 6 "$TMP/memory-$which.log")")
      log "memory: $which FAILED: $(head -n 3 "$TMP/memory-$which.log")"
      continue
    fi
    MEMORY[$which]=$line
    MEMORY_ROWS+=("$which")
    log "memory: $which $line"
    if [ "$which" != pgbouncer ]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
[ ${#TESTS[@]} -gt 0 ] || has_suite memory || die "no tests in BENCH_SUITES=$SUITES"
declare -A ACTIVE=()
for test in "${TESTS[@]}"; do for name in ${TEST_TARGETS[$test]}; do ACTIVE[$name]=1; done; done

# Thousands of client connections: the proxy, PgBouncer and the load
# generators need a file descriptor each (root may raise the hard limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if has_suite memory && [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_CONNS + 200)) ]; then
  die "ulimit -n is $NOFILE, the memory suite needs $((IDLE_CONNS + 200)) (run as root or lower BENCH_IDLE_CONNS)"
fi

# The Go load generators.
if has_suite switching || has_suite memory; then
  log "building bench/tenantload and bench/idleconns"
  (cd "$ROOT" && go build -o "$TMP/tenantload" ./bench/tenantload && go build -o "$TMP/idleconns" ./bench/idleconns) ||
    die "go build of the load generators failed"
  TENANTLOAD=$TMP/tenantload IDLECONNS=$TMP/idleconns
fi

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
start_postgres
load_data
if has_suite transaction || has_suite switching || has_suite memory; then
  has_suite transaction || has_suite memory && start_pgbouncer tx transaction "$POOL_SIZE"
  # shellcheck disable=SC2086 # MG_TX_FLAGS is a list of flags
  start_multigres tx --pool-mode "$TX_POOL_MODE" --default-pool-size "$POOL_SIZE" $MG_TX_FLAGS
  check_tx
fi
if has_suite session; then
  start_pgbouncer session session $((CLIENTS + 4))
  start_multigres session --pool-mode session
  start_multigres noguard --pool-mode session --guard=off
  start_multigres signed --pool-mode session --context-signing=on
  check_session
fi

log "fsync=off, synchronous_commit=off, full_page_writes=off (throwaway cluster)"
NRUNS=0
for test in "${TESTS[@]}"; do read -r -a tt <<<"${TEST_TARGETS[$test]}"; NRUNS=$((NRUNS + ${#tt[@]})); done
log "suites: $SUITES; $ROUNDS round(s) x $NRUNS runs (${#TESTS[@]} tests) x ${SECS} s"
for ((r = 1; r <= ROUNDS && ${#TESTS[@]} > 0; r++)); do
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
has_suite memory && run_memory
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# Tables. Per suite: test | median per target | ratio columns. A cell of a
# target that a test does not run is "–".
# ---------------------------------------------------------------------------
declare -A MED=()
for test in "${TESTS[@]}"; do
  for name in ${TEST_TARGETS[$test]}; do
    MED["$test|$name"]=$(printf '%s' "${RESULTS["$test|$name"]:-}" | median)
  done
done

# suite_tests SUITE / suite_targets SUITE: in table order.
suite_tests() { local t; for t in "${TESTS[@]}"; do [ "${TEST_SUITE[$t]}" = "$1" ] && echo "$t"; done; return 0; }
suite_targets() {
  local name t
  for name in "${TARGETS[@]}"; do
    while read -r t; do
      [ -n "$t" ] && [[ " ${TEST_TARGETS[$t]} " == *" $name "* ]] && { echo "$name"; break; }
    done < <(suite_tests "$1")
  done
}
fmt_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f×", a / b; else print "–" }'; }

# table SUITE [cpu]: medians of TPS, or with "cpu" the medians of the load
# generator's CPU share and the machine's busy share.
table() {
  local suite=$1 what=${2:-tps} hdr="| test |" sep="|---|" name col test row v
  local -a names tests
  mapfile -t names < <(suite_targets "$suite")
  mapfile -t tests < <(suite_tests "$suite")
  for name in "${names[@]}"; do
    if [ "$what" = cpu ]; then hdr+=" ${TARGET_LABEL[$name]} |"; else hdr+=" ${TARGET_LABEL[$name]} TPS |"; fi
    sep+="---:|"
  done
  if [ "$what" = tps ]; then
    for col in "${RATIOS[@]}"; do
      [ "${RATIO_SUITE[$col]}" = "$suite" ] || continue
      hdr+=" ${RATIO_LABEL[$col]} |"; sep+="---:|"
    done
  fi
  echo "$hdr"; echo "$sep"
  for test in "${tests[@]}"; do
    row="| \`$(test_label "$test")\` |"
    for name in "${names[@]}"; do
      if [[ " ${TEST_TARGETS[$test]} " != *" $name "* ]]; then row+=" – |"; continue; fi
      if [ "$what" = cpu ]; then
        v=${CPU["$test|$name"]:-}
        if [ -n "$v" ]; then
          row+=" $(tr ' ' '\n' <<<"$v" | cut -s -d/ -f1 | median)% / $(tr ' ' '\n' <<<"$v" | cut -s -d/ -f2 | median)% |"
        else
          row+=" n/a |"
        fi
        continue
      fi
      v=${MED["$test|$name"]}
      if [ -n "$v" ]; then row+=" $(printf '%.0f' "$v")"; else row+=" n/a"; fi
      [ -n "${FAILS["$test|$name"]:-}" ] && row+=" (${FAILS["$test|$name"]} of $ROUNDS failed)"
      row+=" |"
    done
    if [ "$what" = tps ]; then
      for col in "${RATIOS[@]}"; do
        [ "${RATIO_SUITE[$col]}" = "$suite" ] || continue
        row+=" $(fmt_ratio "${MED["$test|${col%/*}"]:-}" "${MED["$test|${col#*/}"]:-}") |"
      done
    fi
    echo "$row"
  done
}

# runs SUITE lists every run's TPS in round order, to show the spread behind
# each median (and, for switching, the share of transactions that ran on a
# server backend whose previous transaction was another tenant's).
runs() {
  local test name line v s
  while read -r test; do
    [ -n "$test" ] || continue
    line="- \`$(test_label "$test")\`:"
    for name in ${TEST_TARGETS[$test]}; do
      v=$(printf '%s' "${RESULTS["$test|$name"]:-}" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? ", " : ""), $i }')
      s=
      if [ -n "${SWITCHED["$test|$name"]:-}" ]; then
        s=$(awk -v s="${SWITCHED["$test|$name"]}" -v b="${BACKENDS["$test|$name"]}" 'BEGIN {
          n = split(s, a, " "); split(b, c, " "); printf " (switched"
          for (i = 1; i <= n; i++) printf "%s %.1f%%", (i > 1 ? "," : ""), 100 * a[i]
          printf "; server backends"
          for (i = 1; i <= n; i++) printf "%s %d", (i > 1 ? "," : ""), c[i]
          printf ")" }')
      fi
      if [ -n "${WINDOWS["$test|$name"]:-}" ]; then
        s=" (measured over $(awk '{ for (i = 1; i <= NF; i++) printf "%s%s", (i > 1 ? ", " : ""), $i }' <<<"${WINDOWS["$test|$name"]}"))"
      fi
      line+=" ${TARGET_LABEL[$name]} ${v:-none}$s;"
    done
    echo "${line%;}"
  done < <(suite_tests "$1")
}

# heavy_clients SUITE: the cells whose load generator took at least 40% of
# the machine (median): there the client, not the target, may set the pace.
heavy_clients() {
  local test name v c out=
  while read -r test; do
    [ -n "$test" ] || continue
    for name in ${TEST_TARGETS[$test]}; do
      v=${CPU["$test|$name"]:-}
      [ -n "$v" ] || continue
      c=$(tr ' ' '\n' <<<"$v" | cut -s -d/ -f1 | median)
      awk -v c="$c" 'BEGIN { exit !(c >= 40) }' && out+="\`$(test_label "$test")\` ${TARGET_LABEL[$name]} ($c%), "
    done
  done < <(suite_tests "$1")
  if [ -n "$out" ]; then
    echo "The load generator took at least 40% of the machine in: ${out%, }; there it competes with the target for the CPU and may set the pace."
  else
    echo "The load generator took less than 40% of the machine in every cell."
  fi
}

memory_table() {
  local which line
  echo "| proxy | idle connections | baseline VmRSS | VmRSS with them | KiB per idle connection | VmHWM | VmRSS after closing | login time |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for which in "${MEMORY_ROWS[@]}"; do
    line=${MEMORY[$which]}
    printf '| %s | %s | %s KiB | %s KiB | %s | %s KiB | %s KiB | %s s |\n' \
      "$(case $which in multigres) echo "multigres tx (tenants t1..t$IDLE_CONNS)" ;; multigres1) echo "multigres tx (all tenant t1)" ;;
        *) echo "PgBouncer tx (app_user)" ;; esac)" \
      "$(kv conns "$line")" "$(kv baseline_kib "$line")" "$(kv loaded_kib "$line")" "$(kv per_conn_kib "$line")" \
      "$(kv hwm_kib "$line")" "$(kv closed_kib "$line")" "$(kv connect_s "$line")"
  done
}

# Transaction pooling targets, from the medians.
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
  if (v == "") { print "not measured"; exit }
  ok = (op == ">=" ? v >= t : (op == ">" ? v > t : v <= t)); print (ok ? "**met**" : "**missed**") }'; }
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b }'; }
targets_table() {
  local r m
  echo "| target | measured | result |"
  echo "|---|---:|---|"
  if has_suite transaction; then
    for m in simple extended; do
      r=$(ratio_of "${MED["tx -S $m|tx_multigres"]:-}" "${MED["tx -S $m|tx_pgbouncer"]:-}")
      echo "| \`-S -M $m\`: multigres tx ≥ 1.2× PgBouncer tx | ${r:-–}× | $(verdict "$r" ">=" 1.2) |"
    done
    r=$(ratio_of "${MED["tx -S prepared|tx_multigres"]:-}" "${MED["tx -S extended|tx_pgbouncer"]:-}")
    echo "| multigres tx \`-M prepared\` > PgBouncer tx \`-M extended\` | ${r:-–}× | $(verdict "$r" ">" 1) |"
    r=$(ratio_of "${MED["tx -S -C simple|tx_multigres"]:-}" "${MED["tx -S -C simple|tx_pgbouncer"]:-}")
    echo "| \`-S -C\`: multigres tx ≥ 1.5× PgBouncer tx | ${r:-–}× | $(verdict "$r" ">=" 1.5) |"
  fi
  if has_suite switching; then
    for m in $SWITCH_MODES; do
      r=$(ratio_of "${MED["switch $m|sw_rotating"]:-}" "${MED["switch $m|sw_one"]:-}")
      echo "| switching ($m): $SWITCH_TENANTS tenants rotating ≥ 0.95× one tenant | ${r:-–}× | $(verdict "$r" ">=" 0.95) |"
    done
  fi
  if has_suite memory; then
    r=$(kv per_conn_kib "${MEMORY[multigres]:-}")
    echo "| ≤ 10 KiB VmRSS per idle client connection ($IDLE_CONNS) | ${r:-–} KiB | $(verdict "$r" "<=" 10) |"
  fi
}

PG_VERSION=$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
PGB_VERSION=$("$PGBOUNCER_BIN" --version | head -n 1 | sed 's/^PgBouncer //')
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ", with uncommitted changes" || true)
STAMP=$(date -u '+%Y-%m-%d %H:%M UTC')

SECTION="## $STAMP

- Machine: \`$(uname -srm)\`, ${CPU_MODEL:-unknown CPU}, $NPROC cores (nproc), $MEM RAM; load average ${START_LOAD} before, ${END_LOAD} after.
- PostgreSQL $PG_VERSION (fsync, synchronous_commit and full_page_writes off, huge pages $HUGE_PAGES), PgBouncer $PGB_VERSION, multigres \`$COMMIT\`$DIRTY; suites: $SUITES; $ROUNDS interleaved round(s) of ${SECS} s per run; scale $SCALE; median per cell."
if has_suite transaction || has_suite switching; then
  SECTION+="
- Transaction mode: multigres \`--pool-mode $TX_POOL_MODE --default-pool-size $POOL_SIZE${MG_TX_FLAGS:+ $MG_TX_FLAGS}\` (guard on), PgBouncer \`pool_mode = transaction\`, \`default_pool_size = $POOL_SIZE\`; database \`$TX_DB\` (accounts spread over tenants t1..t$TX_TENANTS; direct and PgBouncer as \`app_user\` with tenant t1)."
fi
if has_suite transaction; then
  SECTION+="

### Transaction pooling: pgbench, $TX_CLIENTS clients over $POOL_SIZE server connections

multigres tx, PgBouncer tx and direct: $TX_CLIENTS pgbench processes \`-n -c 1 -j 1 -T $((SECS + RAMP)) -l --aggregate-interval=1\` started at once (multigres: process i logs in as \`app_user.ti\`); TPS = transactions per second of all processes together over the seconds in which at least 90% of them were running (\"s@90%\" below; 50% when they never overlapped that much; \"sum\" = no such second, the sum of pgbench's TPS). \"1 pgbench\": one \`pgbench -n -c $TX_CLIENTS -j $THREADS -T $((SECS + RAMP))\`, its TPS without the initial connection time.

$(table transaction)

Load generator CPU (all pgbench processes, % of the machine's $NPROC cores) / machine busy, medians:

$(table transaction cpu)

$(heavy_clients transaction)

TPS of every run, in round order:

$(runs transaction)"
fi
if has_suite switching; then
  SECTION+="

### Tenant switching: bench/tenantload, $SWITCH_CONNS client connections, ${TX_CLIENTS} in flight, multigres tx (pool $POOL_SIZE)

Rotating: connection k logs in as \`app_user.t(k mod $SWITCH_TENANTS + 1)\`; each of $TX_CLIENTS workers uses its connections in turn. One tenant: all $SWITCH_CONNS connections are \`app_user.t1\`. \"Switched\" is the share of transactions that ran on a server backend whose previous transaction was another tenant's.

$(table switching)

Load generator CPU / machine busy, medians:

$(table switching cpu)

$(heavy_clients switching)

TPS of every run, in round order:

$(runs switching)"
fi
if has_suite memory; then
  SECTION+="

### Memory: idle client connections

$(memory_table)"
fi
if has_suite transaction || has_suite switching || has_suite memory; then
  SECTION+="

### Transaction pooling targets

$(targets_table)"
fi
if has_suite session; then
  SECTION+="

### Session mode: pgbench -n -c $CLIENTS -j $THREADS -T $SECS

multigres signed: database \`$SIGNED_DB\`, context reader \`${SIGNED_READER:-?}\`; multigres signed, PL/pgSQL reader: \`$SIGNED_PL_DB\`, the portable reader forced. Both through the same multigres instance (\`--context-signing=on\`).

$(table session)

TPS of every run, in round order:

$(runs session)"
fi

echo
echo "$SECTION"
if [ ${#ERROR_TEXT[@]} -gt 0 ]; then
  echo
  echo "Failed runs (first failure of each cell; pgbench output without its settings lines):"
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
