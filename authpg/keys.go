package authpg

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg/totp"
)

// TOTPKeys supplies the AES-256 keys that TOTP secrets are sealed with.
// The Store takes it once (Options.TOTPKeys), so verifying a code costs no
// key derivation. Rotation: make a new key current and keep the old ones
// available by id; rows sealed with an old key (or in the legacy
// passphrase format) are re-sealed with the current key the next time a
// code verifies against them.
type TOTPKeys interface {
	// Current returns the id and the KeySize-byte key new secrets are
	// sealed with.
	Current() (id string, key []byte)
	// Key returns the key with id, or false when it is unknown.
	Key(id string) ([]byte, bool)
	// LegacyPassphrase opens rows without a key id: rows the TypeScript
	// package (or totp.Encrypt) wrote, with a scrypt key per row. Empty
	// when there are none.
	LegacyPassphrase() string
}

// TOTPKeyring is the static TOTPKeys.
type TOTPKeyring struct {
	CurrentID  string            // id of the key new secrets are sealed with
	Keys       map[string][]byte // every key still in use, by id; each totp.KeySize bytes
	Passphrase string            // optional legacy passphrase (see TOTPKeys)
}

var _ TOTPKeys = (*TOTPKeyring)(nil)

// Current implements TOTPKeys.
func (k *TOTPKeyring) Current() (string, []byte) { return k.CurrentID, k.Keys[k.CurrentID] }

// Key implements TOTPKeys.
func (k *TOTPKeyring) Key(id string) ([]byte, bool) {
	v, ok := k.Keys[id]
	return v, ok
}

// LegacyPassphrase implements TOTPKeys.
func (k *TOTPKeyring) LegacyPassphrase() string { return k.Passphrase }

// ErrNoTOTPKeys is returned by the TOTP methods of a Store configured
// without Options.TOTPKeys.
var ErrNoTOTPKeys = errors.New("authpg: no TOTP keys configured (Options.TOTPKeys)")

func checkKeys(k TOTPKeys) error {
	id, key := k.Current()
	if id == "" || strings.ContainsAny(id, ":") {
		return fmt.Errorf("%w: TOTP key id %q must be non-empty and without ':'", ErrInvalidInput, id)
	}
	if len(key) != totp.KeySize {
		return fmt.Errorf("%w: current TOTP key must be %d bytes", ErrInvalidInput, totp.KeySize)
	}
	return nil
}

// totpAAD binds a permanent secret to its row's tenant and user: a sealed
// secret copied onto another user's row no longer opens.
func totpAAD(tenantID, userID uuid.UUID) []byte {
	return []byte("authpg-totp\x00" + tenantID.String() + "\x00" + userID.String())
}

// tempAAD binds a session's enrolment secret to the session.
func tempAAD(tenantID, sessionID uuid.UUID) []byte {
	return []byte("authpg-temp-totp\x00" + tenantID.String() + "\x00" + sessionID.String())
}

// sealTemp encrypts an enrolment secret for the sessions.temp_totp_secret
// column as "v1:<key id>:<iv>:<ciphertext+tag>" (base64).
func (s *Store) sealTemp(tenantID, sessionID uuid.UUID, secret string) (string, error) {
	if s.keys == nil {
		return "", ErrNoTOTPKeys
	}
	id, key := s.keys.Current()
	e, err := totp.Seal(secret, key, tempAAD(tenantID, sessionID))
	if err != nil {
		return "", err
	}
	return "v1:" + id + ":" + e.IV + ":" + e.EncryptedSecret + ":" + e.AuthTag, nil
}

func (s *Store) openTemp(tenantID, sessionID uuid.UUID, stored string) (string, error) {
	parts := strings.Split(stored, ":")
	if len(parts) != 5 || parts[0] != "v1" {
		return "", fmt.Errorf("temp TOTP secret: %w", totp.ErrDecrypt)
	}
	if s.keys == nil {
		return "", ErrNoTOTPKeys
	}
	key, ok := s.keys.Key(parts[1])
	if !ok {
		return "", fmt.Errorf("temp TOTP secret: unknown key id %q", parts[1])
	}
	return totp.Open(totp.EncryptedSecret{IV: parts[2], EncryptedSecret: parts[3], AuthTag: parts[4]}, key,
		tempAAD(tenantID, sessionID))
}

// NewTOTPKey returns a fresh random key, base64-encoded for an
// environment variable or secret store.
func NewTOTPKey() (string, error) {
	b := make([]byte, totp.KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("NewTOTPKey: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
