package admin

import "context"

// showVersion: SHOW VERSION, one row, one column, as PgBouncer.
func showVersion(_ context.Context, _ Proxy, _ []string) (*result, error) {
	return &result{tag: "SHOW", columns: []string{"version"}, rows: [][]string{{"multigres " + Version}}}, nil
}
