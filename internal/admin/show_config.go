package admin

import "context"

// showConfig: SHOW CONFIG, every key with its value in effect for new
// connections, its default and whether RELOAD applies a change
// (changeable). Secrets show as <redacted>.
func showConfig(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"key", "value", "default", "changeable"}}
	for _, s := range p.Config().Settings() {
		res.rows = append(res.rows, []string{s.Name, s.Value, s.Default, fmtYesNo(s.Reloadable)})
	}
	return res, nil
}

func fmtYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
