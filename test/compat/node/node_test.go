// Package node runs the Node.js client compatibility suite: every example
// of the seed guide (docs: Using Multigres with Drizzle ORM) as written,
// with node-postgres (pg), postgres.js, Drizzle ORM and Express, through a
// real multigres proxy in front of a throwaway PostgreSQL, once per pool
// mode in poolModes.
//
// The suite itself is TypeScript under test/ (test/suite.ts runs every
// test/*.test.ts in one `node --test` process, through tsx), the guide's
// modules under src/. This Go test creates the database
// and the proxies (see test/compat/internal/compatenv), passes where they
// are in MG_* variables and fails with node's output when a test fails.
// Its packages come from package-lock.json: `make test` runs
// `scripts/ensure-deps.sh node-modules` (npm ci) first.
package node

import (
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/test/compat/internal/compatenv"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// poolModes are the pool modes the suite runs in.
var poolModes = []string{"session", "transaction"}

func TestNode(t *testing.T) {
	t.Parallel()
	compatenv.RequireFile(t, filepath.Join("node_modules", ".package-lock.json"),
		"run `scripts/ensure-deps.sh node-modules` (make test does)")
	compatenv.EachMode(t, poolModes, "", func(t *testing.T, e *compatenv.Env) {
		args := []string{"--import", "tsx", "--test", "--test-reporter=spec", "--test-timeout=60000", "test/suite.ts"}
		out := compatenv.Run(t, compatenv.Cmd{Env: e.Vars(t), Timeout: 3 * time.Minute}, "node", args...)
		// node --test exits 0 only when no test failed; also make sure
		// tests ran and none was skipped.
		counts := map[string]string{}
		for _, m := range summary.FindAllStringSubmatch(out, -1) {
			counts[m[1]] = m[2]
		}
		if counts["tests"] == "" || counts["tests"] == "0" || counts["pass"] != counts["tests"] ||
			counts["skipped"] != "0" || counts["todo"] != "0" {
			t.Fatalf("node --test summary %v: want every test run and passed:\n%s", counts, out)
		}
		if testing.Verbose() {
			t.Logf("node --test output:\n%s", out)
		}
	})
}

// summary matches the spec reporter's closing counts ("ℹ pass 5").
var summary = regexp.MustCompile(`(?m)^ℹ (tests|pass|fail|skipped|todo) (\d+)$`)
