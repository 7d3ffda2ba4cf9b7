package e2e

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// proxyGoroutines returns the stacks of goroutines running proxy code.
func proxyGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "multigres/internal/frontend") || strings.Contains(s, "multigres/internal/backend") {
			out = append(out, s)
		}
	}
	return out
}

// TestHostileInputsLeakNothing runs every hostile case against its own
// proxy, plus refused, failed and live sessions, shuts the proxy down and
// checks that no goroutine of the proxy is left. It is deliberately not
// parallel: the package's parallel tests wait until it is done, so any
// proxy goroutine still alive at the end is this proxy's.
func TestHostileInputsLeakNothing(t *testing.T) {
	if g := proxyGoroutines(); len(g) > 0 {
		t.Fatalf("proxy goroutines before the test:\n%s", strings.Join(g, "\n\n"))
	}
	e := newEnv(t, shortHandshake)
	for _, tc := range rawHostileCases(e) {
		t.Run(tc.name, tc.run)
	}
	t.Run("pgx refusals", func(t *testing.T) { pgxRefusals(t, e) })
	t.Run("wrong password", func(t *testing.T) {
		_, err := e.tryConnect(t, "app_user.acme", "wrong")
		wantPgError(t, err, "28P01", `password authentication failed for user "app_user.acme"`)
	})

	// Sessions still open at shutdown: one idle, one inside a long query.
	ctx := testCtx(t)
	idle := e.connect(t, "app_user.acme")
	if got := names(t, idle, "SELECT current_tenant_id()"); !eq(got, []string{"acme"}) {
		t.Fatalf("idle session: %v", got)
	}
	busy := e.connect(t, "app_user.globex")
	done := make(chan error, 1)
	go func() {
		_, err := busy.Exec(ctx, "SELECT pg_sleep(20)")
		done <- err
	}()
	e.waitActive(t, ctx, e.super(t), "SELECT pg_sleep(20)")

	// The check below must be able to see the proxy's goroutines at all.
	if g := proxyGoroutines(); len(g) < 2 {
		t.Fatalf("only %d proxy goroutines with two open sessions: the leak check is blind", len(g))
	}

	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.proxy.Server.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with open sessions: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("long query survived shutdown")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client of a killed session did not notice")
	}
	if n := e.proxy.Server.ConnCount(); n != 0 {
		t.Fatalf("%d connections after shutdown", n)
	}

	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		g := proxyGoroutines()
		if len(g) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d proxy goroutines left after shutdown:\n%s", len(g), strings.Join(g, "\n\n"))
		}
		<-tick.C
	}
	// New connections are refused once shut down.
	if _, err := e.tryConnect(t, "app_user.acme", proxytest.AppUserPassword); err == nil {
		t.Fatal("connected after shutdown")
	}
}
