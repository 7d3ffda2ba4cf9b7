package auth

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SCRAMClient runs the client side of one SCRAM-SHA-256 exchange (the proxy
// logging in upstream), either with a password or, for passthrough, with a
// ClientKey/ServerKey pair recovered by SCRAMServer. It is not safe for
// concurrent use; use one per login.
type SCRAMClient struct {
	password string

	// Passthrough: keys plus the salt/iterations they were derived with.
	passthrough bool
	clientKey   []byte
	serverKey   []byte
	salt        []byte
	iterations  int

	state       clientState
	clientNonce string
	clientBare  string
	authMessage string
}

type clientState int

const (
	clientStart clientState = iota
	clientSentFirst
	clientSentFinal
	clientDone
	clientFailed
)

// clientGS2Header: no channel binding, and we do not claim support for it
// either ("n"), since the connection may not be TLS.
const clientGS2Header = "n,,"

// NewSCRAMClient returns a client that authenticates with password. The
// password is prepared like PostgreSQL does (see the package doc: ASCII
// unchanged, otherwise PRECIS OpaqueString with a raw fallback).
func NewSCRAMClient(password string) *SCRAMClient {
	return &SCRAMClient{password: password}
}

// NewSCRAMClientFromKeys returns a passthrough client: it answers with
// clientKey and checks the server with serverKey, without any password.
// salt and iterations are those of the verifier the keys belong to; if the
// upstream server challenges with others, ServerFirst fails with
// ErrPassthroughMismatch (the keys cannot answer a different challenge).
func NewSCRAMClientFromKeys(clientKey, serverKey, salt []byte, iterations int) *SCRAMClient {
	return &SCRAMClient{
		passthrough: true,
		clientKey:   append([]byte(nil), clientKey...),
		serverKey:   append([]byte(nil), serverKey...),
		salt:        append([]byte(nil), salt...),
		iterations:  iterations,
	}
}

// Mechanism is the SASL mechanism to put in SASLInitialResponse.
func (c *SCRAMClient) Mechanism() string { return MechSCRAMSHA256 }

// ClientFirst returns the client-first-message ("n,,n=,r=<nonce>") for
// SASLInitialResponse. The username is empty, as libpq sends it: PostgreSQL
// takes the user from the startup packet. It may be called once; a second
// call returns nil and fails the exchange.
func (c *SCRAMClient) ClientFirst() []byte {
	if c.state != clientStart {
		c.state = clientFailed
		return nil
	}
	c.clientNonce = newNonce()
	c.clientBare = "n=,r=" + c.clientNonce
	c.state = clientSentFirst
	return []byte(clientGS2Header + c.clientBare)
}

func (c *SCRAMClient) fail(err error) error {
	c.state = clientFailed
	return err
}

func clientMalformed(what string) error {
	return fmt.Errorf("scram client: %w: %s", ErrMalformed, what)
}

// ServerFirst handles the AuthenticationSASLContinue payload
// (server-first-message) and returns the client-final-message for
// SASLResponse.
func (c *SCRAMClient) ServerFirst(data []byte) ([]byte, error) {
	if c.state != clientSentFirst {
		return nil, c.fail(errors.New("scram client: server-first-message out of order"))
	}
	if len(data) > maxSCRAMMessage {
		return nil, c.fail(clientMalformed("server-first-message too long"))
	}
	msg := string(data)
	attrs, err := splitAttrs(msg)
	if err != nil {
		return nil, c.fail(clientMalformed("server-first-message: " + err.Error()))
	}
	if attrs[0].name == 'm' {
		return nil, c.fail(clientMalformed("mandatory extension not supported"))
	}
	if len(attrs) < 3 || attrs[0].name != 'r' || attrs[1].name != 's' || attrs[2].name != 'i' {
		return nil, c.fail(clientMalformed("server-first-message: expected r=...,s=...,i=..."))
	}
	if err := validExtensions(attrs[3:]); err != nil {
		return nil, c.fail(clientMalformed(err.Error()))
	}
	nonce := attrs[0].value
	if !validNonce(nonce) || len(nonce) <= len(c.clientNonce) || !strings.HasPrefix(nonce, c.clientNonce) {
		return nil, c.fail(clientMalformed("server-first-message: nonce does not extend ours"))
	}
	salt, err := b64.DecodeString(attrs[1].value)
	if err != nil || len(salt) == 0 {
		return nil, c.fail(clientMalformed("server-first-message: bad salt"))
	}
	iterations, ok := parsePositiveInt(attrs[2].value)
	if !ok {
		return nil, c.fail(clientMalformed("server-first-message: bad iteration count"))
	}

	var clientKey []byte
	if c.passthrough {
		if iterations != c.iterations || !bytes.Equal(salt, c.salt) {
			return nil, c.fail(fmt.Errorf("scram client: %w", ErrPassthroughMismatch))
		}
		if len(c.clientKey) != scramKeyLen || len(c.serverKey) != scramKeyLen {
			return nil, c.fail(errors.New("scram client: passthrough keys must be 32 bytes"))
		}
		clientKey = c.clientKey
	} else {
		if iterations > MaxIterations {
			return nil, c.fail(fmt.Errorf("scram client: server asks for %d iterations, more than the limit %d", iterations, MaxIterations))
		}
		clientKey, c.serverKey, err = scramKeys(c.password, salt, iterations)
		if err != nil {
			return nil, c.fail(fmt.Errorf("scram client: %w", err))
		}
		// The password is not needed any more.
		c.password = ""
	}

	withoutProof := "c=" + b64.EncodeToString([]byte(clientGS2Header)) + ",r=" + nonce
	c.authMessage = c.clientBare + "," + msg + "," + withoutProof
	clientSig := hmacSHA256(sha256Sum(clientKey), []byte(c.authMessage))
	proof := xorBytes(clientKey, clientSig)
	c.state = clientSentFinal
	return []byte(withoutProof + ",p=" + b64.EncodeToString(proof)), nil
}

// ServerFinal handles the AuthenticationSASLFinal payload
// (server-final-message) and verifies the server signature, so a server that
// does not know the verifier cannot pretend the login succeeded. It returns
// ErrServerSignature on a wrong signature and an error carrying the server's
// e= value when the server reports one.
func (c *SCRAMClient) ServerFinal(data []byte) error {
	if c.state != clientSentFinal {
		return c.fail(errors.New("scram client: server-final-message out of order"))
	}
	if len(data) > maxSCRAMMessage {
		return c.fail(clientMalformed("server-final-message too long"))
	}
	attrs, err := splitAttrs(string(data))
	if err != nil {
		return c.fail(clientMalformed("server-final-message: " + err.Error()))
	}
	switch attrs[0].name {
	case 'e':
		return c.fail(fmt.Errorf("scram client: server error %q", sanitize(attrs[0].value)))
	case 'v':
	default:
		return c.fail(clientMalformed("server-final-message: expected v=..."))
	}
	sig, err := b64.DecodeString(attrs[0].value)
	if err != nil || len(sig) != scramKeyLen {
		return c.fail(clientMalformed("server-final-message: bad signature"))
	}
	want := hmacSHA256(c.serverKey, []byte(c.authMessage))
	if subtle.ConstantTimeCompare(sig, want) != 1 {
		return c.fail(fmt.Errorf("scram client: %w", ErrServerSignature))
	}
	c.state = clientDone
	return nil
}

// sanitize bounds and cleans a server-provided string before it goes into
// an error message.
func sanitize(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// MD5Response computes the PasswordMessage payload answering an upstream
// AuthenticationMD5Password with salt: "md5" + hex(md5(hex(md5(password +
// user)) + salt)). secret must be plaintext or an md5 hash (the hash is
// enough: that is md5's weakness).
func MD5Response(secret Secret, user string, salt [4]byte) (string, error) {
	var hash string
	switch secret.Kind {
	case SecretPlain:
		hash = MD5Hash(user, secret.Plain)
	case SecretMD5:
		if !isMD5Secret(secret.MD5) {
			return "", errors.New("md5 response: malformed md5 secret")
		}
		hash = secret.MD5
	default:
		return "", fmt.Errorf("md5 response: a %s secret cannot answer md5 authentication", secret.Kind)
	}
	return md5Salted(hash, salt), nil
}

func md5Salted(hash string, salt [4]byte) string {
	sum := md5.Sum(append([]byte(hash[3:]), salt[:]...))
	return "md5" + hex.EncodeToString(sum[:])
}

// VerifyMD5 checks a client's md5 PasswordMessage payload against secret
// (plaintext or md5; a SCRAM secret cannot verify md5 and yields false), in
// constant time.
func VerifyMD5(secret Secret, user string, salt [4]byte, response string) bool {
	want, err := MD5Response(secret, user, salt)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(response)) == 1
}

// VerifyPassword checks a cleartext password (auth_type password) against
// any kind of secret, in constant time: plaintext is compared (through
// SHA-256, so the length does not leak), md5 by hash, SCRAM by deriving the
// keys with the verifier's salt and iterations, as PostgreSQL's
// scram_verify_plain_password does.
func VerifyPassword(secret Secret, user, password string) bool {
	switch secret.Kind {
	case SecretPlain:
		a, b := sha256Sum([]byte(secret.Plain)), sha256Sum([]byte(password))
		return subtle.ConstantTimeCompare(a, b) == 1
	case SecretMD5:
		return subtle.ConstantTimeCompare([]byte(MD5Hash(user, password)), []byte(secret.MD5)) == 1
	case SecretSCRAM:
		if secret.Iterations <= 0 || secret.Iterations > MaxIterations || len(secret.Salt) == 0 {
			return false
		}
		ck, sk, err := scramKeys(password, secret.Salt, secret.Iterations)
		if err != nil {
			return false
		}
		okStored := subtle.ConstantTimeCompare(sha256Sum(ck), secret.StoredKey)
		okServer := subtle.ConstantTimeCompare(sk, secret.ServerKey)
		return okStored&okServer == 1
	}
	return false
}
