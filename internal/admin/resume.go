package admin

import "context"

// resume: RESUME [db] lifts a PAUSE of db, or the global PAUSE when db is
// omitted; waiting logins and queries proceed.
func resume(_ context.Context, p Proxy, args []string) (*result, error) {
	db, err := optionalDB("RESUME", args)
	if err != nil {
		return nil, err
	}
	if err := p.Resume(db); err != nil {
		return nil, commandError("RESUME", err)
	}
	return &result{tag: "RESUME"}, nil
}
