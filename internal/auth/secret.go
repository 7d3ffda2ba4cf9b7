package auth

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// SecretKind says what a Secret holds.
type SecretKind int

// The kinds of stored secrets, as PostgreSQL and PgBouncer know them.
const (
	SecretPlain SecretKind = iota // plaintext password
	SecretMD5                     // "md5" + hex(md5(password + user))
	SecretSCRAM                   // SCRAM-SHA-256 verifier
)

// String names the kind (no material).
func (k SecretKind) String() string {
	switch k {
	case SecretPlain:
		return "plain"
	case SecretMD5:
		return "md5"
	case SecretSCRAM:
		return "SCRAM-SHA-256"
	}
	return "SecretKind(" + strconv.Itoa(int(k)) + ")"
}

// Secret is a stored credential for one role. Only the fields of its Kind
// are set. Its String, GoString and LogValue methods are redacted, so a Secret
// printed with fmt or logged with slog never shows material.
type Secret struct {
	Kind SecretKind

	Plain string // SecretPlain
	MD5   string // SecretMD5: "md5" + 32 lowercase hex digits

	// SecretSCRAM.
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// String describes the secret without its material.
func (s Secret) String() string {
	switch s.Kind {
	case SecretSCRAM:
		return fmt.Sprintf("auth.Secret{SCRAM-SHA-256, iterations=%d, [REDACTED]}", s.Iterations)
	default:
		return "auth.Secret{" + s.Kind.String() + ", [REDACTED]}"
	}
}

// GoString keeps %#v redacted too.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps slog redacted whatever the handler does with structs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps encoding/json redacted (config dumps, debug endpoints).
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Format keeps every fmt verb (%x, %q, %s, %v, ...) redacted: without it,
// verbs such as %x would print the fields.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

const (
	scramPrefix = "SCRAM-SHA-256$"
	scramKeyLen = 32 // SHA-256 output size

	// maxSecretLen bounds a stored secret. PostgreSQL verifiers are about 133
	// bytes; PgBouncer caps passwords well below this.
	maxSecretLen = 4096
)

// ErrMalformedSecret is wrapped by ParseSecret errors.
var ErrMalformedSecret = errors.New("malformed secret")

// ParseSecret classifies a stored secret like PostgreSQL's get_password_type:
//   - "SCRAM-SHA-256$<iter>:<b64salt>$<b64StoredKey>:<b64ServerKey>" is a SCRAM
//     verifier; a string with that prefix that does not parse is an error
//     (never silently treated as a plaintext password);
//   - "md5" followed by exactly 32 lowercase hex digits is an md5 hash;
//   - anything else is a plaintext password.
//
// Errors never include the secret.
func ParseSecret(s string) (Secret, error) {
	if len(s) > maxSecretLen {
		return Secret{}, fmt.Errorf("parse secret: %w: longer than %d bytes", ErrMalformedSecret, maxSecretLen)
	}
	if strings.HasPrefix(s, scramPrefix) {
		return parseSCRAMSecret(s[len(scramPrefix):])
	}
	if isMD5Secret(s) {
		return Secret{Kind: SecretMD5, MD5: s}, nil
	}
	return Secret{Kind: SecretPlain, Plain: s}, nil
}

func isMD5Secret(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	for i := 3; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func parseSCRAMSecret(rest string) (Secret, error) {
	bad := func(what string) (Secret, error) {
		return Secret{}, fmt.Errorf("parse secret: %w: SCRAM-SHA-256 verifier: %s", ErrMalformedSecret, what)
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return bad("missing '$' before keys")
	}
	iterStr, saltStr, ok := strings.Cut(params, ":")
	if !ok {
		return bad("missing ':' between iterations and salt")
	}
	iter, ok := parsePositiveInt(iterStr)
	if !ok {
		return bad("bad iteration count")
	}
	salt, err := b64.DecodeString(saltStr)
	if err != nil || len(salt) == 0 {
		return bad("bad salt")
	}
	storedStr, serverStr, ok := strings.Cut(keys, ":")
	if !ok {
		return bad("missing ':' between keys")
	}
	stored, err := b64.DecodeString(storedStr)
	if err != nil || len(stored) != scramKeyLen {
		return bad("bad StoredKey")
	}
	server, err := b64.DecodeString(serverStr)
	if err != nil || len(server) != scramKeyLen {
		return bad("bad ServerKey")
	}
	return Secret{Kind: SecretSCRAM, Iterations: iter, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

// parsePositiveInt accepts 1..MaxInt32 in plain decimal (no sign, no
// leading zeros beyond "0" itself, which is rejected anyway), matching what
// PostgreSQL writes and bounding what a hostile peer can ask for.
func parsePositiveInt(s string) (int, bool) {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 1<<31-1 {
		return 0, false
	}
	return n, true
}

// b64 is the strict padded standard base64 that PostgreSQL reads and writes
// in SCRAM verifiers and messages.
var b64 = base64.StdEncoding.Strict()

// MD5Hash returns PostgreSQL's md5 password hash: "md5" + hex(md5(password + user)).
func MD5Hash(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// Encode returns the secret in its stored form (the plaintext, the md5 hash,
// or the SCRAM-SHA-256 verifier as PostgreSQL writes it), for writing a
// userlist or ALTER ROLE ... PASSWORD. It is the only method that reveals the
// material; never log its result.
func (s Secret) Encode() string {
	switch s.Kind {
	case SecretMD5:
		return s.MD5
	case SecretSCRAM:
		return fmt.Sprintf("%s%d:%s$%s:%s", scramPrefix, s.Iterations,
			b64.EncodeToString(s.Salt), b64.EncodeToString(s.StoredKey), b64.EncodeToString(s.ServerKey))
	default:
		return s.Plain
	}
}
