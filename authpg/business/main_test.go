package business_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// Names carry the pid so that runs sharing a server (PGTEST_DATABASE_URL)
// do not collide.
var (
	templateDB = fmt.Sprintf("business_template_%d", os.Getpid())
	examplesDB = fmt.Sprintf("business_examples_%d", os.Getpid())
)

var appRole = fmt.Sprintf("business_app_%d", os.Getpid())

const appPassword = "business_app_password"

func TestMain(m *testing.M) { pgtest.Main(m, setup) }

func setup(s *pgtest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	if _, err := authpg.MigrateURL(ctx, s.SuperURL(templateDB), authpg.ModuleBusiness); err != nil {
		return err
	}
	if err := s.Exec(ctx, templateDB, fmt.Sprintf(`
		CREATE ROLE %[1]s LOGIN PASSWORD '%[2]s' NOSUPERUSER NOBYPASSRLS;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[1]s;`, appRole, appPassword)); err != nil {
		return err
	}
	// The examples read DATABASE_URL (mode 1) and APP_DATABASE_URL (an
	// RLS-bound role, mode 2), as an app would.
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+examplesDB+" TEMPLATE "+templateDB); err != nil {
		return err
	}
	os.Setenv("DATABASE_URL", s.SuperURL(examplesDB))
	os.Setenv("APP_DATABASE_URL", s.URL(appRole, appPassword, examplesDB))
	return nil
}

var dbSeq atomic.Int64

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	db    string
	super *pgxpool.Pool
	app   *pgxpool.Pool
	q     *business.Queries
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := pgtest.Shared()
	name := fmt.Sprintf("bz_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx := testCtx(t)
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name+" TEMPLATE "+templateDB); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	pool := func(url string) *pgxpool.Pool {
		cfg, _ := pgxpool.ParseConfig(url)
		cfg.MaxConns = 12
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	e := &env{db: name, super: pool(s.SuperURL(name)), app: pool(s.URL(appRole, appPassword, name))}
	e.q = business.New(e.super)
	return e
}

// shop is one tenant's practitioner, service and client.
type shop struct {
	tenant       uuid.UUID
	practitioner business.Practitioner
	service      business.Service
	client       business.Client
}

func newShop(t testing.TB, q *business.Queries) shop {
	t.Helper()
	return newShopFor(t, q, uuid.New())
}

func newShopFor(t testing.TB, q *business.Queries, tenant uuid.UUID) shop {
	t.Helper()
	ctx := testCtx(t)
	s := shop{tenant: tenant}
	var err error
	if s.practitioner, err = q.CreatePractitioner(ctx, business.CreatePractitionerParams{TenantID: s.tenant, Slug: "jo", Name: "Jo", Title: "LMT"}); err != nil {
		t.Fatal(err)
	}
	if s.service, err = q.CreateService(ctx, business.CreateServiceParams{TenantID: s.tenant, Slug: "swedish-60", Name: "Swedish 60", DurationMinutes: 60, PriceCents: 9000}); err != nil {
		t.Fatal(err)
	}
	email := "client@example.test"
	if s.client, err = q.CreateClient(ctx, business.CreateClientParams{TenantID: s.tenant, Name: "Cli", Email: &email}); err != nil {
		t.Fatal(err)
	}
	return s
}

// at is a fixed day, hour h (UTC).
func at(h, m int) time.Time { return time.Date(2031, 3, 14, h, m, 0, 0, time.UTC) }
