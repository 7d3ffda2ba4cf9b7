package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/jackc/pgpassfile"

	"github.com/multigres-proxy/multigres/internal/auth"
	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/config"
)

// secretStore answers two questions: what secret verifies a client's
// password for a role (auth_file, then auth_query, as PgBouncer does), and
// what password, if any, logs that role in upstream when SCRAM passthrough
// is not possible (server_password, server_pgpass, a plaintext auth_file
// entry).
type secretStore struct {
	mu        sync.Mutex // guards verifiers
	verifiers map[string]auth.Secret
	rw        sync.RWMutex
	userlist  map[string]auth.Secret
	query     *backend.AuthQuery
	serverPW  map[string]string
	pgpass    *pgpassfile.Passfile
	host      string
	port      string
	// admins are the secrets admin_users last authenticated with through
	// auth_query, for console logins while the database is unreachable
	// (bounded by the admin_users list).
	adminMu sync.Mutex
	admins  map[string]auth.Secret
}

// rememberAdmin keeps an admin user's secret from a successful lookup.
func (st *secretStore) rememberAdmin(role string, sec auth.Secret) {
	st.adminMu.Lock()
	defer st.adminMu.Unlock()
	if st.admins == nil {
		st.admins = map[string]auth.Secret{}
	}
	st.admins[role] = sec
}

// cachedAdmin is the secret an admin user last authenticated with.
func (st *secretStore) cachedAdmin(role string) (auth.Secret, bool) {
	st.adminMu.Lock()
	defer st.adminMu.Unlock()
	sec, ok := st.admins[role]
	return sec, ok
}

func newSecretStore(cfg *config.Config) (*secretStore, error) {
	st := &secretStore{}
	if err := st.load(cfg); err != nil {
		return nil, err
	}
	return st, nil
}

func (st *secretStore) load(cfg *config.Config) error {
	var userlist map[string]auth.Secret
	if cfg.AuthFile != "" {
		f, err := os.Open(cfg.AuthFile)
		if err != nil {
			return fmt.Errorf("auth_file: %w", err)
		}
		userlist, err = auth.ParseUserlist(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("auth_file %s: %w", cfg.AuthFile, err)
		}
	}
	var pass *pgpassfile.Passfile
	if cfg.ServerPgpass != "" {
		p, err := pgpassfile.ReadPassfile(cfg.ServerPgpass)
		if err != nil {
			return fmt.Errorf("server_pgpass: %w", err)
		}
		pass = p
	}
	var query *backend.AuthQuery
	if cfg.AuthQuery != "" && cfg.AuthUser != "" && cfg.AuthType != "trust" {
		q, err := backend.NewAuthQuery(cfg.UpstreamAddr(), cfg.AuthUser, cfg.AuthPassword, cfg.AuthQuery,
			cfg.AuthDatabase, cfg.ServerTLSMode)
		if err != nil {
			return err
		}
		if q.TLSConfig, err = serverTLSConfig(cfg); err != nil {
			return err
		}
		query = q
	}
	host, port, _ := net.SplitHostPort(cfg.UpstreamAddr())
	st.rw.Lock()
	old := st.query
	st.userlist, st.pgpass, st.serverPW, st.query, st.host, st.port = userlist, pass, cfg.ServerPassword, query, host, port
	st.rw.Unlock()
	st.mu.Lock()
	st.verifiers = map[string]auth.Secret{}
	st.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (st *secretStore) reload(cfg *config.Config) error { return st.load(cfg) }

func (st *secretStore) close() {
	st.rw.Lock()
	defer st.rw.Unlock()
	if st.query != nil {
		st.query.Close()
		st.query = nil
	}
}

// lookup finds the secret for role. found=false means no such role may log
// in; the caller must not reveal that to the client.
func (st *secretStore) lookup(ctx context.Context, database, role string) (auth.Secret, bool, error) {
	st.rw.RLock()
	userlist, query := st.userlist, st.query
	st.rw.RUnlock()
	if sec, ok := userlist[role]; ok {
		return sec, true, nil
	}
	if query == nil {
		return auth.Secret{}, false, nil
	}
	return query.Lookup(ctx, database, role)
}

// serverPassword is the plaintext password for logging role in upstream,
// or "" when multigres has none.
func (st *secretStore) serverPassword(database, role string) string {
	st.rw.RLock()
	defer st.rw.RUnlock()
	if pw := st.serverPW[role]; pw != "" {
		return pw
	}
	if st.pgpass != nil {
		if pw := st.pgpass.FindPassword(st.host, st.port, database, role); pw != "" {
			return pw
		}
	}
	if sec, ok := st.userlist[role]; ok && sec.Kind == auth.SecretPlain {
		return sec.Plain
	}
	return ""
}

// verifierFor returns a SCRAM verifier for a plaintext secret, made once
// per role and configuration load with a random salt.
func (st *secretStore) verifierFor(role string, plain auth.Secret) auth.Secret {
	st.mu.Lock()
	defer st.mu.Unlock()
	if v, ok := st.verifiers[role]; ok {
		return v
	}
	v, err := auth.NewSCRAMSecret(plain.Plain, nil, 0)
	if err != nil {
		return plain
	}
	st.verifiers[role] = v
	return v
}

// signingKey is the context signing key of database, read as auth_user.
func (st *secretStore) signingKey(ctx context.Context, database string) ([]byte, error) {
	st.rw.RLock()
	query := st.query
	st.rw.RUnlock()
	if query == nil {
		return nil, errors.New("context_signing needs auth_user and auth_password to read the signing key")
	}
	return query.SigningKey(ctx, database)
}
