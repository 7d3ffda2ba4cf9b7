package authpg_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// Every test gets its own database cloned from a template migrated once in
// TestMain, which keeps the package fast; TestMigrations migrates fresh
// databases itself.
// Names carry the pid so that runs sharing a server (PGTEST_DATABASE_URL)
// do not collide.
var (
	templateDB = fmt.Sprintf("authpg_template_%d", os.Getpid())
	examplesDB = fmt.Sprintf("authpg_examples_%d", os.Getpid())
)

// appRole is a LOGIN role that is neither superuser nor BYPASSRLS, so RLS
// applies to it (superusers bypass RLS even with FORCE).
var appRole = fmt.Sprintf("authpg_app_%d", os.Getpid())

const appPassword = "authpg_app_password"

func TestMain(m *testing.M) { pgtest.Main(m, setup) }

func setup(s *pgtest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	if _, err := authpg.MigrateURL(ctx, s.SuperURL(templateDB)); err != nil {
		return err
	}
	if err := s.Exec(ctx, templateDB, fmt.Sprintf(`
		CREATE ROLE %[1]s LOGIN PASSWORD '%[2]s' NOSUPERUSER NOBYPASSRLS;
		GRANT USAGE ON SCHEMA auth TO %[1]s;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth, public TO %[1]s;`, appRole, appPassword)); err != nil {
		return err
	}
	// The examples read their database from the environment, as an app
	// would: DATABASE_URL (a role that bypasses RLS, for mode 1) and
	// APP_DATABASE_URL (an RLS-bound role, for mode 2).
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+examplesDB+" TEMPLATE "+templateDB); err != nil {
		return err
	}
	os.Setenv("DATABASE_URL", s.SuperURL(examplesDB))
	os.Setenv("APP_DATABASE_URL", s.URL(appRole, appPassword, examplesDB))
	os.Setenv("SESSION_SECRET", "example-session-secret-32-bytes!")
	return nil
}

var dbSeq atomic.Int64

// newDB clones the migrated template into a database dropped at cleanup.
func newDB(t testing.TB) string {
	t.Helper()
	s := pgtest.Shared()
	name := fmt.Sprintf("ap_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name+" TEMPLATE "+templateDB); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return name
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newPool(t testing.TB, url string, mutate func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	if mutate != nil {
		mutate(cfg)
	}
	p, err := pgxpool.NewWithConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

var secret = []byte("0123456789abcdef0123456789abcdef")

// testKey is a deterministic TOTP key, different for each n.
func testKey(n byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = n + byte(i)
	}
	return k
}

func opts() authpg.Options {
	return authpg.Options{SessionSecret: secret, BcryptCost: bcrypt.MinCost,
		TOTPKeys: &authpg.TOTPKeyring{CurrentID: "test", Keys: map[string][]byte{"test": testKey(7)}}}
}

// env is one test's database with a superuser pool (mode 1: the explicit
// filter isolates) and a pool of the RLS-bound app role (modes 2 and 3).
type env struct {
	db    string
	super *pgxpool.Pool
	app   *pgxpool.Pool
	store *authpg.Store // mode 1, on super
	appSt *authpg.Store // on app; needs InTenant to see anything
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := pgtest.Shared()
	db := newDB(t)
	e := &env{db: db}
	e.super = newPool(t, s.SuperURL(db), nil)
	e.app = newPool(t, s.URL(appRole, appPassword, db), nil)
	var err error
	if e.store, err = authpg.New(e.super, opts()); err != nil {
		t.Fatal(err)
	}
	if e.appSt, err = authpg.New(e.app, opts()); err != nil {
		t.Fatal(err)
	}
	return e
}

func newTenant() uuid.UUID { return uuid.New() }

func mustUser(t testing.TB, s *authpg.Store, tenant uuid.UUID, handle string) *authpg.User {
	t.Helper()
	u, err := s.CreateUser(testCtx(t), tenant, authpg.NewUser{Handle: handle, Email: handle + "@example.test",
		DisplayName: "User " + handle, Password: "pw-" + handle, Role: authpg.RoleEditor})
	if err != nil {
		t.Fatalf("CreateUser %s: %v", handle, err)
	}
	return u
}

// superExec runs SQL as superuser on the env's database.
func (e *env) superExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := e.super.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}
