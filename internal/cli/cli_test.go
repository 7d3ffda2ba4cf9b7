package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoCheck runs `multigres demo --check`, the quick start's proof of
// isolation, end to end: its own throwaway cluster, setup SQL, proxy.
func TestDemoCheck(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, "demo", []string{"--check"}, IO{Out: &out, Err: &errOut})
	if code != 0 {
		t.Fatalf("demo --check exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"ok   acme sees its 2 contacts", "ok   bypass user sees all 3", "demo check passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckConfigRejectsUnknownKey(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), "check-config", []string{"--no-such-key", "1"}, IO{Out: &out, Err: &errOut})
	if code == 0 || !strings.Contains(errOut.String(), "no-such-key") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestCheckConfigRedactsSecrets(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), "check-config", []string{"--auth-password", "s3cret-value"}, IO{Out: &out, Err: &errOut})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), "s3cret-value") || !strings.Contains(out.String(), "auth_password") {
		t.Fatalf("secret not redacted:\n%s", out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := Run(context.Background(), "frobnicate", nil, IO{Out: &out, Err: &errOut}); code != 2 {
		t.Fatalf("exit %d", code)
	}
}
