package totp

import (
	"errors"
	"testing"
	"time"
)

// nodeVector was produced by Node.js's crypto, the way the TypeScript
// package stores secrets: scryptSync(passphrase, salt, 32), aes-256-gcm
// with a 16-byte IV, each field base64:
//
//	const salt = randomBytes(16), iv = randomBytes(16);
//	const key = scryptSync("correct horse battery staple", salt, 32);
//	const c = createCipheriv("aes-256-gcm", key, iv);
//	const enc = Buffer.concat([c.update("JBSWY3DPEHPK3PXP", "utf8"), c.final()]);
var nodeVector = EncryptedSecret{
	EncryptedSecret: "bg9jh5riLvU2OWAXAZc7wA==",
	IV:              "wZuto2FILwE8+sxTm39UjA==",
	AuthTag:         "L+/tmf5C6BSq+C74ahsYXw==",
	Salt:            "mK4V8SCCcBe+szE1uAZjGg==",
}

func TestDecryptNodeVector(t *testing.T) {
	got, err := Decrypt(nodeVector, "correct horse battery staple")
	if err != nil || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := Decrypt(nodeVector, "wrong"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	tampered := nodeVector
	tampered.AuthTag = "M+/tmf5C6BSq+C74ahsYXw=="
	if _, err := Decrypt(tampered, "correct horse battery staple"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered tag: %v", err)
	}
}

func TestEncryptRoundTrip(t *testing.T) {
	secret, url, err := GenerateKey("Massage Co", "alice")
	if err != nil || secret == "" || url == "" {
		t.Fatalf("GenerateKey = %q %q %v", secret, url, err)
	}
	e1, err := Encrypt(secret, "k")
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := Encrypt(secret, "k")
	if e1.Salt == e2.Salt || e1.IV == e2.IV || e1.EncryptedSecret == e2.EncryptedSecret {
		t.Fatal("salt/iv reused")
	}
	if got, err := Decrypt(e1, "k"); err != nil || got != secret {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	if _, err := Encrypt(secret, ""); err == nil {
		t.Fatal("empty passphrase accepted")
	}
}

func TestValidate(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXP"
	now := time.Unix(1_700_000_000, 0)
	code, err := Code(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	step, ok := Validate(secret, code, now)
	if !ok || step != Step(now) {
		t.Fatalf("Validate = %d, %v", step, ok)
	}
	// One step of clock skew either way is accepted, with the code's step.
	if st, ok := Validate(secret, code, now.Add(Period)); !ok || st != Step(now) {
		t.Fatalf("skew +1: %d %v", st, ok)
	}
	if _, ok := Validate(secret, code, now.Add(3*Period)); ok {
		t.Fatal("code accepted 3 steps later")
	}
	if _, ok := Validate(secret, "12345", now); ok {
		t.Fatal("short code accepted")
	}
	// RFC 6238 test vector (SHA-1, 59 s) truncated to 6 digits: 287082.
	rfc := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	if c, _ := Code(rfc, time.Unix(59, 0)); c != "287082" {
		t.Fatalf("RFC 6238 vector = %s", c)
	}
}

// TestSealOpen: a secret sealed with a key opens with the same key and
// associated data only.
func TestSealOpen(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	other := append([]byte(nil), key...)
	other[0] ^= 1
	aad := []byte("tenant\x00user")
	e, err := Seal("JBSWY3DPEHPK3PXP", key, aad)
	if err != nil || e.Salt != "" {
		t.Fatalf("Seal = %+v, %v", e, err)
	}
	if got, err := Open(e, key, aad); err != nil || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := Open(e, other, aad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with another key: %v, want ErrDecrypt", err)
	}
	if _, err := Open(e, key, []byte("tenant\x00someone else")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with other associated data: %v, want ErrDecrypt", err)
	}
	if _, err := Seal("x", key[:16], nil); err == nil {
		t.Fatal("Seal accepted a 16-byte key")
	}
	e2, _ := Seal("JBSWY3DPEHPK3PXP", key, aad)
	if e2.IV == e.IV || e2.EncryptedSecret == e.EncryptedSecret {
		t.Fatal("two seals of one secret share a nonce or ciphertext")
	}
	if k1, err := DeriveKey("pass", []byte("salt")); err != nil || len(k1) != KeySize {
		t.Fatalf("DeriveKey = %d bytes, %v", len(k1), err)
	}
	if _, err := DeriveKey("pass", nil); err == nil {
		t.Fatal("DeriveKey accepted an empty salt")
	}
}
