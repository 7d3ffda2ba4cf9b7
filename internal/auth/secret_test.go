package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseSecret(t *testing.T) {
	t.Parallel()
	// The verifier for RFC 7677's password "pencil" and salt (see
	// TestNewSCRAMSecretKnownVerifier).
	good := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	tests := []struct {
		in      string
		kind    SecretKind
		wantErr bool
	}{
		{good, SecretSCRAM, false},
		{"md5" + strings.Repeat("0a", 16), SecretMD5, false},
		{"md5" + strings.Repeat("0A", 16), SecretPlain, false}, // PostgreSQL: lowercase only
		{"md5" + strings.Repeat("0a", 15), SecretPlain, false},
		{"md5" + strings.Repeat("0a", 16) + "0", SecretPlain, false},
		{"md5" + strings.Repeat("zz", 16), SecretPlain, false},
		{"hunter2", SecretPlain, false},
		{"", SecretPlain, false},
		{"SCRAM-SHA-1$4096:abc", SecretPlain, false},
		{"SCRAM-SHA-256$", 0, true},
		{"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==", 0, true},
		{strings.Replace(good, "$4096:", "$0:", 1), 0, true},
		{strings.Replace(good, "$4096:", "$-1:", 1), 0, true},
		{strings.Replace(good, "$4096:", "$04096:", 1), 0, true},
		{strings.Replace(good, "$4096:", "$99999999999:", 1), 0, true},
		{strings.Replace(good, "$4096:", "$4096x:", 1), 0, true},
		{strings.Replace(good, "W22ZaJ0SNY7soEsUEjb6gQ==", "", 1), 0, true},
		{strings.Replace(good, "W22ZaJ0SNY7soEsUEjb6gQ==", "W22ZaJ0SNY7soEsUEjb6gQ", 1), 0, true},
		{strings.Replace(good, ":wfPL", ":", 1), 0, true},
		{strings.Replace(good, "=:", "=", 1), 0, true},
		{good[:len(good)-8] + "AAAA====", 0, true},
		{good + "x", 0, true},
		{strings.Repeat("x", 5000), 0, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.in), func(t *testing.T) {
			t.Parallel()
			s, err := ParseSecret(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedSecret) {
					t.Fatalf("err = %v, want ErrMalformedSecret", err)
				}
				if len(tt.in) > 20 && strings.Contains(err.Error(), tt.in[14:]) {
					t.Fatalf("error echoes the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			if s.Kind != tt.kind {
				t.Fatalf("kind = %v, want %v", s.Kind, tt.kind)
			}
			if s.Encode() != tt.in {
				t.Fatalf("Encode = %q, want the input back", s.Encode())
			}
		})
	}
}

func TestNewSCRAMSecretKnownVerifier(t *testing.T) {
	t.Parallel()
	salt, _ := b64.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	sec := mustSCRAMSecret(t, "pencil", salt, 4096)
	// StoredKey/ServerKey for RFC 7677's "pencil" with this salt.
	want := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if got := sec.Encode(); got != want {
		t.Fatalf("verifier = %q, want %q", got, want)
	}
}

func TestSecretRedaction(t *testing.T) {
	t.Parallel()
	const pw = "Sup3rSecretMaterial"
	scram := mustSCRAMSecret(t, pw, []byte("saltsaltsaltsalt"), 4096)
	secrets := []Secret{
		{Kind: SecretPlain, Plain: pw},
		{Kind: SecretMD5, MD5: MD5Hash("u", pw)},
		scram,
	}
	for _, s := range secrets {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s, "map", map[string]Secret{"u": s})
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
			fmt.Fprintf(&buf, verb+"\n", s)
			fmt.Fprintf(&buf, verb+"\n", []Secret{s})
		}
		fmt.Fprintf(&buf, "%v\n", &s)
		js, err := json.Marshal(map[string]any{"s": s, "p": &s})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(js)
		out := buf.String()
		forbidden := []string{pw, s.MD5, fmt.Sprintf("%x", pw)}
		if s.Kind == SecretSCRAM {
			forbidden = append(forbidden, b64.EncodeToString(s.StoredKey), b64.EncodeToString(s.ServerKey),
				fmt.Sprintf("%x", s.StoredKey[:8]), fmt.Sprint(s.StoredKey[:4]))
		}
		for _, f := range forbidden {
			if f != "" && strings.Contains(out, f) {
				t.Fatalf("%v leaked material %q in:\n%s", s.Kind, f, out)
			}
		}
		if !strings.Contains(out, "REDACTED") {
			t.Fatalf("no redaction marker in %s", out)
		}
	}
}

func TestMD5(t *testing.T) {
	t.Parallel()
	// Reference values computed with PostgreSQL's formula; the live check
	// against a server is in TestPostgresMD5Upstream.
	if got := MD5Hash("postgres", "postgres_password"); !isMD5Secret(got) {
		t.Fatalf("MD5Hash = %q is not an md5 secret", got)
	}
	plain := Secret{Kind: SecretPlain, Plain: "pw"}
	hashed := Secret{Kind: SecretMD5, MD5: MD5Hash("alice", "pw")}
	salt := [4]byte{1, 2, 3, 4}
	r1, err := MD5Response(plain, "alice", salt)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := MD5Response(hashed, "alice", salt)
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 || !isMD5Secret(r1) {
		t.Fatalf("responses differ or malformed: %q %q", r1, r2)
	}
	if r3, _ := MD5Response(plain, "alice", [4]byte{1, 2, 3, 5}); r3 == r1 {
		t.Fatal("response does not depend on the salt")
	}
	scram := mustSCRAMSecret(t, "pw", nil, 4096)
	if _, err := MD5Response(scram, "alice", salt); err == nil {
		t.Fatal("MD5Response from a SCRAM secret")
	}
	if _, err := MD5Response(Secret{Kind: SecretMD5, MD5: "md5zz"}, "alice", salt); err == nil {
		t.Fatal("MD5Response from a malformed md5 secret")
	}

	tests := []struct {
		name   string
		secret Secret
		user   string
		resp   string
		want   bool
	}{
		{"plain ok", plain, "alice", r1, true},
		{"md5 ok", hashed, "alice", r1, true},
		{"wrong user, plain secret", plain, "bob", r1, false},
		{"md5 secret of another user", Secret{Kind: SecretMD5, MD5: MD5Hash("bob", "pw")}, "alice", r1, false},
		{"wrong response", plain, "alice", "md5" + strings.Repeat("0", 32), false},
		{"empty response", plain, "alice", "", false},
		{"truncated", plain, "alice", r1[:20], false},
		{"scram secret", scram, "alice", r1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := VerifyMD5(tt.secret, tt.user, salt, tt.resp); got != tt.want {
				t.Fatalf("VerifyMD5 = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyPassword(t *testing.T) {
	t.Parallel()
	scram := mustSCRAMSecret(t, "pw", nil, 4096)
	huge := scram
	huge.Iterations = MaxIterations + 1
	tests := []struct {
		name     string
		secret   Secret
		password string
		want     bool
	}{
		{"plain ok", Secret{Kind: SecretPlain, Plain: "pw"}, "pw", true},
		{"plain wrong", Secret{Kind: SecretPlain, Plain: "pw"}, "pW", false},
		{"plain prefix", Secret{Kind: SecretPlain, Plain: "pw"}, "p", false},
		{"md5 ok", Secret{Kind: SecretMD5, MD5: MD5Hash("alice", "pw")}, "pw", true},
		{"md5 wrong", Secret{Kind: SecretMD5, MD5: MD5Hash("alice", "pw")}, "px", false},
		{"md5 of other user", Secret{Kind: SecretMD5, MD5: MD5Hash("bob", "pw")}, "pw", false},
		{"scram ok", scram, "pw", true},
		{"scram wrong", scram, "pw ", false},
		{"scram empty", scram, "", false},
		{"scram absurd iterations", huge, "pw", false},
		{"unknown kind", Secret{Kind: 42}, "pw", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := VerifyPassword(tt.secret, "alice", tt.password); got != tt.want {
				t.Fatalf("VerifyPassword = %v, want %v", got, tt.want)
			}
		})
	}
}
