package txstate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
)

// Settings sets. A client's tracked settings (and a server's) are an
// immutable map, shared by every client and connection with the same
// values: thousands of clients of one application log in with the same
// application_name, DateStyle and so on, so they share one map instead of
// holding a copy each. A change makes a new map (copy on write). Nothing
// may modify a map these functions return; the empty set is nil.

// maxSettingsBuckets bounds the interning table: past it, new sets are
// still correct, only not shared.
const maxSettingsBuckets = 1024

// maxInternedKey is the largest settings set (in settingsKey form) that is
// interned.
const maxInternedKey = 1 << 10

// The interning table is process-wide: sharing across clients is its
// point. It is the package's only shared state, under its own lock.
var settingsBuckets = struct {
	sync.Mutex
	m map[string]map[string]string
}{m: map[string]map[string]string{}}

// Intern returns the shared map equal to m (m itself the first time). The
// caller gives up m. Only sets from startup parameters are interned, and
// only small ones: a table a client could fill with what it SETs (values
// of up to the guard's statement size) would pin memory for good.
func Intern(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	key := settingsKey(m)
	if len(key) > maxInternedKey {
		return m
	}
	settingsBuckets.Lock()
	defer settingsBuckets.Unlock()
	if shared, ok := settingsBuckets.m[key]; ok {
		return shared
	}
	if len(settingsBuckets.m) < maxSettingsBuckets {
		settingsBuckets.m[key] = m
	}
	return m
}

// settingsKey is m in a canonical form: names sorted, NUL-separated (NUL
// cannot occur in a name or a value).
func settingsKey(m map[string]string) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(name)
		b.WriteByte(0)
		b.WriteString(m[name])
		b.WriteByte(0)
	}
	return b.String()
}

// WithSettings returns a new map: base with the changes applied (not
// interned, see Intern).
func WithSettings(base map[string]string, changes []sqlguard.Setting) map[string]string {
	next := maps.Clone(base)
	if next == nil {
		next = map[string]string{}
	}
	for _, s := range changes {
		if s.Reset {
			delete(next, s.Name)
			continue
		}
		next[s.Name] = s.Value
	}
	if len(next) == 0 {
		return nil
	}
	return next
}

// Unknown marks every tracked setting with a value no client has, so the
// next switch resets or re-sets them all.
func Unknown() map[string]string { return unknownSettings }

var unknownSettings = func() map[string]string {
	m := make(map[string]string, len(sqlguard.TrackedSettings))
	for _, name := range sqlguard.TrackedSettings {
		m[name] = "\x00unknown"
	}
	return m
}()

// IsUnknown reports whether m is the Unknown marker set.
func IsUnknown(m map[string]string) bool {
	return len(m) > 0 && len(m) == len(unknownSettings) && m[sqlguard.TrackedSettings[0]] == "\x00unknown"
}

// shapingSettings shape the transaction a statement starts, or bound the
// statements in it: under the short switch the client's query runs in the
// transaction the switch began, under the connection's previous values
// (read-only, serializable, another client's statement_timeout timer).
var shapingSettings = []string{"default_transaction_isolation", "default_transaction_read_only",
	"default_transaction_deferrable", "statement_timeout", "lock_timeout"}

// sameShaping reports whether a connection's settings and a client's agree
// on every shaping setting, so the short switch may share the client's
// transaction.
func sameShaping(server, client map[string]string) bool {
	for _, name := range shapingSettings {
		sv, sok := server[name]
		cv, cok := client[name]
		if sok != cok || sv != cv {
			return false
		}
	}
	return true
}

// shapesTransactions reports whether a connection may carry another
// client's transaction defaults (or unknown ones): the full switch then
// opens its own transaction with explicit characteristics, so that it
// never runs read-only, serializable or deferrable because of them.
func shapesTransactions(server map[string]string) bool {
	for _, name := range shapingSettings[:3] {
		if _, ok := server[name]; ok {
			return true
		}
	}
	return false
}

// resetsFor lists the settings in effect on a server that the client does
// not have, sorted.
func resetsFor(server, client map[string]string) []string {
	var out []string
	for name := range server {
		if _, ok := client[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// preResets are the client's settings that must be reset right before
// they are applied (setconfig.Context.PreResets): DateStyle, whose value
// may name only one of its two halves.
func preResets(settings map[string]string) []string {
	if _, ok := settings["datestyle"]; ok {
		return datestyleOnly
	}
	return nil
}

var datestyleOnly = []string{"datestyle"}

// Settings a previous client leaves on a pooled connection that the next
// client's switch would run under. Timers first. The context switch runs
// on the connection before the client's statements, so it runs under the
// previous client's statement_timeout and lock_timeout: a tenant that set
// them to a millisecond could make the next tenant's switch time out, and
// that tenant would be ended. When a connection carries such a short timer
// that the client does not share, multigres resets both in a round trip of
// their own first (PreSwitchResets, ResetStatement).

// shortTimer is the bound below which a previous client's timeout is
// reset before a switch: a switch takes microseconds, so only a server
// stalled longer than this could time it out.
const shortTimer = time.Second

var timerSettings = []string{"statement_timeout", "lock_timeout"}

// NeedsTimerReset reports whether server carries a short timer the client
// does not share (or unknown timers).
func NeedsTimerReset(server, client map[string]string) bool {
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

// PreSwitchResets lists the settings a connection carries from its
// previous client that the next client's switch must not run under, to be
// reset in a round trip of their own first: a short timer (see above); a
// client_encoding the client does not share, since the server decodes the
// switch's bound values with it (LATIN1 would turn "Zürich" into
// "ZÃ¼rich"); and, for a login (which applies its context without the
// switch's own BEGIN), transaction defaults. Unknown settings reset all.
func PreSwitchResets(server, client map[string]string, login bool) []string {
	if IsUnknown(server) {
		return []string{"statement_timeout", "lock_timeout", "client_encoding",
			"default_transaction_isolation", "default_transaction_read_only", "default_transaction_deferrable"}
	}
	var out []string
	if NeedsTimerReset(server, client) {
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

// ResetStatement is the simple query that resets names (PreSwitchResets)
// before a client's switch, and the changes it makes once it succeeds:
// each setting back to its default, except client_encoding, which takes
// the client's own value so that the switch's bound values are read in
// it. SET and RESET take no snapshot (a SELECT under another client's
// serializable deferrable default would wait for a safe snapshot).
func ResetStatement(names []string, client map[string]string) (string, []sqlguard.Setting) {
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
	return q.String(), changes
}

// NoteResets records on s that ResetStatement's changes ran.
func (s *Server) NoteResets(changes []sqlguard.Setting) {
	if !IsUnknown(s.Settings) {
		s.Settings = WithSettings(s.Settings, changes)
	}
}
