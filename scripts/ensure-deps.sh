#!/usr/bin/env bash
# Installs what multigres' make targets need when it is missing:
#   postgres   PostgreSQL server binaries (initdb, postgres, psql, pgbench)
#   staticcheck
#   pgbouncer  (benchmarks only)
#   haproxy    the load balancer in front of test/fleet's processes (apt haproxy)
#   node-modules  test/compat/node's packages (npm ci), when node_modules is
#                 missing or older than package-lock.json
#   jdbc       pgJDBC (apt libpostgresql-jdbc-java: /usr/share/java/postgresql.jar)
#   psycopg2   psycopg2 for /usr/bin/python3 (apt python3-psycopg2)
#   compat     everything the client compatibility suites in test/compat need
#   citus      Citus for test/citus, from ../shared/citus/install.sh when that
#              file exists beside the repository and Citus is missing (the
#              tests skip, saying so, without it)
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

have_pg_server() {
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && return 0
  command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "${APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq >/dev/null
    export APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

for what in "$@"; do
  case "$what" in
    postgres)
      if ! have_pg_server || ! command -v psql >/dev/null 2>&1 || ! command -v pgbench >/dev/null 2>&1; then
        echo "ensure-deps: installing PostgreSQL (apt-get install postgresql postgresql-contrib)"
        apt_install postgresql postgresql-contrib postgresql-client
      fi
      ;;
    staticcheck)
      if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
        echo "ensure-deps: installing staticcheck"
        go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
      fi
      ;;
    pgbouncer)
      if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
        echo "ensure-deps: installing pgbouncer"
        apt_install pgbouncer
      fi
      ;;
    haproxy)
      if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
        echo "ensure-deps: installing haproxy (apt-get install haproxy)"
        apt_install haproxy
      fi
      ;;
    node-modules)
      dir="$root/test/compat/node"
      if ! command -v npm >/dev/null 2>&1; then
        echo "ensure-deps: installing Node.js and npm (apt-get install nodejs npm)"
        apt_install nodejs npm
      fi
      # npm ci writes node_modules/.package-lock.json; stale when the
      # committed lock file is newer (or differs).
      if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
         [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "ensure-deps: npm ci in test/compat/node"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
      fi
      ;;
    jdbc)
      if ! command -v javac >/dev/null 2>&1; then
        echo "ensure-deps: installing a JDK (apt-get install default-jdk-headless)"
        apt_install default-jdk-headless
      fi
      if [ ! -f /usr/share/java/postgresql.jar ]; then
        echo "ensure-deps: installing pgJDBC (apt-get install libpostgresql-jdbc-java)"
        apt_install libpostgresql-jdbc-java
      fi
      ;;
    psycopg2)
      if ! /usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1; then
        echo "ensure-deps: installing psycopg2 (apt-get install python3-psycopg2)"
        apt_install python3 python3-psycopg2
      fi
      ;;
    compat)
      "$0" postgres node-modules jdbc psycopg2
      ;;
    citus)
      installer="$root/../shared/citus/install.sh"
      if [ -f "$installer" ] && have_pg_server; then
        libdir=$(pg_config --pkglibdir 2>/dev/null || true)
        sharedir=$(pg_config --sharedir 2>/dev/null || true)
        if [ ! -f "$libdir/citus.so" ] || [ ! -f "$sharedir/extension/citus.control" ]; then
          echo "ensure-deps: installing Citus ($installer)"
          if [ "$(id -u)" -eq 0 ]; then
            bash "$installer"
          elif command -v sudo >/dev/null 2>&1; then
            sudo bash "$installer"
          else
            echo "ensure-deps: Citus needs root to install; run $installer as root (test/citus skips without it)" >&2
          fi
        fi
      fi
      ;;
    *) echo "ensure-deps: unknown dependency $what" >&2; exit 2 ;;
  esac
done
