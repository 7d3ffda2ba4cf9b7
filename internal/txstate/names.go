package txstate

import (
	"crypto/sha256"
	"encoding/hex"
)

// serverName is the server-side name of a client's statement: a hash of
// its text and parameter types and of the client's statement salt, so
// clients share a server statement exactly when they prepared the same
// thing under the same tenant context and settings, and names never
// collide.
//
// Why the salt: PostgreSQL converts a statement's typed literals ('01/02/
// 2024'::date, timestamptz, intervals) with the DateStyle, TimeZone and
// IntervalStyle of whoever prepared it, and never again; and whether a
// Parse is answered from the cache would tell a tenant which SQL another
// tenant ran. A statement is shared only with clients that would have
// parsed it to the same thing and may know it exists.
func serverName(salt string, parseBody []byte) string {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write(parseBody)
	return "mg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// stmtSalt is the statement salt of a client with tenant context key
// ctxKey and tracked settings: both in full, NUL-separated.
func stmtSalt(ctxKey string, settings map[string]string) string {
	return ctxKey + "\x00\x00\x00" + settingsKey(settings)
}
