package frontend

import (
	"context"
	"errors"
	"fmt"
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
// entry). auth_query runs on the client's cluster, in auth_dbname or else
// the client's database, so each cluster has its own lookup.
type secretStore struct {
	mu        sync.Mutex // guards verifiers
	verifiers map[string]auth.Secret
	clusters  map[string]*upstream // restart-only
	rw        sync.RWMutex
	userlist  map[string]auth.Secret
	queries   map[string]*backend.AuthQuery // by cluster name; nil without auth_query
	serverPW  map[string]string
	pgpass    *pgpassfile.Passfile
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

func newSecretStore(cfg *config.Config, clusters map[string]*upstream) (*secretStore, error) {
	st := &secretStore{clusters: clusters}
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
	var queries map[string]*backend.AuthQuery
	if cfg.AuthQuery != "" && cfg.AuthUser != "" && cfg.AuthType != "trust" {
		queries = map[string]*backend.AuthQuery{}
		for name, up := range st.clusters {
			q, err := backend.NewAuthQuery(up.addr, cfg.AuthUser, cfg.AuthPassword, cfg.AuthQuery,
				cfg.AuthDatabase, up.tlsMode)
			if err != nil {
				return err
			}
			q.TLSConfig = up.tls
			queries[name] = q
		}
	}
	st.rw.Lock()
	old := st.queries
	st.userlist, st.pgpass, st.serverPW, st.queries = userlist, pass, cfg.ServerPassword, queries
	st.rw.Unlock()
	st.mu.Lock()
	st.verifiers = map[string]auth.Secret{}
	st.mu.Unlock()
	for _, q := range old {
		q.Close()
	}
	return nil
}

func (st *secretStore) reload(cfg *config.Config) error { return st.load(cfg) }

func (st *secretStore) close() {
	st.rw.Lock()
	defer st.rw.Unlock()
	for _, q := range st.queries {
		q.Close()
	}
	st.queries = nil
}

// lookup finds the secret for role on cluster. found=false means no such
// role may log in; the caller must not reveal that to the client.
func (st *secretStore) lookup(ctx context.Context, cluster *upstream, database, role string) (auth.Secret, bool, error) {
	st.rw.RLock()
	userlist, query := st.userlist, st.queries[cluster.name]
	st.rw.RUnlock()
	if sec, ok := userlist[role]; ok {
		return sec, true, nil
	}
	if query == nil {
		return auth.Secret{}, false, nil
	}
	return query.Lookup(ctx, database, role)
}

// serverPassword is the plaintext password for logging role in to
// cluster, or "" when multigres has none.
func (st *secretStore) serverPassword(cluster *upstream, database, role string) string {
	st.rw.RLock()
	defer st.rw.RUnlock()
	if pw := st.serverPW[role]; pw != "" {
		return pw
	}
	if st.pgpass != nil {
		if pw := st.pgpass.FindPassword(cluster.host, cluster.port, database, role); pw != "" {
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

// signingKey is the context signing key of database on cluster, read as
// auth_user.
func (st *secretStore) signingKey(ctx context.Context, cluster *upstream, database string) ([]byte, error) {
	st.rw.RLock()
	query := st.queries[cluster.name]
	st.rw.RUnlock()
	if query == nil {
		return nil, errors.New("context_signing needs auth_user and auth_password to read the signing key")
	}
	return query.SigningKey(ctx, database)
}
