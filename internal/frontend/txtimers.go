package frontend

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
)

// Settings a previous client leaves on a pooled connection that the next
// client's switch would run under. Timers first. The context
// switch runs on the connection before the client's statements, so it
// runs under the previous client's statement_timeout and lock_timeout: a
// tenant that set them to a millisecond could make the next tenant's
// switch time out, and that tenant would be ended. When a connection
// carries such a short timer that the client does not share, multigres
// resets both in a round trip of their own first. Nothing of the client's
// has been sent yet, so if the reset itself times out it is retried, and
// past that the connection is closed and another one used.

// shortTimer is the bound below which a previous client's timeout is
// reset before a switch: a switch takes microseconds, so only a server
// stalled longer than this could time it out.
const shortTimer = time.Second

var timerSettings = []string{"statement_timeout", "lock_timeout"}

// needsTimerReset reports whether server carries a short timer the client
// does not share (or unknown timers).
func needsTimerReset(server, client map[string]string) bool {
	for _, name := range timerSettings {
		v, ok := server[name]
		if !ok || v == client[name] {
			continue
		}
		if d, err := parseGUCDuration(v); err != nil || d > 0 && d < shortTimer {
			return true
		}
	}
	return false
}

// parseGUCDuration reads a time setting as PostgreSQL does: a number with
// an optional unit (us, ms, s, min, h, d), milliseconds when none.
func parseGUCDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' })
	num, unit := v, "ms"
	if i >= 0 {
		num, unit = v[:i], strings.TrimSpace(v[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("time setting %q: %w", v, err)
	}
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
		"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[unit]
	if scale == 0 {
		return 0, fmt.Errorf("time setting %q: unknown unit", v)
	}
	return time.Duration(f * float64(scale)), nil
}

var errPreReset = errors.New("resetting a previous client's settings before the switch failed")

// preSwitchResets lists the settings a connection carries from its
// previous client that the next client's switch must not run under, to be
// reset in a round trip of their own first: a short timer (see above); a
// client_encoding the client does not share, since the server decodes the
// switch's bound values with it (LATIN1 would turn "Zürich" into
// "ZÃ¼rich"); and, for a login (which applies its context without the
// switch's own BEGIN), transaction defaults. Unknown settings reset all.
func preSwitchResets(server, client map[string]string, login bool) []string {
	if isUnknownSettings(server) {
		return []string{"statement_timeout", "lock_timeout", "client_encoding",
			"default_transaction_isolation", "default_transaction_read_only", "default_transaction_deferrable"}
	}
	var out []string
	if needsTimerReset(server, client) {
		out = append(out, timerSettings...)
	}
	if v, ok := server["client_encoding"]; ok && v != client["client_encoding"] {
		out = append(out, "client_encoding")
	}
	if login && shapesTransactions(server) {
		out = append(out, shapingSettings[:3]...)
	}
	return out
}

// resetSettings prepares sc for the client before its switch (sc held by
// the caller, nothing else in flight): each of names is put back to its
// default, except client_encoding, which takes the client's own value so
// that the switch's bound values are read in it. It runs as SET and RESET
// statements, which take no snapshot (a SELECT under another client's
// serializable deferrable default would wait for a safe snapshot), tried
// up to three times (a short timeout can cancel it), and records the
// result in sc.Settings.
func resetSettings(sc *pool.Conn, names []string, client map[string]string) error {
	var q strings.Builder
	var changes []sqlguard.Setting
	for _, name := range names { // names are multigres' own constants
		if v, ok := client[name]; ok && name == "client_encoding" {
			q.WriteString("SET " + name + " = '" + strings.ReplaceAll(v, "'", "''") + "'; ")
			changes = append(changes, sqlguard.Setting{Name: name, Value: v})
			continue
		}
		q.WriteString("RESET " + name + "; ")
		changes = append(changes, sqlguard.Setting{Name: name, Reset: true})
	}
	for range 3 {
		sc.UnnamedOwner = 0 // a simple query drops the unnamed statement
		_, err := sc.SimpleQuery(q.String(), 5*time.Second)
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			continue // the server refused it (a short timeout): try again
		}
		if err != nil {
			return err
		}
		if !isUnknownSettings(sc.Settings) {
			sc.Settings = withSettings(sc.Settings, changes)
		}
		return nil
	}
	return errPreReset
}
