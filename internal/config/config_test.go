package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := Default()
	want := &Config{
		ListenHost:         "127.0.0.1",
		Port:               6432,
		UpstreamHost:       "127.0.0.1",
		UpstreamPort:       5432,
		TenantSeparator:    ".",
		ValueSeparator:     ":",
		ContextVariables:   []string{"app.current_tenant_id"},
		SuperuserBypass:    []string{"postgres"},
		TenantRoles:        []string{"app_user"},
		TenantValuePattern: `^[A-Za-z0-9_.-]{1,63}$`,
		LogLevel:           "info",
		LogFormat:          "text",
		ClientTLSMode:      "allow",
		ServerTLSMode:      "prefer",
		MaxMessageSize:     1 << 30,
		HandshakeTimeout:   30 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		AuthType:           "scram-sha-256",
		AuthUser:           "multigres_auth",
		AuthQuery:          "SELECT usename, passwd FROM multigres.user_lookup($1)",
		AuthFailureDelay:   500 * time.Millisecond,
		ServerPassword:     map[string]string{},
		PoolMode:           "session",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", *c, *want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if got := c.ListenAddr(); got != "127.0.0.1:6432" {
		t.Errorf("ListenAddr() = %q", got)
	}
	if got := c.UpstreamAddr(); got != "127.0.0.1:5432" {
		t.Errorf("UpstreamAddr() = %q", got)
	}
	got, err := Load(nil, nil)
	if err != nil {
		t.Fatalf("Load(nil, nil): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(nil, nil) = %+v, want defaults", *got)
	}
}
