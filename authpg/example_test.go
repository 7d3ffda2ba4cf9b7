package authpg_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
)

// Schema first: Migrate (or `authpg migrate up`) creates the tables, their
// RLS policies and constraints; re-running it is a no-op.
func ExampleMigrateURL() {
	ctx := context.Background()
	if _, err := authpg.MigrateURL(ctx, os.Getenv("DATABASE_URL")); err != nil {
		log.Fatal(err)
	}
	st, err := authpg.StatusURL(ctx, os.Getenv("DATABASE_URL"), authpg.ModuleAuth)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st[0].Module, st[0].Current == st[0].Latest)
	// Output: auth true
}

// Way 1, direct pool: the Store owns a pool and every query carries the
// explicit tenant filter. The role must be able to see all tenants (an
// owner/admin role with BYPASSRLS, or a superuser), since the tables force
// RLS.
func Example_direct() {
	ctx := context.Background()
	store, err := authpg.Open(ctx, os.Getenv("DATABASE_URL"), authpg.Options{
		SessionSecret: []byte(os.Getenv("SESSION_SECRET")),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	acme, globex := uuid.New(), uuid.New()
	// The same handle in two tenants is two different users.
	for _, tenant := range []uuid.UUID{acme, globex} {
		if _, err := store.CreateUser(ctx, tenant, authpg.NewUser{Handle: "jo", Password: "correct horse"}); err != nil {
			log.Fatal(err)
		}
	}
	u, err := store.GetUserByHandle(ctx, acme, "JO")
	if err != nil {
		log.Fatal(err)
	}
	sess, err := store.CreateSession(ctx, acme, u.ID, &authpg.SessionMetadata{IPAddress: "203.0.113.7"})
	if err != nil {
		log.Fatal(err)
	}
	// The token (for the cookie) is bound to its tenant.
	_, err = store.GetSession(ctx, globex, sess.Token)
	fmt.Println(u.Handle, u.Role, u.TenantID == acme, errors.Is(err, authpg.ErrInvalidSession))
	// Output: jo viewer true true
}

// Way 2, WithTenant: a transaction that first sets app.current_tenant_id,
// so RLS holds even for a query that forgot its tenant filter. The pool's
// role must not bypass RLS.
func Example_withTenant() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("APP_DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := authpg.New(pool, authpg.Options{SessionSecret: []byte(os.Getenv("SESSION_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	tenant := uuid.New()

	// Store methods inside the tenant's transaction.
	err = store.InTenant(ctx, tenant, func(s *authpg.Store) error {
		_, err := s.BootstrapUsers(ctx, tenant, []authpg.BootstrapUser{{Handle: "owner", Password: "s3cret"}})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// Raw SQL inside the same kind of transaction: no WHERE tenant_id, yet
	// only this tenant's rows are visible.
	var n int
	err = authpg.WithTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM auth.users`).Scan(&n)
	})
	if err != nil {
		log.Fatal(err)
	}
	// Outside a tenant transaction the RLS-bound role sees nothing.
	has, _ := store.HasUsers(ctx, tenant)
	fmt.Println(n, has)
	// Output: 1 false
}

// Way 3, through multigres: the proxy authenticates app_user.<tenant>,
// connects upstream as app_user and sets app.current_tenant_id, so the
// tenant is fixed by the connection. Calls naming another tenant find
// nothing and change nothing (writes fail with ErrForbidden).
func Example_throughMultigres() {
	ctx := context.Background()
	tenant := uuid.MustParse("6f9619ff-8b86-4d01-b42d-00c04fc964ff")
	// e.g. postgres://app_user.6f9619ff-...:app_user_password@multigres:6432/app
	url := fmt.Sprintf("postgres://app_user.%s:%s@%s/%s", tenant, os.Getenv("APP_USER_PASSWORD"),
		os.Getenv("MULTIGRES_ADDR"), os.Getenv("PGDATABASE"))
	store, err := authpg.Open(ctx, url, authpg.Options{SessionSecret: []byte(os.Getenv("SESSION_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	users, err := store.ListUsers(ctx, tenant) // only this tenant's users
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(users))
}

// Login and logout on an RLS-bound role: Authenticate checks the password
// (within the attempt limits) and starts a session; the cookie holds the
// token, and logout deletes the session by that token. Inside InTenant a
// failed login returns nil from fn, so that the transaction commits the
// failure count instead of rolling it back.
func ExampleStore_Authenticate() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("APP_DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := authpg.New(pool, authpg.Options{SessionSecret: []byte(os.Getenv("SESSION_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	tenant := uuid.New()
	var cookie string
	var loginErr error
	err = store.InTenant(ctx, tenant, func(s *authpg.Store) error {
		if _, err := s.CreateUser(ctx, tenant, authpg.NewUser{Handle: "ana", Email: "ana@example.test", Password: "s3cret"}); err != nil {
			return err
		}
		// A wrong password: keep going, so that the failure is counted
		// when this transaction commits.
		_, loginErr = s.Authenticate(ctx, tenant, "ana", "wrong", nil)
		login, err := s.Authenticate(ctx, tenant, "ANA@example.test", "s3cret", &authpg.SessionMetadata{IPAddress: "203.0.113.7"})
		if err != nil {
			return err
		}
		cookie = login.Session.Token
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Later requests: look the session up by the cookie; logout by it.
	err = store.InTenant(ctx, tenant, func(s *authpg.Store) error {
		if _, err := s.GetSession(ctx, tenant, cookie); err != nil {
			return err
		}
		return s.DeleteSession(ctx, tenant, cookie)
	})
	if err != nil {
		log.Fatal(err)
	}
	err = store.InTenant(ctx, tenant, func(s *authpg.Store) error {
		_, err := s.GetSession(ctx, tenant, cookie)
		return err
	})
	fmt.Println(errors.Is(loginErr, authpg.ErrInvalidCredentials), errors.Is(err, authpg.ErrNotFound))
	// Output: true true
}
