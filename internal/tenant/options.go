package tenant

import "strings"

// ProtectedSetting reports whether a run-time parameter name must never be
// set by a tenant client at startup: a context variable, role or
// session_authorization. Names are compared as PostgreSQL does: case
// insensitively, with '-' read as '_' (ParseLongOption).
func (r *Rules) ProtectedSetting(name string) bool {
	n := normalizeGUC(name)
	switch n {
	case "role", "session_authorization", "standard_conforming_strings", "backslash_quote":
		return true
	}
	for _, v := range r.ContextVariables {
		if normalizeGUC(v) == n {
			return true
		}
	}
	for _, v := range r.ExtraProtected {
		if normalizeGUC(v) == n {
			return true
		}
	}
	return false
}

func normalizeGUC(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
}

// OptionSettings extracts the run-time parameters (name, value) that a
// startup `options` string would set. Splitting follows pg_split_opts
// (whitespace separates words, a backslash escapes the next character) and
// parsing follows the backend's getopt over its switch string, so combined
// flags such as "-ec name=value" are read as the server reads them.
func OptionSettings(options string) []Setting {
	words := splitOpts(options)
	var out []Setting
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(w) < 2 || w[0] != '-' {
			continue
		}
		for j := 1; j < len(w); j++ {
			flag := w[j]
			takesArg, known := backendSwitches[flag]
			if !known || !takesArg {
				continue
			}
			arg := w[j+1:]
			if arg == "" && i+1 < len(words) {
				i++
				arg = words[i]
			}
			if flag == 'c' || flag == '-' {
				name, value, _ := strings.Cut(arg, "=")
				out = append(out, Setting{Name: name, Value: value})
			}
			break // the rest of the word was the argument
		}
	}
	return out
}

// Setting is one name=value from startup options.
type Setting struct{ Name, Value string }

// backendSwitches is PostgreSQL's postgres switch string
// "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:" as flag -> takes an argument.
var backendSwitches = func() map[byte]bool {
	const spec = "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:"
	m := map[byte]bool{}
	for i := 0; i < len(spec); i++ {
		m[spec[i]] = i+1 < len(spec) && spec[i+1] == ':'
		if m[spec[i]] {
			i++
		}
	}
	return m
}()

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
