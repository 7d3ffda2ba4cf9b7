package admin

import (
	"context"
	"fmt"
)

// kill: KILL <tenant> closes every client connection of the tenant, named
// by its label as SHOW CLIENTS shows it (the username's context values
// joined by value_separator, e.g. "list123:user456"), with their server
// connections.
// The tag is "KILL n", n being how many were closed.
func kill(_ context.Context, p Proxy, args []string) (*result, error) {
	if len(args) != 1 || args[0] == "" {
		return nil, syntaxError("KILL needs exactly one tenant")
	}
	n := p.KillTenant(args[0])
	return &result{tag: fmt.Sprintf("KILL %d", n)}, nil
}
