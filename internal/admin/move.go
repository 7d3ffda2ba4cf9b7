package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// move: MOVE TENANT <tenant> TO <cluster> [PAUSE | SWITCH] moves a tenant
// to another upstream cluster without failing its transactions.
//
//	MOVE TENANT acme TO c2 PAUSE   pause acme's new logins and transactions,
//	                               wait for its open ones (tenant_move_timeout)
//	                               ... copy acme's rows from its old cluster ...
//	MOVE TENANT acme TO c2 SWITCH  route acme to c2 and resume it
//	MOVE TENANT acme TO c2         both at once, for data already in place
//	RESUME TENANT acme             call a paused move off
//
// The tenant is its label as SHOW CLIENTS shows it (double-quote it to
// keep blanks or quotes). Each step returns one row: tenant, from, to,
// state, waited_us (for open transactions), closed (session-mode
// connections ended by the switch: they must reconnect) and persisted
// (the route is in route_state_file).
func move(ctx context.Context, p Proxy, args []string) (*result, error) {
	if len(args) < 4 || len(args) > 5 || !strings.EqualFold(args[0], "TENANT") || !strings.EqualFold(args[2], "TO") {
		return nil, syntaxError("MOVE takes TENANT <tenant> TO <cluster> [PAUSE | SWITCH]")
	}
	step := MoveAll
	if len(args) == 5 {
		switch strings.ToUpper(args[4]) {
		case "PAUSE":
			step = MovePause
		case "SWITCH":
			step = MoveSwitch
		default:
			return nil, syntaxError(fmt.Sprintf("MOVE TENANT ... TO ... takes PAUSE, SWITCH or nothing, not %q", args[4]))
		}
	}
	mi, err := p.MoveTenant(ctx, args[1], args[3], step)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, &wire.Error{Severity: wire.SeverityError, Code: wire.CodeQueryCanceled,
				Message: "canceling statement due to user request",
				Detail:  fmt.Sprintf("Tenant %q stays paused; run the step again, or RESUME TENANT to call the move off.", args[1])}
		}
		return nil, commandError("MOVE TENANT", err)
	}
	return &result{tag: "MOVE", columns: []string{"tenant", "from", "to", "state", "waited_us", "closed", "persisted"},
		rows: [][]string{{mi.Tenant, mi.From, mi.To, mi.State, itoa(mi.Waited.Microseconds()), itoa(mi.Closed), fmtBool(mi.Persisted)}}}, nil
}

// showRoutes: SHOW ROUTES, the routing in effect in the order it is
// consulted: moves in progress (source "move", state "paused since ..."),
// runtime overrides left by MOVE TENANT (source "override"), the tenant
// directory's cached answers (source "tenant_directory", state "cached"), then the
// configuration's tenant_routes, database_routes and default_cluster
// items (match "*").
func showRoutes(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"match", "source", "cluster", "state"}}
	for _, r := range p.Routes() {
		res.rows = append(res.rows, []string{r.Match, r.Source, r.Cluster, r.State})
	}
	return res, nil
}
