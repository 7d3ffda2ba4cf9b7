package config

import (
	"strings"
	"testing"
)

// TestCitusDatabases: citus_databases names the Citus databases, and
// signed context, which the workers could never verify, is refused at
// startup with an error naming both keys.
func TestCitusDatabases(t *testing.T) {
	t.Parallel()
	c, err := Load([]string{"--citus-databases", "app, shop"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CitusFor("app") || !c.CitusFor("shop") || c.CitusFor("other") {
		t.Errorf("CitusFor: %v", c.CitusDatabases)
	}
	_, err = Load([]string{"--citus-databases", "app", "--context-signing=on"}, nil)
	if err == nil || !strings.Contains(err.Error(), "context_signing, citus_databases:") {
		t.Errorf("signing with Citus: %v", err)
	}
	if _, err := Load([]string{"--citus-databases", "app,,x"}, nil); err == nil || !strings.Contains(err.Error(), "citus_databases") {
		t.Errorf("empty database name: %v", err)
	}
}
