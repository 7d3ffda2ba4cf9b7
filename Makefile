# multigres: the two quick-start commands are `make demo` and `make test`.
# Each installs what is missing (PostgreSQL via apt-get, staticcheck via go install).

GO        ?= go
GOBIN     := $(shell $(GO) env GOPATH)/bin
TESTFLAGS ?=
export PATH := $(GOBIN):$(PATH)

.PHONY: all build native test test-deps demo demo-check bench lint fuzz deps clean

all: build

build:
	$(GO) build -o bin/multigres ./cmd/multigres

deps:
	@scripts/ensure-deps.sh postgres

## native: ext/multigres_context.so, the native reader of signed tenant context
## (docs/operations.md); test clusters load it, so the suite covers it.
native: deps
	@scripts/build-native.sh

# The client compatibility suites also need Node packages, pgJDBC and psycopg2.
test-deps: deps
	@scripts/ensure-deps.sh node-modules jdbc psycopg2

## test: the whole suite against throwaway PostgreSQL clusters (includes `multigres demo --check`).
test: test-deps native
	$(GO) test -count=1 -timeout 20m $(TESTFLAGS) ./...

## demo: throwaway PostgreSQL with demo tenants + proxy on 127.0.0.1:6432.
demo: deps
	$(GO) run ./cmd/multigres demo

demo-check: deps
	$(GO) run ./cmd/multigres demo --check

## bench: side by side against direct PostgreSQL, PgBouncer and multigres (bench/run.sh;
## BENCH_SUITES=all adds the session-mode suite; `bash bench/run.sh --help` lists the knobs).
bench: deps build native
	@scripts/ensure-deps.sh pgbouncer
	bash bench/run.sh

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
