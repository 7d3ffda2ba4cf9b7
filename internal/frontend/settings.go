package frontend

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
)

// Settings buckets. A transaction-mode client's tracked settings (and a
// pooled server connection's) are an immutable map, shared by every client
// and connection with the same values: thousands of clients of one
// application log in with the same application_name, DateStyle and so on,
// so they share one map instead of holding a copy each. A change makes a
// new map (copy on write). Nothing may modify a map these functions
// return; the empty set is nil.

// maxSettingsBuckets bounds the interning table: past it, new sets are
// still correct, only not shared.
const maxSettingsBuckets = 1024

// maxInternedKey is the largest settings set (in settingsKey form) that is
// interned.
const maxInternedKey = 1 << 10

var settingsBuckets = struct {
	sync.Mutex
	m map[string]map[string]string
}{m: map[string]map[string]string{}}

// internSettings returns the shared map equal to m (m itself the first
// time). The caller gives up m. Only sets from startup parameters are
// interned, and only small ones: a table a client could fill with what it
// SETs (values of up to the guard's statement size) would pin memory for
// good.
func internSettings(m map[string]string) map[string]string {
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

// withSettings returns a new map: base with the changes applied (not
// interned, see internSettings).
func withSettings(base map[string]string, changes []sqlguard.Setting) map[string]string {
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

// unknownSettings marks every tracked setting with a value no client has,
// so the next switch resets or re-sets them all.
func unknownSettings() map[string]string { return unknownSettingsMap }

var unknownSettingsMap = func() map[string]string {
	m := make(map[string]string, len(sqlguard.TrackedSettings))
	for _, name := range sqlguard.TrackedSettings {
		m[name] = "\x00unknown"
	}
	return m
}()

// isUnknownSettings reports whether m is the unknown marker set.
func isUnknownSettings(m map[string]string) bool {
	return len(m) > 0 && len(m) == len(unknownSettingsMap) && m[sqlguard.TrackedSettings[0]] == "\x00unknown"
}
