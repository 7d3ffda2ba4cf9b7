package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// resolverSet runs the context resolvers ([resolver NAME] sections): after
// authentication, each query runs in order, as resolver_user in the
// client's database, with context values as bound parameters; its one row
// sets further variables, applied with the context in the same round trip.
// Results are cached per (resolver, database, parameter values) for the
// resolver's cache_ttl. Resolvers are restart-only, so the set is built once
// per Server.
type resolverSet struct {
	rs    []config.ResolverConfig
	qs    map[string]*backend.AuthQuery // by cluster: pools as resolver_user, one per database
	now   func() time.Time
	mu    sync.Mutex
	cache map[string]resolvedRow
}

// resolvedRow is one cached result.
type resolvedRow struct {
	values  []string
	expires time.Time
}

// maxResolverCache bounds the cache: the keys include client-supplied
// values, so an unbounded map would grow with every distinct login.
const maxResolverCache = 10000

// newResolverSet returns nil when no resolvers are configured.
// The resolvers of a tenant run on its cluster, in its database.
func newResolverSet(cfg *config.Config, clusters map[string]*upstream) (*resolverSet, error) {
	if len(cfg.Resolvers) == 0 {
		return nil, nil
	}
	user, password := cfg.ResolverRole()
	qs := map[string]*backend.AuthQuery{}
	for name, up := range clusters {
		q, err := backend.NewAuthQuery(up.addr, user, password, "", "", up.tlsMode)
		if err != nil {
			return nil, fmt.Errorf("resolvers: %w", err)
		}
		q.TLSConfig = up.tls
		q.AppName = "multigres resolver"
		qs[name] = q
	}
	return &resolverSet{rs: cfg.Resolvers, qs: qs, now: time.Now, cache: map[string]resolvedRow{}}, nil
}

func (r *resolverSet) close() {
	if r != nil {
		for _, q := range r.qs {
			q.Close()
		}
	}
}

// resolve runs the resolvers for a login whose context variables vars have
// values values, and returns the variables they set with their values. The
// error is a *wire.Error for the client: 28000 when a required resolver
// finds no row, 08006 when a resolver fails.
func (r *resolverSet) resolve(ctx context.Context, log *slog.Logger, cluster *upstream, database string, vars, values []string) (names, out []string, err error) {
	known := make(map[string]string, len(vars))
	for i, v := range vars {
		known[v] = values[i]
	}
	for i := range r.rs {
		res := &r.rs[i]
		args := make([][]byte, len(res.Params))
		var key strings.Builder
		fmt.Fprintf(&key, "%d\x00%s\x00%s", i, cluster.name, database)
		for j, p := range res.Params {
			// A variable an optional resolver left unset is NULL.
			if v, ok := known[p]; ok {
				args[j] = []byte(v)
				key.WriteString("\x00v" + v)
			} else {
				key.WriteString("\x00n")
			}
		}
		row, found, err := r.lookup(ctx, res, r.qs[cluster.name], database, key.String(), args)
		if err != nil {
			// Never log parameter values: they are the client's context.
			log.Warn("context resolver failed; closing", "resolver", res.Name, "err", err)
			// A server error may name the operator's tables, so the client
			// gets it only in the log; a result-shape error is safe to show.
			msg := "see the multigres log"
			var shape resultShapeError
			if errors.As(err, &shape) {
				msg = string(shape)
			}
			return nil, nil, wire.Fatal(wire.CodeConnectionFailure, "context resolver %q failed: %s", res.Name, msg).
				WithHint("Check the resolver's query and the grants of resolver_user (or auth_user).")
		}
		if !found {
			if res.Required {
				return nil, nil, wire.Fatal(wire.CodeInvalidAuthorization, "context resolver %q found no row for this login", res.Name).
					WithHint("The resolver is required: a login it cannot resolve is refused.")
			}
			// Set its variables to '' (read as NULL by multigres_context),
			// so nothing the client sent at startup can stand in for them.
			for _, name := range res.Sets {
				names = append(names, name)
				out = append(out, "")
			}
			continue
		}
		for j, name := range res.Sets {
			known[name] = row[j]
			names = append(names, name)
			out = append(out, row[j])
		}
	}
	return names, out, nil
}

// lookup answers from the cache or runs the query. Only rows found are
// cached: a login refused for a missing row succeeds as soon as the row
// exists.
func (r *resolverSet) lookup(ctx context.Context, res *config.ResolverConfig, q *backend.AuthQuery, database, key string, args [][]byte) ([]string, bool, error) {
	if res.CacheTTL > 0 {
		r.mu.Lock()
		e, ok := r.cache[key]
		r.mu.Unlock()
		if ok && r.now().Before(e.expires) {
			return e.values, true, nil
		}
	}
	row, found, err := r.query(ctx, res, q, database, args)
	if err != nil || !found || res.CacheTTL <= 0 {
		return row, found, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if len(r.cache) >= maxResolverCache {
		for k, e := range r.cache {
			if !now.Before(e.expires) {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= maxResolverCache {
			clear(r.cache)
		}
	}
	r.cache[key] = resolvedRow{values: row, expires: now.Add(res.CacheTTL)}
	return row, true, nil
}

// query runs the resolver with bound text parameters and text results, so
// that every column type arrives as the text set_config takes. A NULL
// column sets the variable to the empty string.
func (r *resolverSet) query(ctx context.Context, res *config.ResolverConfig, q *backend.AuthQuery, database string, args [][]byte) ([]string, bool, error) {
	pool, err := q.Pool(ctx, database)
	if err != nil {
		return nil, false, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("resolver pool: %w", err)
	}
	defer conn.Release()
	result := conn.Conn().PgConn().ExecParams(ctx, res.Query, args, nil, nil, nil).Read()
	if result.Err != nil {
		return nil, false, result.Err
	}
	switch len(result.Rows) {
	case 0:
		return nil, false, nil
	case 1:
	default:
		return nil, false, resultShapeError("query returned more than one row")
	}
	// Checked on the row: pgconn leaves FieldDescriptions empty without one.
	if n := len(result.Rows[0]); n != len(res.Sets) {
		return nil, false, resultShapeError(fmt.Sprintf("query returns %d columns, but sets names %d variables", n, len(res.Sets)))
	}
	row := make([]string, len(res.Sets))
	for i, v := range result.Rows[0] {
		row[i] = string(v)
	}
	return row, true, nil
}

// resultShapeError is a result that does not fit the resolver; its text is
// safe to show the client.
type resultShapeError string

func (e resultShapeError) Error() string { return string(e) }
