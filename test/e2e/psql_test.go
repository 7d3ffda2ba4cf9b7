package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// psql runs the real psql through the proxy, with libpq's default sslmode
// (prefer: SSLRequest answered N) and the password in PGPASSWORD.
func (e *env) psql(t *testing.T, user, password, sql string) (stdout, stderr string, err error) {
	t.Helper()
	bin, lerr := exec.LookPath("psql")
	if lerr != nil {
		dir, derr := pgtest.FindBinDir()
		if derr != nil {
			t.Fatalf("psql not found: %v", lerr)
		}
		bin = dir + "/psql"
	}
	host, port, _ := strings.Cut(e.proxy.Addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
		fmt.Sprintf("host=%s port=%s dbname=%s user=%s connect_timeout=10", host, port, e.db, user))
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGSSLMODE=prefer", "PGCONNECT_TIMEOUT=10")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestPsqlClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, tc := range []struct {
		user, password, sql, want string
	}{
		{"app_user.acme", proxytest.AppUserPassword, "SELECT name FROM contacts ORDER BY name", "Alice\nBob\n"},
		{"app_user.globex", proxytest.AppUserPassword, "SELECT current_user || ' ' || current_tenant_id(); SELECT count(*) FROM contacts", "app_user globex\n1\n"},
		{"postgres", pgtest.SuperPassword, "SELECT name FROM contacts ORDER BY name", "Alice\nBob\nGina\n"},
		{"app_user.acme", proxytest.AppUserPassword, "DELETE FROM contacts WHERE tenant_id = 'globex'", "DELETE 0\n"},
	} {
		out, errOut, err := e.psql(t, tc.user, tc.password, tc.sql)
		if err != nil || out != tc.want {
			t.Fatalf("psql as %s: %q, want %q (err %v, stderr %q)", tc.user, out, tc.want, err, errOut)
		}
	}
	for _, tc := range []struct{ user, password, want string }{
		{"app_user.acme", "wrong", `FATAL:  password authentication failed for user "app_user.acme"`},
		{"app_user", proxytest.AppUserPassword, `FATAL:  Username must contain context values separated by '.'` + "\nDETAIL:  Expected format: role.value1 (e.g. app_user.acme)"},
	} {
		_, errOut, err := e.psql(t, tc.user, tc.password, "SELECT 1")
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Fatalf("psql as %s: err %v, stderr %q, want %q", tc.user, err, errOut, tc.want)
		}
	}
}
