// Package totp encrypts TOTP secrets at rest and generates and checks TOTP
// codes.
//
// Encryption is AES-256-GCM under a key derived with scrypt (N=16384, r=8,
// p=1, 32 bytes: the defaults of Node's crypto.scryptSync) from a
// passphrase and a random salt. The stored layout is the TypeScript
// ecosystem's {encryptedSecret, iv, authTag, salt}, each standard base64
// of the raw bytes, so rows written by the TypeScript package decrypt here
// and the other way round. Any IV length is accepted on decryption (Node
// code often uses 16 bytes); Encrypt uses GCM's standard 12.
//
// Codes are RFC 6238 (SHA-1, 6 digits, 30 s) via github.com/pquerna/otp.
// Validate returns the matched time step so callers can refuse replays by
// remembering the last step used (authpg.Store.VerifyTOTP does so
// atomically in the database).
package totp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"
	"golang.org/x/crypto/scrypt"
)

// EncryptedSecret is the stored form of a TOTP secret.
type EncryptedSecret struct {
	EncryptedSecret string `json:"encryptedSecret"`
	IV              string `json:"iv"`
	AuthTag         string `json:"authTag"`
	Salt            string `json:"salt"`
}

// ErrDecrypt means the passphrase is wrong or the data was altered.
var ErrDecrypt = errors.New("totp: cannot decrypt secret (wrong key or tampered data)")

// Period is the TOTP step length.
const Period = 30 * time.Second

func deriveKey(passphrase string, salt []byte) ([]byte, error) {
	if passphrase == "" {
		return nil, errors.New("totp: empty encryption passphrase")
	}
	k, err := scrypt.Key([]byte(passphrase), salt, 16384, 8, 1, 32)
	if err != nil {
		return nil, fmt.Errorf("totp: scrypt: %w", err)
	}
	return k, nil
}

// Encrypt seals a base32 TOTP secret under passphrase.
func Encrypt(secret, passphrase string) (EncryptedSecret, error) {
	salt := make([]byte, 16)
	iv := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return EncryptedSecret{}, fmt.Errorf("totp: salt: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return EncryptedSecret{}, fmt.Errorf("totp: iv: %w", err)
	}
	key, err := deriveKey(passphrase, salt)
	if err != nil {
		return EncryptedSecret{}, err
	}
	gcm, err := newGCM(key, len(iv))
	if err != nil {
		return EncryptedSecret{}, err
	}
	sealed := gcm.Seal(nil, iv, []byte(secret), nil)
	ct, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	b := base64.StdEncoding.EncodeToString
	return EncryptedSecret{EncryptedSecret: b(ct), IV: b(iv), AuthTag: b(tag), Salt: b(salt)}, nil
}

func newGCM(key []byte, ivLen int) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("totp: aes: %w", err)
	}
	if ivLen == 12 {
		return cipher.NewGCM(block)
	}
	g, err := cipher.NewGCMWithNonceSize(block, ivLen)
	if err != nil {
		return nil, fmt.Errorf("totp: gcm: %w", err)
	}
	return g, nil
}

// Decrypt opens an EncryptedSecret with passphrase.
func Decrypt(e EncryptedSecret, passphrase string) (string, error) {
	d := base64.StdEncoding.DecodeString
	ct, err1 := d(e.EncryptedSecret)
	iv, err2 := d(e.IV)
	tag, err3 := d(e.AuthTag)
	salt, err4 := d(e.Salt)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return "", fmt.Errorf("totp: bad base64: %w", err)
	}
	if len(iv) == 0 || len(tag) != 16 {
		return "", ErrDecrypt
	}
	key, err := deriveKey(passphrase, salt)
	if err != nil {
		return "", err
	}
	gcm, err := newGCM(key, len(iv))
	if err != nil {
		return "", err
	}
	pt, err := gcm.Open(nil, iv, append(ct, tag...), nil)
	if err != nil {
		return "", ErrDecrypt
	}
	return string(pt), nil
}

// KeySize is the length of an AES-256 key for Seal and Open.
const KeySize = 32

// DeriveKey derives a KeySize key from a passphrase with the same scrypt
// parameters as Encrypt. Run it once at start-up (it takes tens of
// milliseconds by design) and hand the key to Seal and Open.
func DeriveKey(passphrase string, salt []byte) ([]byte, error) {
	if len(salt) == 0 {
		return nil, errors.New("totp: empty salt")
	}
	return deriveKey(passphrase, salt)
}

// Seal encrypts secret with AES-256-GCM under key, binding it to aad
// (associated data: not stored, but the same bytes must be given to Open).
// It needs no key derivation, so it costs microseconds. Salt is left
// empty: the key is used as is.
func Seal(secret string, key, aad []byte) (EncryptedSecret, error) {
	if len(key) != KeySize {
		return EncryptedSecret{}, fmt.Errorf("totp: key must be %d bytes, not %d", KeySize, len(key))
	}
	iv := make([]byte, 12)
	if _, err := rand.Read(iv); err != nil {
		return EncryptedSecret{}, fmt.Errorf("totp: iv: %w", err)
	}
	gcm, err := newGCM(key, len(iv))
	if err != nil {
		return EncryptedSecret{}, err
	}
	sealed := gcm.Seal(nil, iv, []byte(secret), aad)
	ct, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	b := base64.StdEncoding.EncodeToString
	return EncryptedSecret{EncryptedSecret: b(ct), IV: b(iv), AuthTag: b(tag)}, nil
}

// Open decrypts what Seal produced; a wrong key, altered data or different
// aad is ErrDecrypt.
func Open(e EncryptedSecret, key, aad []byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("totp: key must be %d bytes, not %d", KeySize, len(key))
	}
	d := base64.StdEncoding.DecodeString
	ct, err1 := d(e.EncryptedSecret)
	iv, err2 := d(e.IV)
	tag, err3 := d(e.AuthTag)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", fmt.Errorf("totp: bad base64: %w", err)
	}
	if len(iv) == 0 || len(tag) != 16 {
		return "", ErrDecrypt
	}
	gcm, err := newGCM(key, len(iv))
	if err != nil {
		return "", err
	}
	pt, err := gcm.Open(nil, iv, append(ct, tag...), aad)
	if err != nil {
		return "", ErrDecrypt
	}
	return string(pt), nil
}

// GenerateKey makes a new random secret and its otpauth:// URL (for a QR
// code) for account at issuer.
func GenerateKey(issuer, account string) (secret, url string, err error) {
	k, err := pqtotp.Generate(pqtotp.GenerateOpts{Issuer: issuer, AccountName: account})
	if err != nil {
		return "", "", fmt.Errorf("totp: generate: %w", err)
	}
	return k.Secret(), k.URL(), nil
}

var opts = pqtotp.ValidateOpts{Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Step is the time step containing t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Code returns the code for secret at time t.
func Code(secret string, t time.Time) (string, error) {
	c, err := pqtotp.GenerateCodeCustom(secret, t, opts)
	if err != nil {
		return "", fmt.Errorf("totp: code: %w", err)
	}
	return c, nil
}

// Validate checks code against the steps at t-30s, t and t+30s and returns
// the matching step. It does not guard against replay by itself.
func Validate(secret, code string, t time.Time) (step int64, ok bool) {
	if len(code) != 6 {
		return 0, false
	}
	for _, skew := range []int64{0, -1, 1} {
		st := Step(t) + skew
		want, err := Code(secret, time.Unix(st*int64(Period/time.Second), 0))
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return st, true
		}
	}
	return 0, false
}
