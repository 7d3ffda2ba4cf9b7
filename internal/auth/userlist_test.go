package auth

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseUserlist(t *testing.T) {
	t.Parallel()
	verifier := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	md5 := MD5Hash("bob", "pw")
	in := strings.Join([]string{
		`; PgBouncer comment`,
		`# hash comment`,
		``,
		`   `,
		`"alice" "` + verifier + `"`,
		`"bob"	"` + md5 + `"`,
		`  "carol"   "plain ""quoted"" pw"   ; trailing comment`,
		`"we""ird user" "x"` + "\r",
		`"app_user" "first"`,
		`"app_user" "second"`,
		`"spaces in name" "p w"`,
	}, "\n")
	got, err := ParseUserlist(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseUserlist: %v", err)
	}
	want := map[string]struct {
		kind    SecretKind
		encoded string
	}{
		"alice":          {SecretSCRAM, verifier},
		"bob":            {SecretMD5, md5},
		"carol":          {SecretPlain, `plain "quoted" pw`},
		`we"ird user`:    {SecretPlain, "x"},
		"app_user":       {SecretPlain, "second"}, // later entry wins, as in PgBouncer
		"spaces in name": {SecretPlain, "p w"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d users, want %d: %v", len(got), len(want), got)
	}
	for user, w := range want {
		s, ok := got[user]
		if !ok {
			t.Fatalf("user %q missing", user)
		}
		if s.Kind != w.kind || s.Encode() != w.encoded {
			t.Fatalf("user %q: kind %v encoded %q, want %v %q", user, s.Kind, s.Encode(), w.kind, w.encoded)
		}
	}
	// The parsed verifier authenticates the password it was made from.
	srv := mustServer(t, got["alice"])
	if err := exchange(NewSCRAMClient("pencil"), srv); err != nil {
		t.Fatalf("SCRAM with userlist verifier: %v", err)
	}
}

func TestParseUserlistErrors(t *testing.T) {
	t.Parallel()
	const secretPW = "TopSecretPassword123"
	tests := []struct {
		name string
		in   string
		line string
	}{
		{"unquoted user", "alice \"" + secretPW + "\"", "line 1:"},
		{"unterminated user", "\"alice " + secretPW, "line 1:"},
		{"no password", "\n\"alice\"", "line 2:"},
		{"no space", "\"alice\"\"" + secretPW + "\"", "line 1:"},
		{"unquoted password", "\"alice\" " + secretPW, "line 1:"},
		{"unterminated password", "; c\n\"alice\" \"" + secretPW, "line 2:"},
		{"trailing junk", "\"alice\" \"" + secretPW + "\" junk", "line 1:"},
		{"junk glued", "\"alice\" \"" + secretPW + "\"x", "line 1:"},
		{"empty user", "\"\" \"" + secretPW + "\"", "line 1:"},
		{"empty password", "\"alice\" \"\"", "line 1:"},
		{"NUL in password", "\"alice\" \"" + secretPW + "\x00\"", "line 1:"},
		{"long user", "\"" + strings.Repeat("u", 128) + "\" \"" + secretPW + "\"", "line 1:"},
		{"bad verifier", "\"alice\" \"SCRAM-SHA-256$4096:" + secretPW + "\"", "line 1:"},
		{"long line", "\"alice\" \"" + strings.Repeat(secretPW, 2000) + "\"", "line 1:"},
		{"third line", "\"a\" \"b\"\n\"c\" \"d\"\n\"e\"", "line 3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseUserlist(strings.NewReader(tt.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.line) {
				t.Fatalf("error %q does not name %q", err, tt.line)
			}
			if strings.Contains(err.Error(), secretPW) || strings.Contains(err.Error(), secretPW[:8]) {
				t.Fatalf("error echoes the password: %q", err)
			}
		})
	}
}

func TestParseUserlistReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	_, err := ParseUserlist(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapped boom", err)
	}
}
