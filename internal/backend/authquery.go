package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/internal/auth"
)

// AuthQuery looks up stored secrets by running auth_query as auth_user, as
// PgBouncer does. It keeps one small pool per database, since the query
// must run in the database the client connects to (unless AuthDatabase is
// set).
type AuthQuery struct {
	Host, Port   string
	User         string
	Password     string
	Query        string
	AuthDatabase string
	TLSMode      string
	// TLSConfig, for verify-full, carries server_tls_ca and the host name.
	TLSConfig *tls.Config
	// AppName is the pools' application_name; empty means
	// "multigres auth_query".
	AppName string
	// MaxConns bounds each pool's connections; 0 means 2.
	MaxConns int

	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
	order []string // pool databases, least recently used first
	keys  map[string][]byte
}

// NewAuthQuery builds a lookup against the upstream at addr.
func NewAuthQuery(addr, user, password, query, authDB, tlsMode string) (*AuthQuery, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("auth query: %w", err)
	}
	return &AuthQuery{Host: host, Port: port, User: user, Password: password, Query: query,
		AuthDatabase: authDB, TLSMode: tlsMode, pools: map[string]*pgxpool.Pool{}, keys: map[string][]byte{}}, nil
}

// Lookup returns the secret of role, or found=false when the role does not
// exist or may not log in.
func (a *AuthQuery) Lookup(ctx context.Context, database, role string) (auth.Secret, bool, error) {
	pool, err := a.pool(ctx, database)
	if err != nil {
		return auth.Secret{}, false, err
	}
	var name, passwd *string
	err = pool.QueryRow(ctx, a.Query, role).Scan(&name, &passwd)
	if err != nil && retryable(err) && ctx.Err() == nil {
		// A pooled connection the server ended (a restart): the pool has
		// dropped it, and the next one is fresh.
		err = pool.QueryRow(ctx, a.Query, role).Scan(&name, &passwd)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Secret{}, false, nil
	}
	if err != nil {
		return auth.Secret{}, false, fmt.Errorf("auth_query as %s: %w", a.User, err)
	}
	if passwd == nil || *passwd == "" {
		return auth.Secret{}, false, nil
	}
	sec, err := auth.ParseSecret(*passwd)
	if err != nil {
		return auth.Secret{}, false, fmt.Errorf("auth_query returned an unusable secret for the role: %w", err)
	}
	return sec, true, nil
}

// SigningKey returns database's context signing key (nil when signing is
// not enabled there), read as auth_user through
// multigres.context_signing_key(). Keys are cached: init never changes an
// existing key.
func (a *AuthQuery) SigningKey(ctx context.Context, database string) ([]byte, error) {
	a.mu.Lock()
	key, ok := a.keys[database]
	a.mu.Unlock()
	if ok {
		return key, nil
	}
	pool, err := a.poolFor(ctx, database)
	if err != nil {
		return nil, err
	}
	if err := pool.QueryRow(ctx, "SELECT multigres.context_signing_key()").Scan(&key); err != nil {
		return nil, fmt.Errorf("read context signing key as %s: %w", a.User, err)
	}
	if key != nil {
		a.mu.Lock()
		a.keys[database] = key
		a.mu.Unlock()
	}
	return key, nil
}

// Pool returns the pool of connections as User to database itself
// (AuthDatabase does not apply), for other queries that run as that role:
// the context resolvers.
func (a *AuthQuery) Pool(ctx context.Context, database string) (*pgxpool.Pool, error) {
	return a.poolFor(ctx, database)
}

func (a *AuthQuery) pool(ctx context.Context, database string) (*pgxpool.Pool, error) {
	if a.AuthDatabase != "" {
		database = a.AuthDatabase
	}
	return a.poolFor(ctx, database)
}

func (a *AuthQuery) poolFor(ctx context.Context, database string) (*pgxpool.Pool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pools[database]; ok {
		a.touch(database)
		return p, nil
	}
	// The database name comes from the client before any password is
	// checked, so the number of pools is capped: the least recently used
	// one is closed to make room.
	if len(a.pools) >= maxAuthPools {
		oldest := a.order[0]
		a.order = a.order[1:]
		a.pools[oldest].Close()
		delete(a.pools, oldest)
		delete(a.keys, oldest)
	}
	port, _ := strconv.Atoi(a.Port)
	maxConns := a.MaxConns
	if maxConns < 1 {
		maxConns = 2
	}
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("sslmode=%s pool_max_conns=%d pool_max_conn_idle_time=60s",
		libpqSSLMode(a.TLSMode), maxConns))
	if err != nil {
		return nil, fmt.Errorf("auth query pool: %w", err)
	}
	cc := cfg.ConnConfig
	cc.Host, cc.Port, cc.User, cc.Password, cc.Database = a.Host, uint16(port), a.User, a.Password, database
	if a.TLSMode == "verify-full" && a.TLSConfig != nil {
		cc.TLSConfig = a.TLSConfig.Clone()
	}
	cc.RuntimeParams["application_name"] = "multigres auth_query"
	if a.AppName != "" {
		cc.RuntimeParams["application_name"] = a.AppName
	}
	// The auth query is one statement; the simple protocol keeps it working
	// through anything and avoids a prepare per pool connection.
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("auth query pool: %w", err)
	}
	a.pools[database] = p
	a.order = append(a.order, database)
	return p, nil
}

// maxAuthPools bounds the per-database auth_query pools.
const maxAuthPools = 64

// touch moves database to the most recently used end; callers lock.
func (a *AuthQuery) touch(database string) {
	for i, d := range a.order {
		if d == database {
			a.order = append(append(a.order[:i:i], a.order[i+1:]...), database)
			return
		}
	}
}

// Close closes the pools.
func (a *AuthQuery) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, p := range a.pools {
		p.Close()
		delete(a.pools, k)
	}
	a.order = nil
}

func libpqSSLMode(mode string) string {
	switch mode {
	case "", "disable":
		return "disable"
	case "verify-full":
		return "verify-full"
	default:
		return mode
	}
}

// retryable reports whether a lookup failed on its connection rather than
// in its query: no error from the server, or the server's own "terminating
// connection" (57P01, 57P02) or a lost connection (class 08).
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return !errors.Is(err, pgx.ErrNoRows)
	}
	return pe.Code == "57P01" || pe.Code == "57P02" || strings.HasPrefix(pe.Code, "08")
}
