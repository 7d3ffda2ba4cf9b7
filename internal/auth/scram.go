package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/secure/precis"
)

// MechSCRAMSHA256 is the only SASL mechanism this package speaks.
const MechSCRAMSHA256 = "SCRAM-SHA-256"

const (
	// DefaultIterations is PostgreSQL's default scram_iterations.
	DefaultIterations = 4096
	// defaultSaltLen is PostgreSQL's SCRAM_DEFAULT_SALT_LEN.
	defaultSaltLen = 16
	// nonceRawLen is PostgreSQL's SCRAM_RAW_NONCE_LEN.
	nonceRawLen = 18

	// MaxIterations bounds the iteration count a SCRAM client accepts from a
	// server and VerifyPassword will compute, so a hostile or misconfigured
	// peer cannot pin a CPU for minutes. It is far above anything sane
	// (PostgreSQL's default is 4096; 10M iterations take seconds).
	MaxIterations = 10_000_000

	// maxSCRAMMessage bounds every SCRAM message either side accepts. Real
	// messages are under 200 bytes plus the username the client repeats.
	maxSCRAMMessage = 4096
)

// Errors returned by the SCRAM code. Callers test them with errors.Is.
var (
	// ErrAuthFailed: the peer did not prove knowledge of the secret, or
	// sent something malformed or out of order. Every error from
	// SCRAMServer wraps it, so a caller can answer 28P01 uniformly.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrMalformed is also wrapped by errors caused by a syntactically bad
	// SCRAM message (a protocol violation rather than a wrong password).
	ErrMalformed = errors.New("malformed SCRAM message")
	// ErrPassthroughMismatch: the upstream server challenged a passthrough
	// client with a salt or iteration count different from the verifier the
	// keys came from, so the keys cannot answer it.
	ErrPassthroughMismatch = errors.New("SCRAM passthrough: upstream salt/iterations differ from the stored verifier")
	// ErrServerSignature: the upstream server failed mutual authentication.
	ErrServerSignature = errors.New("SCRAM: invalid server signature")
)

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func xorBytes(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// scramKeys derives ClientKey and ServerKey from a password (RFC 5802).
func scramKeys(password string, salt []byte, iterations int) (clientKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, scramKeyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("pbkdf2: %w", err)
	}
	return hmacSHA256(salted, []byte("Client Key")), hmacSHA256(salted, []byte("Server Key")), nil
}

// DeriveSCRAMKeys derives the SCRAM-SHA-256 ClientKey and ServerKey of
// password for salt and iterations, preparing the password as NewSCRAMClient
// does. NewSCRAMClientFromKeys with these keys, salt and iterations logs in
// like NewSCRAMClient(password) against a server with that verifier, so a
// client that logs in many times with one password can run PBKDF2 once per
// (salt, iterations) instead of on every login. The keys are
// password-equivalent: keep them as secret as the password. It refuses an
// empty salt and an iteration count outside 1..MaxIterations.
func DeriveSCRAMKeys(password string, salt []byte, iterations int) (clientKey, serverKey []byte, err error) {
	if len(salt) == 0 {
		return nil, nil, errors.New("derive SCRAM keys: empty salt")
	}
	if iterations < 1 || iterations > MaxIterations {
		return nil, nil, fmt.Errorf("derive SCRAM keys: iteration count %d outside 1..%d", iterations, MaxIterations)
	}
	clientKey, serverKey, err = scramKeys(password, salt, iterations)
	if err != nil {
		return nil, nil, fmt.Errorf("derive SCRAM keys: %w", err)
	}
	return clientKey, serverKey, nil
}

// NewSCRAMSecret builds a SCRAM-SHA-256 verifier for password, like
// PostgreSQL does for ALTER ROLE ... PASSWORD with password_encryption =
// scram-sha-256. A nil salt means a fresh random 16-byte salt; iterations <= 0
// means DefaultIterations.
func NewSCRAMSecret(password string, salt []byte, iterations int) (Secret, error) {
	if salt == nil {
		salt = randomBytes(defaultSaltLen)
	}
	if len(salt) == 0 {
		return Secret{}, errors.New("new SCRAM secret: empty salt")
	}
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	ck, sk, err := scramKeys(password, salt, iterations)
	if err != nil {
		return Secret{}, fmt.Errorf("new SCRAM secret: %w", err)
	}
	return Secret{Kind: SecretSCRAM, Iterations: iterations, Salt: append([]byte(nil), salt...),
		StoredKey: sha256Sum(ck), ServerKey: sk}, nil
}

// saslPrep approximates PostgreSQL's pg_saslprep: ASCII passes unchanged
// (SASLprep is the identity on ASCII, and PostgreSQL uses the raw bytes when
// ASCII control characters make SASLprep fail); other strings go through the
// PRECIS OpaqueString profile, and the raw bytes are used when that fails,
// as PostgreSQL does for passwords SASLprep rejects.
func saslPrep(password string) string {
	ascii := true
	for i := 0; i < len(password); i++ {
		if password[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return password
	}
	out, err := precis.OpaqueString.String(password)
	if err != nil {
		return password
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never fails since Go 1.24 (it crashes the program
	// instead of returning predictable bytes).
	_, _ = rand.Read(b)
	return b
}

func newNonce() string { return b64.EncodeToString(randomBytes(nonceRawLen)) }

// scramAttr is one "x=value" attribute of a SCRAM message.
type scramAttr struct {
	name  byte
	value string
}

// splitAttrs splits a SCRAM message (or part of one) into attributes.
// Values cannot contain ',' (RFC 5802 value-char), so splitting on ',' is
// exact. Every attribute must be ALPHA "=" value; NUL and non-ASCII control
// bytes are refused anywhere (PostgreSQL reads these as C strings).
func splitAttrs(msg string) ([]scramAttr, error) {
	if msg == "" {
		return nil, errors.New("empty message")
	}
	if strings.IndexByte(msg, 0) >= 0 {
		return nil, errors.New("NUL byte")
	}
	parts := strings.Split(msg, ",")
	attrs := make([]scramAttr, 0, len(parts))
	for _, p := range parts {
		if len(p) < 2 || p[1] != '=' || !isAlpha(p[0]) {
			return nil, errors.New("expected attribute=value")
		}
		attrs = append(attrs, scramAttr{name: p[0], value: p[2:]})
	}
	return attrs, nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// validNonce: printable ASCII except ',' (RFC 5802), non-empty, bounded.
func validNonce(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validExtensions checks the attributes after the mandatory ones. RFC 5802
// allows extensions there; we ignore their meaning but refuse mandatory
// extensions ("m=") as the RFC requires, and any attribute name the RFC
// defines (a repeated "r=" or an early "p=" is never legitimate and would
// make the message ambiguous).
func validExtensions(attrs []scramAttr) error {
	for _, a := range attrs {
		switch a.name {
		case 'm':
			return errors.New("mandatory extension not supported")
		case 'a', 'n', 'r', 'c', 's', 'i', 'p', 'v', 'e':
			return errors.New("unexpected attribute")
		}
	}
	return nil
}
