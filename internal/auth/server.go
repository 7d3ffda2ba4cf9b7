package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SCRAMServer runs the server side of one SCRAM-SHA-256 exchange (a client
// authenticating to the proxy). It is not safe for concurrent use; use one
// per login attempt.
type SCRAMServer struct {
	iterations int
	salt       []byte
	storedKey  []byte
	serverKey  []byte
	mock       bool // unknown user: behave like a real exchange, always fail

	state       serverState
	gs2Header   string
	clientBare  string
	serverFirst string
	nonce       string // client nonce + server nonce
	clientKey   []byte // set after a successful ClientFinal
}

type serverState int

const (
	serverStart serverState = iota
	serverSentFirst
	serverDone
	serverFailed
)

// NewSCRAMServer prepares an exchange against secret. A SCRAM secret is used
// as is. A plaintext secret is turned into a verifier with a random salt and
// DefaultIterations (the password is not kept). An md5 secret cannot verify
// SCRAM and is an error, as in PostgreSQL.
func NewSCRAMServer(secret Secret) (*SCRAMServer, error) {
	switch secret.Kind {
	case SecretSCRAM:
		if len(secret.StoredKey) != scramKeyLen || len(secret.ServerKey) != scramKeyLen ||
			len(secret.Salt) == 0 || secret.Iterations <= 0 {
			return nil, fmt.Errorf("new SCRAM server: %w: incomplete SCRAM secret", ErrMalformedSecret)
		}
		return &SCRAMServer{
			iterations: secret.Iterations,
			salt:       append([]byte(nil), secret.Salt...),
			storedKey:  append([]byte(nil), secret.StoredKey...),
			serverKey:  append([]byte(nil), secret.ServerKey...),
		}, nil
	case SecretPlain:
		v, err := NewSCRAMSecret(secret.Plain, nil, DefaultIterations)
		if err != nil {
			return nil, fmt.Errorf("new SCRAM server: %w", err)
		}
		return NewSCRAMServer(v)
	case SecretMD5:
		return nil, errors.New("new SCRAM server: an md5 secret cannot be used for SCRAM authentication")
	default:
		return nil, fmt.Errorf("new SCRAM server: unknown secret kind %d", int(secret.Kind))
	}
}

// NewMockSCRAMServer returns a server for a user that does not exist (or has
// no usable secret). Like PostgreSQL's scram_mock_salt, it challenges with a
// salt derived from HMAC-SHA-256(mockKey, username), so repeated attempts for
// the same name see the same salt, and it goes through the same parsing and
// hashing as a real exchange, failing only at ClientFinal. A client therefore
// cannot tell whether the user exists. mockKey should be random, generated
// once per process (or persisted) and kept secret.
func NewMockSCRAMServer(username string, mockKey []byte) *SCRAMServer {
	return NewMockSCRAMServerIterations(username, mockKey, DefaultIterations)
}

// NewMockSCRAMServerIterations is NewMockSCRAMServer with the iteration
// count to advertise; use the one real verifiers have (for example
// PostgreSQL 16+ with a non-default scram_iterations), or the mock would be
// recognisable. iterations <= 0 means DefaultIterations.
func NewMockSCRAMServerIterations(username string, mockKey []byte, iterations int) *SCRAMServer {
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	salt := hmacSHA256(mockKey, []byte(username))[:defaultSaltLen]
	return &SCRAMServer{
		iterations: iterations,
		salt:       salt,
		storedKey:  randomBytes(scramKeyLen),
		mock:       true,
	}
}

// Mechanisms lists the SASL mechanisms to offer in AuthenticationSASL.
// SCRAM-SHA-256-PLUS is never offered: channel binding is not implemented.
func (s *SCRAMServer) Mechanisms() []string { return []string{MechSCRAMSHA256} }

// ClientKey returns the ClientKey recovered from the client's proof, only
// after a successful ClientFinal (nil otherwise). It is as sensitive as the
// password: keep it in memory only and never log it.
func (s *SCRAMServer) ClientKey() []byte {
	if s.state != serverDone || s.clientKey == nil {
		return nil
	}
	return append([]byte(nil), s.clientKey...)
}

// ServerKey returns the verifier's ServerKey (nil for a mock server).
func (s *SCRAMServer) ServerKey() []byte {
	if s.mock {
		return nil
	}
	return append([]byte(nil), s.serverKey...)
}

// Salt returns the salt sent to the client.
func (s *SCRAMServer) Salt() []byte { return append([]byte(nil), s.salt...) }

// Iterations returns the iteration count sent to the client.
func (s *SCRAMServer) Iterations() int { return s.iterations }

func (s *SCRAMServer) fail(err error) error {
	s.state = serverFailed
	s.clientKey = nil
	return err
}

func malformed(what string) error {
	return fmt.Errorf("scram: %w: %w: %s", ErrAuthFailed, ErrMalformed, what)
}

// ClientFirst handles the SASLInitialResponse: mechanism is its mechanism
// name and data its payload (client-first-message). It returns the
// server-first-message for AuthenticationSASLContinue.
func (s *SCRAMServer) ClientFirst(mechanism string, data []byte) ([]byte, error) {
	if s.state != serverStart {
		return nil, s.fail(fmt.Errorf("scram: %w: client-first-message out of order", ErrAuthFailed))
	}
	if mechanism != MechSCRAMSHA256 {
		return nil, s.fail(malformed("unsupported SASL mechanism"))
	}
	if len(data) > maxSCRAMMessage {
		return nil, s.fail(malformed("client-first-message too long"))
	}
	msg := string(data)
	header, bare, err := parseGS2Header(msg)
	if err != nil {
		return nil, s.fail(malformed(err.Error()))
	}
	attrs, err := splitAttrs(bare)
	if err != nil {
		return nil, s.fail(malformed("client-first-message: " + err.Error()))
	}
	if attrs[0].name == 'm' {
		return nil, s.fail(malformed("mandatory extension not supported"))
	}
	if len(attrs) < 2 || attrs[0].name != 'n' || attrs[1].name != 'r' {
		return nil, s.fail(malformed("client-first-message: expected n=...,r=..."))
	}
	// PostgreSQL ignores the SCRAM username (the startup packet's user
	// counts), but it must still be a well-formed saslname.
	if !validSASLName(attrs[0].value) {
		return nil, s.fail(malformed("client-first-message: bad username encoding"))
	}
	if !validNonce(attrs[1].value) {
		return nil, s.fail(malformed("client-first-message: bad nonce"))
	}
	if err := validExtensions(attrs[2:]); err != nil {
		return nil, s.fail(malformed(err.Error()))
	}
	s.gs2Header = header
	s.clientBare = bare
	s.nonce = attrs[1].value + newNonce()
	s.serverFirst = "r=" + s.nonce + ",s=" + b64.EncodeToString(s.salt) + ",i=" + strconv.Itoa(s.iterations)
	s.state = serverSentFirst
	return []byte(s.serverFirst), nil
}

// parseGS2Header splits "n,," / "y,," from the bare message. Channel binding
// ("p=") and authorization identities are refused, as PostgreSQL does when
// it offers no SCRAM-SHA-256-PLUS. "y" is fine: the client could bind but
// believes the server cannot, which is true here.
func parseGS2Header(msg string) (header, bare string, err error) {
	if len(msg) < 3 {
		return "", "", errors.New("client-first-message too short")
	}
	switch msg[0] {
	case 'n', 'y':
	case 'p':
		return "", "", errors.New("channel binding is not supported")
	default:
		return "", "", errors.New("bad gs2 channel binding flag")
	}
	if msg[1] != ',' {
		return "", "", errors.New("bad gs2 header")
	}
	if msg[2] == 'a' {
		return "", "", errors.New("authorization identity is not supported")
	}
	if msg[2] != ',' {
		return "", "", errors.New("bad gs2 header")
	}
	return msg[:3], msg[3:], nil
}

// validSASLName: RFC 5802 saslname, UTF-8 without ',' and with '=' only in
// "=2C" and "=3D". Empty is allowed (libpq and pgx send "n=").
func validSASLName(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '=':
			if !strings.HasPrefix(s[i:], "=2C") && !strings.HasPrefix(s[i:], "=3D") {
				return false
			}
			i += 2
		case c < 0x20 || c == 0x7f:
			return false
		}
	}
	return true
}

// ClientFinal handles the SASLResponse payload (client-final-message). On
// success it returns the server-final-message for AuthenticationSASLFinal
// and ClientKey becomes available. Every error wraps ErrAuthFailed: a wrong
// proof, a nonce or channel-binding mismatch, a malformed message, a call out
// of order, and always for a mock server.
func (s *SCRAMServer) ClientFinal(data []byte) ([]byte, error) {
	if s.state != serverSentFirst {
		return nil, s.fail(fmt.Errorf("scram: %w: client-final-message out of order", ErrAuthFailed))
	}
	if len(data) > maxSCRAMMessage {
		return nil, s.fail(malformed("client-final-message too long"))
	}
	msg := string(data)
	attrs, err := splitAttrs(msg)
	if err != nil {
		return nil, s.fail(malformed("client-final-message: " + err.Error()))
	}
	n := len(attrs)
	if n < 3 || attrs[0].name != 'c' || attrs[1].name != 'r' || attrs[n-1].name != 'p' {
		return nil, s.fail(malformed("client-final-message: expected c=...,r=...,p=..."))
	}
	if err := validExtensions(attrs[2 : n-1]); err != nil {
		return nil, s.fail(malformed(err.Error()))
	}
	if attrs[0].value != b64.EncodeToString([]byte(s.gs2Header)) {
		return nil, s.fail(fmt.Errorf("scram: %w: channel binding data does not match", ErrAuthFailed))
	}
	if attrs[1].value != s.nonce {
		return nil, s.fail(fmt.Errorf("scram: %w: nonce mismatch", ErrAuthFailed))
	}
	proof, err := b64.DecodeString(attrs[n-1].value)
	if err != nil || len(proof) != scramKeyLen {
		return nil, s.fail(malformed("client-final-message: bad proof"))
	}
	withoutProof := msg[:strings.LastIndex(msg, ",p=")]
	authMessage := s.clientBare + "," + s.serverFirst + "," + withoutProof

	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client is
	// genuine iff H(ClientKey) == StoredKey. A mock server does the same
	// work against a random StoredKey so timing does not reveal it.
	clientSig := hmacSHA256(s.storedKey, []byte(authMessage))
	clientKey := xorBytes(proof, clientSig)
	ok := subtle.ConstantTimeCompare(sha256Sum(clientKey), s.storedKey) == 1
	if s.mock || !ok {
		return nil, s.fail(fmt.Errorf("scram: %w: invalid proof", ErrAuthFailed))
	}
	serverSig := hmacSHA256(s.serverKey, []byte(authMessage))
	s.clientKey = clientKey
	s.state = serverDone
	return []byte("v=" + b64.EncodeToString(serverSig)), nil
}
