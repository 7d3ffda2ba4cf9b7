package config

import (
	"fmt"
	"slices"
)

// CitusFor reports whether database db's upstream is a Citus coordinator
// (citus_databases).
func (c *Config) CitusFor(db string) bool { return slices.Contains(c.CitusDatabases, db) }

// validateCitus checks the rules that tie citus_databases to other keys.
// Signed context cannot work on Citus: a MAC is bound to the coordinator
// backend it was computed for, and the workers' sessions (other backends,
// opened by Citus) could never verify it, so every read there would fail.
func (c *Config) validateCitus() []error {
	if len(c.CitusDatabases) > 0 && c.ContextSigning {
		return []error{fmt.Errorf("context_signing, citus_databases: signed context cannot be used with Citus databases " +
			"(a MAC is bound to the coordinator's backend, and the workers' sessions cannot verify it); turn context_signing off or remove citus_databases")}
	}
	return nil
}
