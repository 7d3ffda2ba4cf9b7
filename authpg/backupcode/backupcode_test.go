package backupcode

import (
	"regexp"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestGenerateHashMatch(t *testing.T) {
	codes, err := Generate(Count)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d codes", len(codes))
	}
	re := regexp.MustCompile(`^[A-HJKMNP-Z2-9]{5}-[A-HJKMNP-Z2-9]{5}$`)
	seen := map[string]bool{}
	for _, c := range codes {
		if !re.MatchString(c) || seen[c] {
			t.Fatalf("bad or duplicate code %q", c)
		}
		seen[c] = true
	}
	hashes, err := Hash(codes, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !Match(hashes[0], codes[0]) {
		t.Fatal("code does not match its hash")
	}
	// Users may type lower case, spaces or no dash.
	if !Match(hashes[0], " "+Normalize(codes[0])[:5]+" "+toLower(codes[0][6:])) {
		t.Fatal("normalised input does not match")
	}
	if Match(hashes[0], codes[1]) {
		t.Fatal("another code matches")
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
