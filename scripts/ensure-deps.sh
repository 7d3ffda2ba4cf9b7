#!/usr/bin/env bash
# Installs what multigres' make targets need when it is missing:
#   postgres   PostgreSQL server binaries (initdb, postgres, psql, pgbench)
#   staticcheck
#   pgbouncer  (benchmarks only)
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

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
    *) echo "ensure-deps: unknown dependency $what" >&2; exit 2 ;;
  esac
done
