package frontend

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/tenant"
)

// TestLoggerTenantLabel: a tenant connection's log lines carry the tenant
// label (all context values as written), a bypass user's none.
func TestLoggerTenantLabel(t *testing.T) {
	t.Parallel()
	rules := &tenant.Rules{TenantSeparator: ".", ValueSeparator: ":", TenantRoles: []string{"app_user"},
		ContextVariables: []string{"app.current_list_id", "app.current_user_id"}, SuperuserBypass: []string{"postgres"}}
	for user, want := range map[string]string{"app_user.list123:user456": ` tenant=list123:user456`, "postgres": ""} {
		var buf bytes.Buffer
		nc, peer := net.Pipe()
		defer nc.Close()
		defer peer.Close()
		c := &clientConn{srv: &Server{Logger: slog.New(slog.NewTextHandler(&buf, nil))}, nc: nc}
		ident, err := rules.Parse(user)
		if err != nil {
			t.Fatal(err)
		}
		c.ident = ident
		c.setLogUser(ident.User, false)
		c.logger().Info("x")
		line := buf.String()
		if got := strings.Contains(line, " tenant="); got != (want != "") || (want != "" && !strings.Contains(line, want)) {
			t.Errorf("%s: log line %q, want tenant attribute %q", user, line, want)
		}
	}
}
