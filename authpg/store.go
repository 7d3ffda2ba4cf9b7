// Package authpg is tenant-scoped authentication storage and business
// schemas for PostgreSQL, the Go counterpart of the TypeScript package
// @tummycrypt/tinyland-auth-pg.
//
// Every method takes the tenant first and filters by it explicitly. The
// tables also carry row-level security policies keyed on
// app.current_tenant_id, in exactly the form multigres_protect() creates, so
// the same database can be used three ways:
//
//  1. Direct: a Store over a pool whose role bypasses RLS (an owner or admin
//     role); the explicit tenant filter isolates tenants.
//  2. WithTenant / Store.InTenant: a transaction that first runs
//     set_config('app.current_tenant_id', tenant, true), so RLS holds even
//     where a query forgot its filter.
//  3. Through multigres: the proxy fixes the tenant from the user name
//     (app_user.<tenant>); a call naming another tenant finds nothing and can
//     change nothing.
//
// The tables FORCE row-level security, so a Store used directly needs a
// superuser or BYPASSRLS role; an ordinary role sees nothing outside
// InTenant, WithTenant or a multigres connection. The migrations need
// PostgreSQL 15 or later.
//
// Ids are uuid.UUID, as in authpg/business; the nil UUID is refused as a
// tenant (ErrInvalidTenant) and as a row id. Authenticate logs users in
// within attempt limits kept in the database (Options.Limits); TOTP
// secrets are sealed with keys given once (Options.TOTPKeys). See
// docs/authpg.md for the security parameters.
//
// Expiry (sessions, invitations, slot holds, gift certificates) is always
// computed with the database clock (now() in SQL), never the app server's.
package authpg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// DB is what a Store runs its queries on: a *pgxpool.Pool, a *pgx.Conn, a
// pgx.Tx, or a *sql.DB wrapped by SQLDB.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

var (
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = (*pgx.Conn)(nil)
	_ DB = (pgx.Tx)(nil)
)

// DefaultSessionMaxAge is the session lifetime when Options.SessionMaxAge is
// zero, as in the seed (7 days).
const DefaultSessionMaxAge = 7 * 24 * time.Hour

// DefaultInvitationTTL is the invitation lifetime when none is given.
const DefaultInvitationTTL = 7 * 24 * time.Hour

// Options configure a Store.
type Options struct {
	// SessionMaxAge is the lifetime of a new or extended session. Zero means
	// DefaultSessionMaxAge (the seed's default); a negative value is an
	// error.
	SessionMaxAge time.Duration

	// SessionSecret keys the HMAC that signs session tokens. Required, at
	// least 16 bytes.
	SessionSecret []byte

	// BcryptCost is the cost for password and backup-code hashes. Zero means
	// bcrypt.DefaultCost.
	BcryptCost int

	// Now is the application clock. It is used only where the app's time is
	// the right one (TOTP step computation). Expiry never uses it: it is
	// computed with now() in SQL. Nil means time.Now.
	Now func() time.Time

	// TOTPKeys seals TOTP secrets (permanent ones and the enrolment secret
	// held in a session). Nil disables the TOTP methods (ErrNoTOTPKeys).
	TOTPKeys TOTPKeys

	// Limits bound failed password, TOTP and backup-code attempts. The
	// zero value means DefaultLimits.
	Limits Limits

	// Pool configures the pool Open creates; ignored by New. MaxConns and
	// friends go here. Nil means pgxpool defaults.
	Pool func(*pgxpool.Config)

	// CloseOnDispose, for Open, closes the owned pool on Close. Nil means
	// true (the seed's default).
	CloseOnDispose *bool
}

// Errors returned by Store methods. Test them with errors.Is.
var (
	ErrNotFound       = errors.New("authpg: not found")
	ErrInvalidTenant  = errors.New("authpg: tenant id must not be the nil UUID")
	ErrInvalidSession = errors.New("authpg: invalid session token")
	ErrHandleTaken    = errors.New("authpg: handle already taken in this tenant")
	ErrEmailTaken     = errors.New("authpg: email already taken in this tenant")
	ErrInvalidRole    = errors.New("authpg: invalid role")
	ErrInvitationUsed = errors.New("authpg: invitation already accepted")
	ErrConflict       = errors.New("authpg: conflicting row")
	ErrForbidden      = errors.New("authpg: row-level security refused the row (wrong tenant for this connection)")
	ErrInvalidInput   = errors.New("authpg: invalid input")
	ErrClosed         = errors.New("authpg: store closed")
	// ErrTenantMismatch is returned by WithTenant and InTenant when the
	// transaction (or, through multigres, the connection) already belongs
	// to another tenant: a nested call may not switch tenants.
	ErrTenantMismatch = errors.New("authpg: the transaction is already bound to another tenant")
)

// Store is the tenant-scoped storage adapter. It is safe for concurrent use
// when its DB is (a pool is; a single *pgx.Conn or pgx.Tx is not).
type Store struct {
	db         DB
	pool       *pgxpool.Pool // owned, from Open
	closePool  bool
	maxAge     time.Duration
	secret     []byte
	bcryptCost int
	now        func() time.Time
	keys       TOTPKeys
	limits     Limits
	dummy      *lazyHash
	// closed is atomic since Close may race with calls on other
	// goroutines; a pointer so that copies made inside a call share it.
	closed *atomic.Bool

	// noTenantFilter is a test-only hook (see export_test.go): it removes
	// the explicit tenant filter from the user queries so tests can show
	// that RLS alone isolates tenants.
	noTenantFilter bool
}

// New returns a Store over a connection the caller owns. Close does not
// close db. On a pgx.Tx every statement runs in its own savepoint, so an
// error from one call (ErrHandleTaken, say) leaves the transaction usable.
func New(db DB, opts Options) (*Store, error) {
	if db == nil || isNilPtr(db) {
		return nil, errors.New("authpg.New: db is nil")
	}
	s := &Store{db: db, closed: new(atomic.Bool)}
	if tx, ok := db.(pgx.Tx); ok {
		s.db = &spDB{tx: tx}
	}
	if err := s.configure(opts); err != nil {
		return nil, fmt.Errorf("authpg.New: %w", err)
	}
	return s, nil
}

// isNilPtr catches typed nils such as (*pgxpool.Pool)(nil), which are not
// == nil as interfaces but would panic on first use.
func isNilPtr(db DB) bool {
	switch v := db.(type) {
	case *pgxpool.Pool:
		return v == nil
	case *pgx.Conn:
		return v == nil
	case *sqlDB:
		return v == nil || v.db == nil
	}
	return false
}

func (s *Store) configure(opts Options) error {
	switch {
	case opts.SessionMaxAge < 0:
		return fmt.Errorf("%w: negative SessionMaxAge", ErrInvalidInput)
	case opts.SessionMaxAge == 0:
		s.maxAge = DefaultSessionMaxAge
	default:
		s.maxAge = opts.SessionMaxAge
	}
	if len(opts.SessionSecret) < 16 {
		return fmt.Errorf("%w: SessionSecret must be at least 16 bytes", ErrInvalidInput)
	}
	s.secret = append([]byte(nil), opts.SessionSecret...)
	s.bcryptCost = opts.BcryptCost
	if s.bcryptCost == 0 {
		s.bcryptCost = bcrypt.DefaultCost
	}
	if s.bcryptCost < bcrypt.MinCost || s.bcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("%w: BcryptCost %d out of range", ErrInvalidInput, s.bcryptCost)
	}
	s.now = opts.Now
	if s.now == nil {
		s.now = time.Now
	}
	if opts.TOTPKeys != nil {
		if err := checkKeys(opts.TOTPKeys); err != nil {
			return err
		}
		s.keys = opts.TOTPKeys
	}
	lim, err := opts.Limits.withDefaults()
	if err != nil {
		return err
	}
	s.limits = lim
	s.dummy = &lazyHash{cost: s.bcryptCost}
	return nil
}

// Open creates a pool from connString (conventionally DATABASE_URL) and a
// Store that owns it.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	if strings.TrimSpace(connString) == "" {
		return nil, errors.New("authpg.Open: empty connection string")
	}
	s := &Store{closed: new(atomic.Bool)}
	if err := s.configure(opts); err != nil {
		return nil, fmt.Errorf("authpg.Open: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("authpg.Open: parse connection string: %w", err)
	}
	if opts.Pool != nil {
		opts.Pool(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("authpg.Open: %w", err)
	}
	s.db, s.pool = pool, pool
	s.closePool = opts.CloseOnDispose == nil || *opts.CloseOnDispose
	return s, nil
}

// Pool is the pool Open created, or nil for a Store made by New.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the owned pool (unless CloseOnDispose was false). Calling it
// again is harmless. It never closes a DB given to New.
func (s *Store) Close() {
	if s.closed.Swap(true) {
		return
	}
	if s.pool != nil && s.closePool {
		s.pool.Close()
	}
}

// SetTenantSQL is the statement WithTenant runs first in its transaction.
const SetTenantSQL = `SELECT set_config('app.current_tenant_id', $1, true)`

// WithTenant runs fn in a transaction on db whose app.current_tenant_id is
// tenantID (transaction-local), so RLS policies restrict every statement in
// fn to that tenant. fn's error rolls back; nil commits.
//
// When db is already a transaction (or a multigres connection, whose
// tenant is fixed for the session) that is bound to another tenant, it
// returns ErrTenantMismatch before running fn: a set_config inside a
// savepoint survives the savepoint's release, so switching would leave
// the rest of the outer transaction in the inner tenant. Bound to the
// same tenant, nothing is set again. Unbound, the tenant is set for fn
// and cleared again before the savepoint is released.
func WithTenant(ctx context.Context, db DB, tenantID uuid.UUID, fn func(tx pgx.Tx) error) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("authpg.WithTenant: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var prev *string
	if err := tx.QueryRow(ctx, currentTenantSQL).Scan(&prev); err != nil {
		return fmt.Errorf("authpg.WithTenant: read tenant: %w", err)
	}
	if prev != nil {
		if p, err := uuid.Parse(*prev); err != nil || p != tid {
			return fmt.Errorf("authpg.WithTenant: %w (%s, not %s)", ErrTenantMismatch, *prev, tid)
		}
	} else if _, err := tx.Exec(ctx, SetTenantSQL, tid.String()); err != nil {
		return fmt.Errorf("authpg.WithTenant: set tenant: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if prev == nil && isTx(db) {
		// Released savepoints keep their settings: undo ours so the
		// enclosing transaction is unbound again.
		if _, err := tx.Exec(ctx, SetTenantSQL, ""); err != nil {
			return fmt.Errorf("authpg.WithTenant: restore tenant: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("authpg.WithTenant: commit: %w", err)
	}
	return nil
}

// currentTenantSQL reads the tenant the transaction is bound to, NULL when
// none.
const currentTenantSQL = `SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')`

// isTx reports whether Begin on db opens a savepoint rather than a
// transaction.
func isTx(db DB) bool {
	switch db.(type) {
	case *spDB, pgx.Tx:
		return true
	}
	return false
}

// InTenant is WithTenant on the Store's DB: fn receives a Store bound to the
// tenant-scoped transaction, with the same options.
func (s *Store) InTenant(ctx context.Context, tenantID uuid.UUID, fn func(*Store) error) error {
	return WithTenant(ctx, s.db, tenantID, func(tx pgx.Tx) error {
		c := *s
		c.db, c.pool, c.closePool = &spDB{tx: tx}, nil, false
		c.closed = new(atomic.Bool) // the derived Store ends with fn, not with s
		return fn(&c)
	})
}

// normTenant refuses the all-zero UUID before any query: it is what an
// unset uuid.UUID field holds, and accepting it would file rows under a
// tenant nobody owns.
func normTenant(tenantID uuid.UUID) (uuid.UUID, error) {
	if tenantID == uuid.Nil {
		return uuid.Nil, fmt.Errorf("%w: %s", ErrInvalidTenant, tenantID)
	}
	return tenantID, nil
}

// normID refuses the all-zero UUID as a row id: no row has it (ids come
// from gen_random_uuid), and it is what an unset field holds. The error is
// both ErrNotFound (so lookups read as "no such row") and ErrInvalidInput
// (so no method reports success on it).
func normID(id uuid.UUID) (uuid.UUID, error) {
	if id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("%w: %w: nil id", ErrInvalidInput, ErrNotFound)
	}
	return id, nil
}

// tx runs fn in a transaction (a savepoint when the Store is already on one).
func (s *Store) tx(ctx context.Context, fn func(q DB) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// q returns the DB for a single statement.
// scope is the preamble of the tenant-scoped methods: it validates
// tenantID before any query, then returns the connection to use.
func (s *Store) scope(tenantID uuid.UUID) (uuid.UUID, DB, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return uuid.Nil, nil, err
	}
	db, err := s.q()
	return tid, db, err
}

// readScope is scope for a single read-only statement (see r).
func (s *Store) readScope(tenantID uuid.UUID) (uuid.UUID, DB, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return uuid.Nil, nil, err
	}
	db, err := s.r()
	return tid, db, err
}

// r returns the DB for a single read-only statement. On a transaction it
// skips the per-statement savepoint (two round trips): a SELECT with
// validated parameters fails only when the connection or the transaction
// is already lost (I/O, cancellation, a timeout), and then no savepoint
// would keep the transaction usable anyway.
func (s *Store) r() (DB, error) {
	db, err := s.q()
	if sp, ok := db.(*spDB); ok {
		return sp.tx, nil
	}
	return db, err
}

func (s *Store) q() (DB, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.db, nil
}

// mapErr turns driver errors into the package's typed errors, wrapped with
// the operation name.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			switch {
			case strings.Contains(pe.ConstraintName, "handle"):
				return fmt.Errorf("%s: %w", op, ErrHandleTaken)
			case strings.Contains(pe.ConstraintName, "email"):
				return fmt.Errorf("%s: %w", op, ErrEmailTaken)
			}
			return fmt.Errorf("%s: %w (%s)", op, ErrConflict, pe.ConstraintName)
		case "23514":
			if strings.Contains(pe.ConstraintName, "role") {
				return fmt.Errorf("%s: %w", op, ErrInvalidRole)
			}
			return fmt.Errorf("%s: %w: %s", op, ErrInvalidInput, pe.ConstraintName)
		case "23503":
			// A foreign key that includes tenant_id fails both for a
			// missing row and for another tenant's row: either way the
			// referenced row does not exist for this tenant.
			return fmt.Errorf("%s: referenced row: %w", op, ErrNotFound)
		case "42501":
			if strings.Contains(pe.Message, "row-level security") {
				return fmt.Errorf("%s: %w", op, ErrForbidden)
			}
		case "22P02":
			return fmt.Errorf("%s: %w: malformed value", op, ErrInvalidInput)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (s *Store) hash(secret string) (string, error) {
	if len(secret) > 72 {
		// bcrypt reads at most 72 bytes; x/crypto refuses longer input
		// with an untyped error.
		return "", fmt.Errorf("%w: password longer than 72 bytes", ErrInvalidInput)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(secret), s.bcryptCost)
	if err != nil {
		return "", fmt.Errorf("bcrypt: %w", err)
	}
	return string(h), nil
}

// HashPassword hashes a password with bcrypt at the Store's cost.
func (s *Store) HashPassword(password string) (string, error) { return s.hash(password) }

// CheckPassword reports whether password matches a bcrypt hash.
func CheckPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// lazyHash is a bcrypt hash of random bytes at the Store's cost, made on
// first use: Authenticate compares against it when there is no user (or no
// password), so unknown and known handles take the same time.
type lazyHash struct {
	once sync.Once
	cost int
	h    []byte
}

func (l *lazyHash) get() []byte {
	l.once.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(uuid.NewString()), l.cost)
		if err != nil {
			// Only an invalid cost fails, and configure checked it.
			panic(fmt.Sprintf("authpg: dummy hash: %v", err))
		}
		l.h = h
	})
	return l.h
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
