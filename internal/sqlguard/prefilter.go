package sqlguard

import "strings"

// dangerTokens are substrings that every refused construct must contain in
// its source text, lower-cased. Keywords (SET, RESET, DISCARD, DO, ALTER)
// cannot be quoted or escaped, and function and relation names can only be
// disguised with U&"..." escapes, which "u&" catches. A statement with
// none of them cannot be refused, so it skips the parse.
var dangerTokens = []string{"set", "discard", "do", "alter", "u&", "largeobject", "pg_settings", "listen", "notify",
	"prepare", "commit", "rollback", "lock"}

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

// mayBeDangerous reports whether sql needs a full parse. It allocates
// nothing: it runs on every statement of every tenant.
func (g *Guard) mayBeDangerous(sql string) bool {
	for i := 0; i < len(sql); i++ {
		for _, t := range g.byFirst[lowerASCII(sql[i])] {
			if hasPrefixFold(sql[i:], t) {
				return true
			}
		}
	}
	return false
}

// indexTokens groups the tokens by their first byte, so the scan looks at
// each byte of a statement once.
func indexTokens(tokens []string) (idx [256][]string) {
	for _, t := range tokens {
		idx[t[0]] = append(idx[t[0]], t)
	}
	return idx
}

func hasPrefixFold(s, token string) bool {
	if len(s) < len(token) {
		return false
	}
	for j := 0; j < len(token); j++ {
		if lowerASCII(s[j]) != token[j] {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
