package admin

import (
	"context"
	"strings"
)

// resume: RESUME [db] lifts a PAUSE of db, or the global PAUSE when db is
// omitted; waiting logins and queries proceed. RESUME TENANT <tenant>
// calls off a MOVE TENANT that paused and has not switched.
func resume(_ context.Context, p Proxy, args []string) (*result, error) {
	if len(args) == 2 && strings.EqualFold(args[0], "TENANT") {
		if err := p.ResumeTenant(args[1]); err != nil {
			return nil, commandError("RESUME TENANT", err)
		}
		return &result{tag: "RESUME"}, nil
	}
	db, err := optionalDB("RESUME", args)
	if err != nil {
		return nil, err
	}
	if err := p.Resume(db); err != nil {
		return nil, commandError("RESUME", err)
	}
	return &result{tag: "RESUME"}, nil
}
