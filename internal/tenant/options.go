package tenant

import "strings"

// ProtectedSetting reports whether a run-time parameter name must never be
// set by a tenant client at startup: a context variable, role or
// session_authorization. Names are compared as PostgreSQL does: case
// insensitively, with '-' read as '_' (ParseLongOption).
func (r *Rules) ProtectedSetting(name string) bool {
	n := normalizeGUC(name)
	if n == "role" || n == "session_authorization" {
		return true
	}
	for _, v := range r.ContextVariables {
		if normalizeGUC(v) == n {
			return true
		}
	}
	return false
}

func normalizeGUC(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
}

// OptionSettings extracts the parameter names that a startup `options`
// string would set: `-c name=value`, `-cname=value` and `--name=value`.
// Splitting follows pg_split_opts: whitespace separates words and a
// backslash escapes the next character.
func OptionSettings(options string) []string {
	words := splitOpts(options)
	var names []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		var assign string
		switch {
		case w == "-c" && i+1 < len(words):
			i++
			assign = words[i]
		case strings.HasPrefix(w, "-c"):
			assign = w[2:]
		case strings.HasPrefix(w, "--"):
			assign = w[2:]
		default:
			continue
		}
		name, _, _ := strings.Cut(assign, "=")
		names = append(names, name)
	}
	return names
}

func splitOpts(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, escaped := false, false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped, inWord = false, true
		case c == '\\':
			escaped, inWord = true, true
		case isASCIISpace(c):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// isASCIISpace matches C isspace in the "C" locale, which pg_split_opts uses;
// splitting differently from the server could hide a -c from this check.
func isASCIISpace(c rune) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
