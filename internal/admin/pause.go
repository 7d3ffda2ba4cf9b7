package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// pause: PAUSE [db]. New logins to db (every database when omitted) wait,
// and so do new transactions of its idle clients; PAUSE returns once the
// running transactions have finished, so the upstream can be worked on.
// RESUME releases the waiters.
func pause(ctx context.Context, p Proxy, args []string) (*result, error) {
	db, err := optionalDB("PAUSE", args)
	if err != nil {
		return nil, err
	}
	if err := p.Pause(ctx, db); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, &wire.Error{Severity: wire.SeverityError, Code: wire.CodeQueryCanceled,
				Message: "canceling statement due to user request",
				Detail:  "The pause stays in effect; RESUME lifts it."}
		}
		return nil, commandError("PAUSE", err)
	}
	return &result{tag: "PAUSE"}, nil
}

// optionalDB reads the single optional database argument of PAUSE/RESUME.
func optionalDB(cmd string, args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", nil
	case 1:
		return args[0], nil
	}
	return "", syntaxError(fmt.Sprintf("%s takes at most one database name", cmd))
}

// commandError keeps a wire.Error from the proxy (it chose the code) and
// turns anything else into an ERROR naming the command.
func commandError(cmd string, err error) error {
	if we, ok := err.(*wire.Error); ok {
		return we
	}
	return &wire.Error{Severity: wire.SeverityError, Code: codeObjectNotInPrerequisiteState,
		Message: fmt.Sprintf("%s failed: %v", cmd, err)}
}

// codeObjectNotInPrerequisiteState (55000): PAUSE when already paused,
// RESUME when not paused, as PgBouncer answers.
const codeObjectNotInPrerequisiteState = "55000"
