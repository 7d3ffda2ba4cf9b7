package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// TestPrintRedactsAndRoundTrips: WriteTo, String and LogValue never show a
// secret, print one line per key in table order, and load back.
func TestPrintRedactsAndRoundTrips(t *testing.T) {
	t.Parallel()
	const authSecret, serverSecret = "Auth-Secret-4711", "Server-Secret-0815"
	c := mustLoad(t, []string{
		"--server-password", "app_user:" + serverSecret,
		"--context-variables", "app.current_list_id,app.current_user_id",
		"--set-role", `"quoted"`,
		"--auth-password", " " + authSecret + " ",
		"--auth-query", `SELECT "u", p FROM f($1)`,
		"--max-message-size", "1536",
	}, nil)

	if c.AuthPassword != " "+authSecret+" " {
		t.Errorf("auth_password lost its blanks: %q", c.AuthPassword)
	}
	var b strings.Builder
	n, err := c.WriteTo(&b)
	if err != nil || int(n) != b.Len() {
		t.Fatalf("WriteTo = %d, %v (wrote %d)", n, err, b.Len())
	}
	out := b.String()
	for _, secret := range []string{authSecret, serverSecret} {
		for name, s := range map[string]string{"WriteTo": out, "String": c.String(), "%v": fmt.Sprintf("%v %+v", c, *c)} {
			if strings.Contains(s, secret) {
				t.Errorf("%s output contains secret %q", name, secret)
			}
		}
	}
	var logBuf strings.Builder
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("config", "config", c)
	if strings.Contains(logBuf.String(), authSecret) || strings.Contains(logBuf.String(), serverSecret) {
		t.Errorf("slog output contains a secret: %s", logBuf.String())
	}
	if !strings.Contains(logBuf.String(), `"auth_password":"<redacted>"`) {
		t.Errorf("slog output lacks redacted auth_password: %s", logBuf.String())
	}
	for _, line := range []string{"auth_password = <redacted>\n", "server_password = <redacted>\n",
		"context_variables = app.current_list_id,app.current_user_id\n", "port = 6432\n", "max_message_size = 1536\n", "set_role = '\"quoted\"'\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	// One line per key, in table order.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	keys := Keys()
	if len(lines) != len(keys) {
		t.Fatalf("%d lines for %d keys", len(lines), len(keys))
	}
	for i, k := range keys {
		if !strings.HasPrefix(lines[i], k.Name+" = ") {
			t.Errorf("line %d = %q, want key %s", i+1, lines[i], k.Name)
		}
	}

	// The printout loads back to the same config, secrets aside.
	c.AuthPassword, c.ServerPassword = "", map[string]string{}
	var clean strings.Builder
	_, _ = c.WriteTo(&clean)
	back := mustLoad(t, []string{"--config", writeFile(t, "printed.conf", clean.String())}, nil)
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n%+v\nwant\n%+v", back, c)
	}
}
