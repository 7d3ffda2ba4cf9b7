#!/usr/bin/env bash
# Builds ext/multigres_context.so, the native reader of signed tenant context
# (ext/multigres_context.c; docs/operations.md, "Native context reader"),
# for the PostgreSQL server that the tests and benchmarks run: the same
# binaries internal/pgtest finds (pg_config --bindir, PATH,
# /usr/lib/postgresql/*/bin).
#
# The server headers come from postgresql-server-dev-<major> when it is
# installed; otherwise that package is fetched with `apt-get download` and
# unpacked under .cache/pgdev/<major> (no root needed, nothing installed
# system-wide). Headers of any minor release of the major version build a
# module that the server loads (PostgreSQL checks the major version).
#
# Usage: scripts/build-native.sh [--print-path]
#   --print-path  print the library's path after building it
# Environment: PG_BINDIR  server binaries to build for (default: as above)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/ext/multigres_context.c"
out="$root/ext/multigres_context.so"

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local d
  if d=$(pg_config --bindir 2>/dev/null) && [ -x "$d/postgres" ]; then echo "$d"; return; fi
  if d=$(command -v postgres 2>/dev/null); then dirname "$d"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/postgres" ] && { echo "$d"; return; }
  done
  echo "build-native: PostgreSQL server binaries not found; run scripts/ensure-deps.sh postgres" >&2
  exit 1
}

bindir=$(find_bindir)
major=$("$bindir/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
[ -n "$major" ] || { echo "build-native: cannot tell the major version of $bindir/postgres" >&2; exit 1; }

find_headers() {
  local d
  if d=$(pg_config --includedir-server 2>/dev/null) && [ -f "$d/postgres.h" ] &&
     pg_config --version 2>/dev/null | grep -q "PostgreSQL $major\."; then
    echo "$d"; return
  fi
  for d in "/usr/include/postgresql/$major/server" "$root/.cache/pgdev/$major/usr/include/postgresql/$major/server"; do
    [ -f "$d/postgres.h" ] && { echo "$d"; return; }
  done
  return 1
}

fetch_headers() {
  local dest="$root/.cache/pgdev/$major" tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "build-native: fetching postgresql-server-dev-$major (headers only, unpacked under .cache/pgdev)" >&2
  # apt-get download runs as the invoking user and needs only package lists;
  # refresh them once if the package is unknown.
  if ! (cd "$tmp" && apt-get download "postgresql-server-dev-$major" >/dev/null 2>&1); then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get download "postgresql-server-dev-$major" >/dev/null 2>&1) || {
      echo "build-native: apt-get download postgresql-server-dev-$major failed" >&2; exit 1; }
  fi
  mkdir -p "$dest"
  dpkg-deb -x "$tmp"/postgresql-server-dev-"$major"_*.deb "$dest"
}

headers=$(find_headers) || { fetch_headers; headers=$(find_headers); }

if [ ! -f "$out" ] || [ "$src" -nt "$out" ] || [ "$0" -nt "$out" ]; then
  cc=${CC:-cc}
  $cc -O2 -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes -Werror \
    -fPIC -shared -I"$headers" -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
  echo "build-native: built $out for PostgreSQL $major" >&2
fi
if [ "${1:-}" = "--print-path" ]; then echo "$out"; fi
