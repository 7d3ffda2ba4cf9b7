package auth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// exchange runs a full SCRAM exchange between c and s in memory.
func exchange(c *SCRAMClient, s *SCRAMServer) error {
	serverFirst, err := s.ClientFirst(c.Mechanism(), c.ClientFirst())
	if err != nil {
		return err
	}
	clientFinal, err := c.ServerFirst(serverFirst)
	if err != nil {
		return err
	}
	serverFinal, err := s.ClientFinal(clientFinal)
	if err != nil {
		return err
	}
	return c.ServerFinal(serverFinal)
}

func mustSCRAMSecret(t *testing.T, password string, salt []byte, iter int) Secret {
	t.Helper()
	sec, err := NewSCRAMSecret(password, salt, iter)
	if err != nil {
		t.Fatalf("NewSCRAMSecret: %v", err)
	}
	return sec
}

func mustServer(t *testing.T, sec Secret) *SCRAMServer {
	t.Helper()
	s, err := NewSCRAMServer(sec)
	if err != nil {
		t.Fatalf("NewSCRAMServer: %v", err)
	}
	return s
}

func TestSCRAMRoundTrip(t *testing.T) {
	t.Parallel()
	const pw = "correct horse battery staple"
	verifier := mustSCRAMSecret(t, pw, nil, 4096)
	tests := []struct {
		name     string
		secret   Secret
		password string
		wantErr  error
	}{
		{"verifier, right password", verifier, pw, nil},
		{"verifier, wrong password", verifier, "wrong", ErrAuthFailed},
		{"verifier, empty password", verifier, "", ErrAuthFailed},
		{"plaintext, right password", Secret{Kind: SecretPlain, Plain: pw}, pw, nil},
		{"plaintext, wrong password", Secret{Kind: SecretPlain, Plain: pw}, pw + "x", ErrAuthFailed},
		{"non-ASCII password", mustSCRAMSecret(t, "pässwörd ☃", nil, 4096), "pässwörd ☃", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustServer(t, tt.secret)
			err := exchange(NewSCRAMClient(tt.password), s)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("exchange: %v", err)
				}
				if s.ClientKey() == nil {
					t.Fatal("ClientKey nil after success")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("exchange error = %v, want %v", err, tt.wantErr)
			}
			if s.ClientKey() != nil {
				t.Fatal("ClientKey available after a failed exchange")
			}
		})
	}
}

func TestSCRAMClientKeyRecoveryAndPassthrough(t *testing.T) {
	t.Parallel()
	const pw = "s3cret-pässword"
	salt := []byte("0123456789abcdef")
	verifier := mustSCRAMSecret(t, pw, salt, 4096)

	front := mustServer(t, verifier)
	if front.ClientKey() != nil {
		t.Fatal("ClientKey available before the exchange")
	}
	if err := exchange(NewSCRAMClient(pw), front); err != nil {
		t.Fatalf("client -> proxy: %v", err)
	}
	wantCK, wantSK, err := scramKeys(pw, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	ck := front.ClientKey()
	if !bytes.Equal(ck, wantCK) {
		t.Fatal("recovered ClientKey differs from the one derived from the password")
	}
	if !bytes.Equal(front.ServerKey(), wantSK) || !bytes.Equal(front.Salt(), salt) || front.Iterations() != 4096 {
		t.Fatal("ServerKey/Salt/Iterations do not match the verifier")
	}

	t.Run("same verifier upstream", func(t *testing.T) {
		t.Parallel()
		up := mustServer(t, verifier)
		c := NewSCRAMClientFromKeys(ck, front.ServerKey(), front.Salt(), front.Iterations())
		if err := exchange(c, up); err != nil {
			t.Fatalf("passthrough: %v", err)
		}
		if !bytes.Equal(up.ClientKey(), ck) {
			t.Fatal("upstream recovered a different ClientKey")
		}
	})
	t.Run("different salt upstream", func(t *testing.T) {
		t.Parallel()
		up := mustServer(t, mustSCRAMSecret(t, pw, []byte("another salt...."), 4096))
		c := NewSCRAMClientFromKeys(ck, front.ServerKey(), front.Salt(), front.Iterations())
		if err := exchange(c, up); !errors.Is(err, ErrPassthroughMismatch) {
			t.Fatalf("err = %v, want ErrPassthroughMismatch", err)
		}
	})
	t.Run("different iterations upstream", func(t *testing.T) {
		t.Parallel()
		up := mustServer(t, mustSCRAMSecret(t, pw, salt, 4097))
		c := NewSCRAMClientFromKeys(ck, front.ServerKey(), front.Salt(), front.Iterations())
		if err := exchange(c, up); !errors.Is(err, ErrPassthroughMismatch) {
			t.Fatalf("err = %v, want ErrPassthroughMismatch", err)
		}
	})
	t.Run("wrong ClientKey", func(t *testing.T) {
		t.Parallel()
		bad := append([]byte(nil), ck...)
		bad[0] ^= 1
		up := mustServer(t, verifier)
		c := NewSCRAMClientFromKeys(bad, front.ServerKey(), front.Salt(), front.Iterations())
		if err := exchange(c, up); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("err = %v, want ErrAuthFailed", err)
		}
	})
	t.Run("wrong ServerKey detects impostor server", func(t *testing.T) {
		t.Parallel()
		bad := front.ServerKey()
		bad[0] ^= 1
		up := mustServer(t, verifier)
		c := NewSCRAMClientFromKeys(ck, bad, front.Salt(), front.Iterations())
		if err := exchange(c, up); !errors.Is(err, ErrServerSignature) {
			t.Fatalf("err = %v, want ErrServerSignature", err)
		}
	})
}

// TestSCRAMClientRFC7677 checks the client against the RFC 7677 example
// exchange, which pins the key derivation and message formats.
func TestSCRAMClientRFC7677(t *testing.T) {
	t.Parallel()
	c := NewSCRAMClient("pencil")
	if got := string(c.ClientFirst()); !strings.HasPrefix(got, "n,,n=,r=") {
		t.Fatalf("ClientFirst = %q", got)
	}
	// The RFC's client uses username "user" and a fixed nonce.
	c.clientNonce = "rOprNGfwEbeRWgbNEkqO"
	c.clientBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
	final, err := c.ServerFirst([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil {
		t.Fatalf("ServerFirst: %v", err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if string(final) != want {
		t.Fatalf("client-final = %q, want %q", final, want)
	}
	if err := c.ServerFinal([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Fatalf("ServerFinal: %v", err)
	}
}

func TestSCRAMServerRejectsMalformedClientFirst(t *testing.T) {
	t.Parallel()
	verifier := mustSCRAMSecret(t, "pw", nil, 4096)
	tests := []struct {
		name string
		mech string
		data string
		ok   bool
	}{
		{"libpq style", MechSCRAMSHA256, "n,,n=,r=abc", true},
		{"y flag", MechSCRAMSHA256, "y,,n=,r=abc", true},
		{"username with escapes", MechSCRAMSHA256, "n,,n=a=2Cb=3D,r=abc", true},
		{"extension", MechSCRAMSHA256, "n,,n=,r=abc,x=1", true},
		{"repeated nonce", MechSCRAMSHA256, "n,,n=,r=abc,r=def", false},
		{"PLUS mechanism", "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc", false},
		{"other mechanism", "PLAIN", "n,,n=,r=abc", false},
		{"channel binding", MechSCRAMSHA256, "p=tls-server-end-point,,n=,r=abc", false},
		{"authzid", MechSCRAMSHA256, "n,a=admin,n=,r=abc", false},
		{"bad flag", MechSCRAMSHA256, "x,,n=,r=abc", false},
		{"empty", MechSCRAMSHA256, "", false},
		{"header only", MechSCRAMSHA256, "n,,", false},
		{"mandatory ext", MechSCRAMSHA256, "n,,m=x,n=,r=abc", false},
		{"no nonce", MechSCRAMSHA256, "n,,n=", false},
		{"empty nonce", MechSCRAMSHA256, "n,,n=,r=", false},
		{"nonce with space", MechSCRAMSHA256, "n,,n=,r=a c", false},
		{"swapped attrs", MechSCRAMSHA256, "n,,r=abc,n=", false},
		{"bad escape", MechSCRAMSHA256, "n,,n=a=2D,r=abc", false},
		{"NUL", MechSCRAMSHA256, "n,,n=\x00,r=abc", false},
		{"trailing comma", MechSCRAMSHA256, "n,,n=,r=abc,", false},
		{"huge", MechSCRAMSHA256, "n,,n=,r=" + strings.Repeat("a", 5000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustServer(t, verifier)
			out, err := s.ClientFirst(tt.mech, []byte(tt.data))
			if tt.ok {
				if err != nil {
					t.Fatalf("ClientFirst: %v", err)
				}
				if !strings.HasPrefix(string(out), "r=abc") || !strings.Contains(string(out), ",s=") ||
					!strings.HasSuffix(string(out), ",i=4096") {
					t.Fatalf("server-first = %q", out)
				}
				return
			}
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("err = %v, want ErrAuthFailed", err)
			}
			// A failed server stays failed.
			if _, err := s.ClientFinal([]byte("c=biws,r=abc,p=AAAA")); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("ClientFinal after failure: %v", err)
			}
		})
	}
}

func TestSCRAMServerRejectsBadClientFinal(t *testing.T) {
	t.Parallel()
	const pw = "pw"
	verifier := mustSCRAMSecret(t, pw, nil, 4096)
	// mutate turns a valid client-final (computed by a real client) into a
	// bad one; nonce is the combined nonce.
	tests := []struct {
		name        string
		gs2         string
		mutate      func(final, nonce string) string
		isMalformed bool
	}{
		{"flipped proof", "n,,", func(f, _ string) string {
			i := strings.LastIndex(f, ",p=") + 3
			c := byte('A')
			if f[i] == 'A' {
				c = 'B'
			}
			return f[:i] + string(c) + f[i+1:]
		}, false},
		{"wrong nonce", "n,,", func(f, n string) string { return strings.Replace(f, n, n[:len(n)-1]+"x", 1) }, false},
		{"client nonce only", "n,,", func(f, n string) string { return strings.Replace(f, n, "abc", 1) }, false},
		{"cbind mismatch y vs n", "y,,", func(f, _ string) string { return f }, false},
		{"cbind p", "n,,", func(f, _ string) string { return strings.Replace(f, "c=biws", "c=cD10bHMsLA==", 1) }, false},
		{"two proofs", "n,,", func(f, _ string) string {
			i := strings.LastIndex(f, ",p=")
			return f[:i] + ",p=" + b64.EncodeToString(make([]byte, 32)) + f[i:]
		}, true},
		{"repeated nonce", "n,,", func(f, n string) string {
			i := strings.LastIndex(f, ",p=")
			return f[:i] + ",r=" + n + f[i:]
		}, true},
		{"proof not last", "n,,", func(f, _ string) string { return f + ",x=1" }, true},
		{"short proof", "n,,", func(f, _ string) string { return f[:strings.LastIndex(f, ",p=")] + ",p=AAAA" }, true},
		{"proof not base64", "n,,", func(f, _ string) string { return f[:strings.LastIndex(f, ",p=")] + ",p=!!!!" }, true},
		{"no proof", "n,,", func(f, _ string) string { return f[:strings.LastIndex(f, ",p=")] }, true},
		{"mandatory ext", "n,,", func(f, _ string) string {
			i := strings.LastIndex(f, ",p=")
			return f[:i] + ",m=x" + f[i:]
		}, true},
		{"garbage", "n,,", func(string, string) string { return "\xff\xfe" }, true},
		{"empty", "n,,", func(string, string) string { return "" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustServer(t, verifier)
			c := NewSCRAMClient(pw)
			first := c.ClientFirst()
			// Real client sends "n,,"; the "y" case claims otherwise on the
			// first message only, so c= (biws) no longer matches.
			first = append([]byte(tt.gs2), first[3:]...)
			sf, err := s.ClientFirst(MechSCRAMSHA256, first)
			if err != nil {
				t.Fatalf("ClientFirst: %v", err)
			}
			final, err := c.ServerFirst(sf)
			if err != nil {
				t.Fatalf("client ServerFirst: %v", err)
			}
			bad := tt.mutate(string(final), s.nonce)
			_, err = s.ClientFinal([]byte(bad))
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("err = %v, want ErrAuthFailed", err)
			}
			if got := errors.Is(err, ErrMalformed); got != tt.isMalformed {
				t.Fatalf("errors.Is(ErrMalformed) = %v, want %v (err %v)", got, tt.isMalformed, err)
			}
			if s.ClientKey() != nil {
				t.Fatal("ClientKey after failure")
			}
		})
	}
}

func TestSCRAMServerOutOfOrder(t *testing.T) {
	t.Parallel()
	s := mustServer(t, mustSCRAMSecret(t, "pw", nil, 4096))
	if _, err := s.ClientFinal([]byte("c=biws,r=abc,p=AAAA")); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("ClientFinal first: %v", err)
	}
	s = mustServer(t, mustSCRAMSecret(t, "pw", nil, 4096))
	if err := exchange(NewSCRAMClient("pw"), s); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientFirst(MechSCRAMSHA256, []byte("n,,n=,r=abc")); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("ClientFirst after success: %v", err)
	}
	if s.ClientKey() != nil {
		t.Fatal("ClientKey still available after a protocol violation")
	}
}

func TestNewSCRAMServerSecrets(t *testing.T) {
	t.Parallel()
	if _, err := NewSCRAMServer(Secret{Kind: SecretMD5, MD5: MD5Hash("u", "p")}); err == nil {
		t.Fatal("md5 secret accepted for SCRAM")
	}
	if _, err := NewSCRAMServer(Secret{Kind: SecretSCRAM}); err == nil {
		t.Fatal("empty SCRAM secret accepted")
	}
	s := mustServer(t, Secret{Kind: SecretPlain, Plain: "pw"})
	if s.Iterations() != DefaultIterations || len(s.Salt()) != 16 {
		t.Fatalf("plaintext-derived verifier: iterations %d, salt %d bytes", s.Iterations(), len(s.Salt()))
	}
	if got := s.Mechanisms(); len(got) != 1 || got[0] != "SCRAM-SHA-256" {
		t.Fatalf("Mechanisms = %v", got)
	}
}

func TestMockSCRAMServer(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	saltOf := func(user string, key []byte) string {
		t.Helper()
		s := NewMockSCRAMServer(user, key)
		sf, err := s.ClientFirst(MechSCRAMSHA256, []byte("n,,n=,r=abc"))
		if err != nil {
			t.Fatalf("mock ClientFirst: %v", err)
		}
		attrs, err := splitAttrs(string(sf))
		if err != nil || len(attrs) != 3 || attrs[1].name != 's' || attrs[2].value != "4096" {
			t.Fatalf("mock server-first = %q", sf)
		}
		return attrs[1].value
	}
	a1, a2 := saltOf("ghost", key), saltOf("ghost", key)
	if a1 != a2 {
		t.Fatalf("mock salt not stable: %q vs %q", a1, a2)
	}
	if b := saltOf("other", key); b == a1 {
		t.Fatal("mock salt does not depend on the user name")
	}
	if c := saltOf("ghost", []byte("another key")); c == a1 {
		t.Fatal("mock salt does not depend on the key")
	}
	// Same length as a real verifier's salt, so it does not stand out.
	if raw, err := b64.DecodeString(a1); err != nil || len(raw) != 16 {
		t.Fatalf("mock salt %q: %d bytes, %v", a1, len(raw), err)
	}
	m := NewMockSCRAMServerIterations("ghost", key, 8192)
	if sf, err := m.ClientFirst(MechSCRAMSHA256, []byte("n,,n=,r=abc")); err != nil || !strings.HasSuffix(string(sf), ",i=8192") {
		t.Fatalf("mock with 8192 iterations: %q, %v", sf, err)
	}

	// Even a client that answers consistently with the advertised salt
	// (any password) fails, with the same error as a wrong password.
	for _, pw := range []string{"", "pw", "postgres_password"} {
		m := NewMockSCRAMServer("ghost", key)
		err := exchange(NewSCRAMClient(pw), m)
		if !errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrMalformed) {
			t.Fatalf("mock exchange with %q: err = %v, want ErrAuthFailed (not malformed)", pw, err)
		}
		if m.ClientKey() != nil || m.ServerKey() != nil {
			t.Fatal("mock server exposes keys")
		}
	}
	// The failure looks like a real wrong-password failure.
	real := mustServer(t, mustSCRAMSecret(t, "pw", nil, 4096))
	realErr := exchange(NewSCRAMClient("wrong"), real)
	mockErr := exchange(NewSCRAMClient("wrong"), NewMockSCRAMServer("ghost", key))
	if realErr == nil || mockErr == nil || realErr.Error() != mockErr.Error() {
		t.Fatalf("mock error %v differs from real error %v", mockErr, realErr)
	}
}

func TestSCRAMClientRejectsBadServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first func(nonce string) string
	}{
		{"nonce not extended", func(n string) string { return "r=" + n + ",s=c2FsdA==,i=4096" }},
		{"foreign nonce", func(n string) string { return "r=zzz" + n + ",s=c2FsdA==,i=4096" }},
		{"no salt", func(n string) string { return "r=" + n + "x,s=,i=4096" }},
		{"bad salt", func(n string) string { return "r=" + n + "x,s=***,i=4096" }},
		{"zero iterations", func(n string) string { return "r=" + n + "x,s=c2FsdA==,i=0" }},
		{"negative iterations", func(n string) string { return "r=" + n + "x,s=c2FsdA==,i=-1" }},
		{"too many iterations", func(n string) string { return "r=" + n + "x,s=c2FsdA==,i=2000000000" }},
		{"mandatory ext", func(n string) string { return "m=x,r=" + n + "x,s=c2FsdA==,i=4096" }},
		{"missing i", func(n string) string { return "r=" + n + "x,s=c2FsdA==" }},
		{"error", func(string) string { return "e=other-error" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewSCRAMClient("pw")
			c.ClientFirst()
			if _, err := c.ServerFirst([]byte(tt.first(c.clientNonce))); err == nil {
				t.Fatal("accepted")
			}
			if err := c.ServerFinal([]byte("v=AAAA")); err == nil {
				t.Fatal("ServerFinal accepted after failure")
			}
		})
	}

	// A server that does not know the verifier cannot fake success.
	for name, final := range map[string]string{
		"wrong signature": "v=" + b64.EncodeToString(make([]byte, 32)),
		"server error":    "e=invalid-proof",
		"short":           "v=AAAA",
		"empty":           "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := mustServer(t, mustSCRAMSecret(t, "pw", nil, 4096))
			c := NewSCRAMClient("pw")
			sf, err := s.ClientFirst(MechSCRAMSHA256, c.ClientFirst())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ServerFirst(sf); err != nil {
				t.Fatal(err)
			}
			if err := c.ServerFinal([]byte(final)); err == nil {
				t.Fatal("accepted a bad server-final-message")
			}
		})
	}
}

func TestSCRAMClientPassthroughBadKeys(t *testing.T) {
	t.Parallel()
	salt := []byte("0123456789abcdef")
	verifier := mustSCRAMSecret(t, "pw", salt, 4096)
	for name, c := range map[string]*SCRAMClient{
		"short ClientKey": NewSCRAMClientFromKeys(make([]byte, 16), verifier.ServerKey, salt, 4096),
		"nil ServerKey":   NewSCRAMClientFromKeys(make([]byte, 32), nil, salt, 4096),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := exchange(c, mustServer(t, verifier))
			if err == nil || errors.Is(err, ErrPassthroughMismatch) {
				t.Fatalf("err = %v, want a key-length error", err)
			}
		})
	}
	// ClientFirst twice is a misuse and fails the exchange.
	c := NewSCRAMClient("pw")
	c.ClientFirst()
	if c.ClientFirst() != nil {
		t.Fatal("second ClientFirst returned a message")
	}
}

func TestDeriveSCRAMKeys(t *testing.T) {
	t.Parallel()
	// RFC 7677's "pencil": the keys must give the known verifier.
	salt, _ := b64.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	ck, sk, err := DeriveSCRAMKeys("pencil", salt, 4096)
	if err != nil {
		t.Fatalf("DeriveSCRAMKeys: %v", err)
	}
	if got := b64.EncodeToString(sha256Sum(ck)); got != "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" {
		t.Fatalf("StoredKey = %s", got)
	}
	if got := b64.EncodeToString(sk); got != "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=" {
		t.Fatalf("ServerKey = %s", got)
	}

	// A keys client built from them logs in where NewSCRAMClient(password)
	// does, with the same password preparation (the verifier is built from
	// the composed "ä", the keys from the decomposed one).
	salt = []byte("0123456789abcdef")
	verifier := mustSCRAMSecret(t, "s3cret-p\u00e4ssword", salt, 4096)
	ck, sk, err = DeriveSCRAMKeys("s3cret-pa\u0308ssword", salt, 4096)
	if err != nil {
		t.Fatalf("DeriveSCRAMKeys: %v", err)
	}
	for i := 0; i < 2; i++ { // the keys can be reused
		if err := exchange(NewSCRAMClientFromKeys(ck, sk, salt, 4096), mustServer(t, verifier)); err != nil {
			t.Fatalf("login %d with derived keys: %v", i, err)
		}
	}
	ck, sk, err = DeriveSCRAMKeys("wrong", salt, 4096)
	if err != nil {
		t.Fatalf("DeriveSCRAMKeys: %v", err)
	}
	if err := exchange(NewSCRAMClientFromKeys(ck, sk, salt, 4096), mustServer(t, verifier)); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong password: err = %v, want ErrAuthFailed", err)
	}

	for name, tc := range map[string]struct {
		salt []byte
		iter int
	}{
		"nil salt":        {nil, 4096},
		"empty salt":      {[]byte{}, 4096},
		"zero iterations": {salt, 0},
		"negative":        {salt, -1},
		"too many":        {salt, MaxIterations + 1},
	} {
		if ck, sk, err := DeriveSCRAMKeys("pw", tc.salt, tc.iter); err == nil || ck != nil || sk != nil {
			t.Errorf("%s: err = %v, keys returned = %v", name, err, ck != nil || sk != nil)
		}
	}
}
