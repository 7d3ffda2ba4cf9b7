package pool

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTenantQuota: one key holds at most max connections of a pool; its
// next acquire waits while other keys are served, gets one as soon as the
// key releases, and gives up with ErrQuotaWait at the context's deadline.
func TestTenantQuota(t *testing.T) {
	t.Parallel()
	p := newSet(t, 0).Get(Key{Database: "postgres", Role: "quota"}, dialer(t, "postgres"), Limits{Size: 3, WaitTimeout: 10 * time.Second})
	a, err := p.AcquireQuota(ctx(t), "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.QuotaHeld("acme"); n != 1 {
		t.Fatalf("acme holds %d slots, want 1", n)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.AcquireQuota(short, "acme", 1); !errors.Is(err, ErrQuotaWait) {
		t.Fatalf("acme's second acquire at its limit: %v, want ErrQuotaWait", err)
	}
	g, err := p.AcquireQuota(ctx(t), "globex", 1)
	if err != nil {
		t.Fatalf("globex while acme is at its limit: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		c, err := p.AcquireQuota(ctx(t), "acme", 1)
		if err == nil {
			p.Release(c, true)
		}
		got <- err
	}()
	p.Release(a, true)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("acme's waiter after the release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acme's waiter was not woken by the release")
	}
	p.Release(g, true)
	for _, k := range []string{"acme", "globex"} {
		if n := p.QuotaHeld(k); n != 0 {
			t.Errorf("%s still holds %d slots after releasing everything", k, n)
		}
	}
	// Without a limit, AcquireQuota is Acquire and counts nothing.
	c, err := p.AcquireQuota(ctx(t), "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.QuotaHeld("acme"); n != 0 {
		t.Errorf("unlimited acquire took a slot: %d", n)
	}
	p.Release(c, true)
}

// TestTenantQuotaClosed: a waiter whose context is cancelled (the proxy
// shutting down) gets ErrClosed, not the timeout.
func TestTenantQuotaClosed(t *testing.T) {
	t.Parallel()
	p := newSet(t, 0).Get(Key{Database: "postgres", Role: "quota2"}, dialer(t, "postgres"), Limits{Size: 2})
	a, err := p.AcquireQuota(ctx(t), "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release(a, true)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.AcquireQuota(c, "acme", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("cancelled waiter: %v, want ErrClosed", err)
	}
}
