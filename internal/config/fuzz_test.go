package config

import (
	"strings"
	"testing"
)

// FuzzParseFile feeds arbitrary bytes to the file parser. It must never
// panic, and whatever it accepts must print back to a file that parses to
// the same values (secrets aside, since they print as <redacted>).
//
//	go test ./internal/config -run '^$' -fuzz FuzzParseFile -fuzztime 2m
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("port = 6432\nlisten_host = 127.0.0.1\n"))
	f.Add([]byte("# c\n; c\n[multigres]\ncontext_variables = app.a, app.b\nvalue_separator = \":\"\n"))
	f.Add([]byte("server_password = a:b:c,d:e\nmax_message_size = 16MB\nhandshake_timeout = 5\n"))
	f.Add([]byte("[resolver org]\nquery = SELECT 1 WHERE $1 <> ''\nparams = app.a\nsets = app.b\n"))
	f.Add([]byte("set_role = '\"x\"'\r\nauth_query = SELECT $1 # not a comment\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		settings, resolvers, err := parseFile("f.conf", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf:") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		c := Default()
		c.Resolvers = resolvers
		for _, s := range settings {
			_ = s.apply(c) // bad values are reported, never stored
		}
		c.AuthPassword, c.ServerPassword = "", map[string]string{}
		var b strings.Builder
		if _, err := c.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		back, backResolvers, err := parseFile("printed.conf", []byte(b.String()))
		if err != nil {
			t.Fatalf("printed config does not parse: %v\n%s", err, b.String())
		}
		c2 := Default()
		for _, s := range back {
			if err := s.apply(c2); err != nil {
				t.Fatalf("printed value refused: %v\n%s", err, b.String())
			}
		}
		if len(backResolvers) != len(resolvers) {
			t.Fatalf("resolvers changed in round trip: %d -> %d", len(resolvers), len(backResolvers))
		}
		for i := range keyTable {
			k := &keyTable[i]
			if a, b := k.kind.format(k.get(c)), k.kind.format(k.get(c2)); a != b {
				t.Fatalf("%s changed in round trip: %q -> %q", k.Name, a, b)
			}
		}
	})
}
