package admin

import "context"

// shutdown: SHUTDOWN starts a graceful shutdown, as SIGTERM does: no new
// connections, open sessions get shutdown_timeout to finish. The command
// completes before the proxy goes away.
func shutdown(_ context.Context, p Proxy, args []string) (*result, error) {
	if len(args) > 0 {
		return nil, syntaxError("SHUTDOWN takes no arguments")
	}
	p.RequestShutdown()
	return &result{tag: "SHUTDOWN"}, nil
}
