package admin

import "context"

// reload: RELOAD re-reads the configuration as SIGHUP does: reloadable keys
// apply to new connections, open connections are kept.
func reload(_ context.Context, p Proxy, args []string) (*result, error) {
	if len(args) > 0 {
		return nil, syntaxError("RELOAD takes no arguments")
	}
	if err := p.ReloadConfig(); err != nil {
		return nil, commandError("RELOAD", err)
	}
	return &result{tag: "RELOAD"}, nil
}
