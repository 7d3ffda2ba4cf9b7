package admin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// psql runs the real psql against the console with the given -c commands.
func psql(t *testing.T, p *proxytest.Proxy, user, password string, cmds ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, lerr := exec.LookPath("psql")
	if lerr != nil {
		dir, derr := pgtest.FindBinDir()
		if derr != nil {
			t.Fatalf("psql not found: %v", lerr)
		}
		bin = dir + "/psql"
	}
	host, port, _ := strings.Cut(p.Addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := []string{"-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, fmt.Sprintf("host=%s port=%s dbname=%s user=%s connect_timeout=10", host, port, admin.Database, user))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGSSLMODE=prefer", "PGCONNECT_TIMEOUT=10")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestPsql drives the console with the real psql: SHOW output, commands,
// an unknown command's error, and a refused non-admin user.
func TestPsql(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	tenant(t, ctx, p, db, "app_user.acme")
	out, errOut, err := psql(t, p, adminUser, adminPassword, "SHOW VERSION", "show pools;", "PAUSE "+db, "RESUME "+db, "KILL nobody")
	if err != nil {
		t.Fatalf("psql: %v, stderr %q", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "multigres ") ||
		!strings.HasPrefix(lines[1], db+"|app_user|1|0|0|1|0|0|0|0|0|session") {
		t.Errorf("psql output:\n%s", out)
	}
	// psql -t prints command tags only for commands without rows.
	_, errOut, err = psql(t, p, adminUser, adminPassword, "SHOW POLLS")
	if err == nil || !strings.Contains(errOut, `ERROR:  unknown SHOW item "POLLS"`) || !strings.Contains(errOut, "HINT:  Commands: SHOW CLIENTS") {
		t.Errorf("unknown item: err %v, stderr %q", err, errOut)
	}
	_, errOut, err = psql(t, p, "app_user.acme", proxytest.AppUserPassword, "SHOW POOLS")
	if err == nil || !strings.Contains(errOut, `FATAL:  user "app_user.acme" may not connect to the admin console`) {
		t.Errorf("non-admin: err %v, stderr %q", err, errOut)
	}
}
