# multigres: the two quick-start commands are `make demo` and `make test`.
# Each installs what is missing (PostgreSQL via apt-get, staticcheck via go install).

GO        ?= go
GOBIN     := $(shell $(GO) env GOPATH)/bin
TESTFLAGS ?=
export PATH := $(GOBIN):$(PATH)

.PHONY: all build native test test-deps demo demo-check bench bench-citus bench-docs lint fuzz deps clean

all: build

build:
	$(GO) build -o bin/multigres ./cmd/multigres

deps:
	@scripts/ensure-deps.sh postgres

## native: ext/multigres_context.so, the native reader of signed tenant context
## (docs/operations.md); test clusters load it, so the suite covers it.
native: deps
	@scripts/build-native.sh

# The client compatibility suites also need Node packages, pgJDBC and psycopg2;
# test/fleet needs HAProxy in front of its multigres processes; test/citus
# needs Citus (installed from ../shared/citus when it is there).
test-deps: deps
	@scripts/ensure-deps.sh node-modules jdbc psycopg2 haproxy citus

## test: the whole suite against throwaway PostgreSQL clusters (includes `multigres demo --check`).
test: test-deps native
	$(GO) test -count=1 -timeout 20m $(TESTFLAGS) ./...

## demo: throwaway PostgreSQL with demo tenants + proxy on 127.0.0.1:6432.
demo: deps
	$(GO) run ./cmd/multigres demo

demo-check: deps
	$(GO) run ./cmd/multigres demo --check

## bench: side by side against direct PostgreSQL, PgBouncer and multigres (bench/cmd/mgbench):
## writes bench/results/<UTC time>-<commit>.json and prints the tables. BENCHFLAGS passes flags
## (BENCHFLAGS='-suites all' adds the session-mode suite, -quick is a smoke test); BASELINE=rev
## also builds multigres at rev and runs it side by side; `go run ./bench/cmd/mgbench -help`
## lists the knobs (BENCH_* environment variables work too).
BENCHFLAGS ?=
BASELINE   ?=
bench: deps build native
	@scripts/ensure-deps.sh pgbouncer
	$(GO) run ./bench/cmd/mgbench $(if $(BASELINE),-baseline $(BASELINE)) $(BENCHFLAGS)

## bench-citus: the citus suite alone (a Citus coordinator and two workers: straight as the superuser,
## straight as a tenant opening its own SET LOCAL block, multigres in session and transaction mode);
## installs Citus when missing (scripts/ensure-deps.sh citus). BENCHFLAGS passes flags, e.g. -rounds 1.
bench-citus: deps build
	@scripts/ensure-deps.sh citus
	$(GO) run ./bench/cmd/mgbench -suites citus $(BENCHFLAGS)

## bench-docs: render the newest results of each suite into docs/benchmarks.md (never done by `make bench`).
bench-docs:
	$(GO) run ./bench/cmd/mgbench docs

## lint: gofmt, go vet, staticcheck.
lint:
	@scripts/ensure-deps.sh staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

## fuzz: run every fuzz target for FUZZTIME each (default 2m).
FUZZTIME ?= 2m
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin .multigres-demo ext/*.so .cache/pgdev
