package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTenantControls: the per-tenant keys parse from flags and env, and
// bad patterns or out-of-range timeouts are refused at load time.
func TestTenantControls(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, []string{"--tenant-allow=acme,team-*", "--tenant-deny=team-x?", "--tenant-max-connections=5",
		"--tenant-statement-timeout=1.5s"}, []string{"MULTIGRES_TENANT_RATE_LIMIT=7", "MULTIGRES_TENANT_IDLE_TIMEOUT=90"})
	if !slices.Equal(c.TenantAllow, []string{"acme", "team-*"}) || !slices.Equal(c.TenantDeny, []string{"team-x?"}) ||
		c.TenantMaxConnections != 5 || c.TenantRateLimit != 7 || c.TenantStatementTimeout != 1500*time.Millisecond ||
		c.TenantIdleTimeout != 90*time.Second {
		t.Fatalf("tenant keys not loaded: %+v", c)
	}
	for _, tc := range []struct{ arg, want string }{
		{"--tenant-deny=team-[", `tenant_deny: "team-[" is not a valid pattern`},
		{"--tenant-allow=a,,b", "tenant_allow: item 2 is empty"},
		{"--tenant-statement-timeout=500us", "tenant_statement_timeout: must be 0 or from 1ms"},
		{"--tenant-max-connections=-1", "tenant_max_connections"},
	} {
		if _, err := Load([]string{tc.arg}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.arg, err, tc.want)
		}
	}
}
