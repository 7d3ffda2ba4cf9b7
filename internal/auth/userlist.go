package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	// maxUserlistLine bounds one userlist line; a verifier line is ~200 bytes.
	maxUserlistLine = 16 * 1024
	// maxUserlistName is PgBouncer's MAX_USERNAME limit (names are < 128 bytes).
	maxUserlistName = 127
)

// ParseUserlist reads a PgBouncer userlist.txt (auth_file): one
// `"user" "password"` entry per line, where a '"' inside a quoted field is
// written '""' and the password is plaintext, an md5 hash or a
// SCRAM-SHA-256 verifier (see ParseSecret). Blank lines and lines starting
// with ';' or '#' (after optional whitespace) are ignored, and so is a
// trailing comment after the two fields. As in PgBouncer, a later entry for
// the same user replaces an earlier one.
//
// Unlike PgBouncer, which stops loading at the first broken line and keeps
// going with what it has, any malformed line is an error, so a typo cannot
// silently lock users out (or leave them in). Errors name the line number
// and never echo the password.
func ParseUserlist(r io.Reader) (map[string]Secret, error) {
	users := make(map[string]Secret)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxUserlistLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		user, password, skip, err := parseUserlistLine(line)
		if err != nil {
			return nil, fmt.Errorf("userlist line %d: %w", lineNo, err)
		}
		if skip {
			continue
		}
		secret, err := ParseSecret(password)
		if err != nil {
			// ParseSecret errors never contain the secret.
			return nil, fmt.Errorf("userlist line %d: user %q: %w", lineNo, user, err)
		}
		users[user] = secret
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("userlist line %d: line longer than %d bytes", lineNo+1, maxUserlistLine)
		}
		return nil, fmt.Errorf("userlist: read: %w", err)
	}
	return users, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func parseUserlistLine(line string) (user, password string, skip bool, err error) {
	p := strings.TrimLeft(line, " \t")
	if p == "" || p[0] == ';' || p[0] == '#' {
		return "", "", true, nil
	}
	user, p, err = parseQuoted(p)
	if err != nil {
		return "", "", false, fmt.Errorf("user name: %w", err)
	}
	if user == "" {
		return "", "", false, errors.New("empty user name")
	}
	if len(user) > maxUserlistName {
		return "", "", false, fmt.Errorf("user name longer than %d bytes", maxUserlistName)
	}
	if strings.IndexByte(user, 0) >= 0 {
		return "", "", false, errors.New("NUL byte in user name")
	}
	if p == "" || !isBlank(p[0]) {
		return "", "", false, errors.New(`expected whitespace and a quoted password after the user name`)
	}
	p = strings.TrimLeft(p, " \t")
	password, p, err = parseQuoted(p)
	if err != nil {
		return "", "", false, fmt.Errorf("password: %w", err)
	}
	if password == "" {
		// PostgreSQL never accepts an empty password; an empty entry is a
		// mistake, not a way to let anyone in.
		return "", "", false, errors.New("empty password")
	}
	if strings.IndexByte(password, 0) >= 0 {
		return "", "", false, errors.New("NUL byte in password")
	}
	rest := strings.TrimLeft(p, " \t")
	if rest != "" && (len(rest) == len(p) || (rest[0] != ';' && rest[0] != '#')) {
		return "", "", false, errors.New("unexpected text after the password")
	}
	return user, password, false, nil
}

// parseQuoted reads a "..." field with "" as an escaped quote and returns the
// unquoted value and the rest of the line.
func parseQuoted(p string) (value, rest string, err error) {
	if p == "" || p[0] != '"' {
		return "", "", errors.New("expected '\"'")
	}
	var b strings.Builder
	for i := 1; i < len(p); i++ {
		if p[i] != '"' {
			b.WriteByte(p[i])
			continue
		}
		if i+1 < len(p) && p[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), p[i+1:], nil
	}
	return "", "", errors.New("missing closing '\"'")
}
