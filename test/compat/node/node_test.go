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
	"testing"

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
		compatenv.RunNodeSuite(t, ".", e)
	})
}
