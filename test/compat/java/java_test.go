// Package java runs the pgJDBC client compatibility check, Compat.java,
// through a real multigres proxy in front of a throwaway PostgreSQL, once
// per pool mode in poolModes. The program is compiled with javac at test
// time against the Debian package's jar (libpostgresql-jdbc-java,
// /usr/share/java/postgresql.jar; `make test` installs it through
// scripts/ensure-deps.sh jdbc) and gets the database and proxies in MG_*
// variables (see test/compat/internal/compatenv).
package java

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/test/compat/internal/compatenv"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// poolModes are the pool modes the suite runs in.
var poolModes = []string{"session", "transaction"}

// jar is pgJDBC as Debian installs it.
const jar = "/usr/share/java/postgresql.jar"

func TestPgJDBC(t *testing.T) {
	t.Parallel()
	compatenv.RequireFile(t, jar, "run `scripts/ensure-deps.sh jdbc` (make test does)")
	src, err := os.ReadFile("Compat.java")
	if err != nil {
		t.Fatal(err)
	}
	checks := strings.Count(string(src), "\n        check(\"")
	classes := t.TempDir()
	compatenv.Run(t, compatenv.Cmd{Timeout: 2 * time.Minute}, "javac", "-Xlint:all", "-Werror",
		"-cp", jar, "-d", classes, "Compat.java")
	compatenv.EachMode(t, poolModes, "", func(t *testing.T, e *compatenv.Env) {
		out := compatenv.Run(t, compatenv.Cmd{Env: e.Vars(t), Timeout: 2 * time.Minute},
			"java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classes+":"+jar, "Compat")
		if !strings.Contains(out, "\nPASS\n") || strings.Contains(out, "FAIL") || strings.Count(out, "\nok   ") != checks {
			t.Fatalf("Compat.java did not pass all %d checks:\n%s", checks, out)
		}
		if testing.Verbose() {
			t.Logf("java Compat:\n%s", out)
		}
	})
}
