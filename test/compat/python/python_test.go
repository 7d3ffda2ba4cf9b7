// Package python runs the psycopg2 client compatibility check, compat.py
// (unittest), through a real multigres proxy in front of a throwaway
// PostgreSQL, once per pool mode in poolModes. It uses /usr/bin/python3 with
// Debian's python3-psycopg2 (`make test` installs it through
// scripts/ensure-deps.sh psycopg2), not whatever python3 is first on PATH,
// and passes the database and proxies in MG_* variables (see
// test/compat/internal/compatenv).
package python

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/test/compat/internal/compatenv"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// poolModes are the pool modes the suite runs in.
var poolModes = []string{"session", "transaction"}

const python = "/usr/bin/python3"

// ran matches unittest's summary line.
var ran = regexp.MustCompile(`(?m)^Ran (\d+) tests? in`)

func TestPsycopg2(t *testing.T) {
	t.Parallel()
	compatenv.RequireFile(t, python, "install python3 (make test does, with python3-psycopg2)")
	src, err := os.ReadFile("compat.py")
	if err != nil {
		t.Fatal(err)
	}
	tests := strings.Count(string(src), "\n    def test_")
	compatenv.EachMode(t, poolModes, "", func(t *testing.T, e *compatenv.Env) {
		out := compatenv.Run(t, compatenv.Cmd{Env: append(e.Vars(t), "PYTHONDONTWRITEBYTECODE=1"), Timeout: 2 * time.Minute},
			python, "compat.py")
		m := ran.FindStringSubmatch(out)
		if m == nil || m[1] != strconv.Itoa(tests) || !strings.Contains(out, "\nOK\n") || strings.Contains(out, "skipped") {
			t.Fatalf("compat.py did not run and pass all %d tests:\n%s", tests, out)
		}
		if testing.Verbose() {
			t.Logf("compat.py:\n%s", out)
		}
	})
}
