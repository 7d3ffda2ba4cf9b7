package sqlguard

import "strings"

// dangerTokens are substrings that every refused construct must contain in
// its source text, lower-cased. Keywords (SET, RESET, DISCARD, DO, ALTER)
// cannot be quoted or escaped, and function and relation names can only be
// disguised with U&"..." escapes, which "u&" catches. A statement with
// none of them cannot be refused, so it skips the parse.
var dangerTokens = []string{"set", "discard", "do", "alter", "u&", "largeobject", "pg_settings", "listen", "notify"}

// prefilterTokens adds the denied function names (up to their first
// wildcard) to dangerTokens.
func prefilterTokens(denied []string) []string {
	tokens := append([]string(nil), dangerTokens...)
	for _, d := range denied {
		if i := strings.IndexAny(d, "*?["); i >= 0 {
			d = d[:i]
		}
		if d = strings.ToLower(d); d != "" {
			tokens = append(tokens, d)
		}
	}
	return tokens
}

// mayBeDangerous reports whether sql needs a full parse.
func (g *Guard) mayBeDangerous(sql string) bool {
	lower := strings.ToLower(sql)
	for _, t := range g.tokens {
		if strings.Contains(lower, t) {
			return true
		}
	}
	return false
}
