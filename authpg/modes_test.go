package authpg_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// inModes runs fn once in each way of use, each with a fresh tenant: on
// the superuser pool (direct), inside InTenant on the RLS-bound app role
// (WithTenant), and through the multigres proxy with the tenant fixed by
// the user name (multigres). o configures each Store.
//
// An optional env is used instead of a new one, for tests that also reach
// the database directly.
func inModes(t *testing.T, o authpg.Options, fn func(t *testing.T, s *authpg.Store, tenant uuid.UUID), envs ...*env) {
	t.Helper()
	var e *env
	if len(envs) > 0 {
		e = envs[0]
	} else {
		e = newEnv(t)
	}
	var p *proxytest.Proxy
	t.Run("direct", func(t *testing.T) {
		s, err := authpg.New(e.super, o)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, newTenant())
	})
	t.Run("WithTenant", func(t *testing.T) {
		s, err := authpg.New(e.app, o)
		if err != nil {
			t.Fatal(err)
		}
		tn := newTenant()
		if err := s.InTenant(testCtx(t), tn, func(s *authpg.Store) error {
			fn(t, s, tn)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("multigres", func(t *testing.T) {
		if p == nil {
			p = startProxy(t, e)
		}
		tn := newTenant()
		pool := newPool(t, proxytest.URL(p.Addr, proxytest.AppUser+"."+tn.String(), proxytest.AppUserPassword, e.db), nil)
		s, err := authpg.New(pool, o)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, tn)
	})
}

// inModesCommitted is inModes for tests that change the database behind
// the Store's back between steps (as someone who can write the tables
// would): fn gets run, which runs one step and commits it. In the
// WithTenant mode each step is its own InTenant transaction.
func inModesCommitted(t *testing.T, o authpg.Options, fn func(t *testing.T, e *env, run func(func(s *authpg.Store)), tenant uuid.UUID)) {
	t.Helper()
	e := newEnv(t)
	var p *proxytest.Proxy
	t.Run("direct", func(t *testing.T) {
		s, err := authpg.New(e.super, o)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, e, func(step func(*authpg.Store)) { step(s) }, newTenant())
	})
	t.Run("WithTenant", func(t *testing.T) {
		s, err := authpg.New(e.app, o)
		if err != nil {
			t.Fatal(err)
		}
		tn := newTenant()
		fn(t, e, func(step func(*authpg.Store)) {
			if err := s.InTenant(testCtx(t), tn, func(s *authpg.Store) error { step(s); return nil }); err != nil {
				t.Fatal(err)
			}
		}, tn)
	})
	t.Run("multigres", func(t *testing.T) {
		if p == nil {
			p = startProxy(t, e)
		}
		tn := newTenant()
		pool := newPool(t, proxytest.URL(p.Addr, proxytest.AppUser+"."+tn.String(), proxytest.AppUserPassword, e.db), nil)
		s, err := authpg.New(pool, o)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, e, func(step func(*authpg.Store)) { step(s) }, tn)
	})
}
