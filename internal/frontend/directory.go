package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/route"
)

// The tenant directory: tenant_directory_query, run as auth_user in
// tenant_directory_dbname on tenant_directory_cluster, names a tenant's
// cluster. Answers (a row, or no row) are cached for tenant_directory_ttl
// in a bounded route.DirCache. Three things make them be asked again:
// their TTL, REFRESH TENANT on the console, and a notification on
// tenant_directory_channel. Forgetting bumps the router's epoch, so that
// transaction-mode clients re-place themselves at their next transaction;
// an answer that expires re-places the clients it placed (connRoute's
// expires) the same way.
//
// A login is placed before its password is checked (auth_query runs on
// the tenant's cluster), so the labels come from anyone: the cache is
// bounded, one lookup runs per label at a time (others wait for it), and
// the pool that runs them has dirPoolConns connections, so a flood of
// invented tenants costs the directory database at most that many
// queries at once. When the directory cannot be read, a tenant without a
// cached answer is refused (08006): multigres does not guess a cluster.

// dirPoolConns bounds the connections, hence the lookups at once, to the
// directory database.
const dirPoolConns = 4

// tenantDirectory is the server's tenant directory; nil when
// tenant_directory_query is empty.
type tenantDirectory struct {
	base     context.Context // the server's: lookups end at shutdown
	query    string
	clusters map[string]*upstream // to check answers; restart-only
	router   *route.Router
	log      *slog.Logger
	now      func() time.Time
	lookups  *backend.AuthQuery // its Pool(ctx, dbname) runs the query
	dbname   string

	mu    sync.Mutex // guards the fields below
	cache *route.DirCache
	// inflight are the lookups callers may join. Forgetting a tenant
	// detaches its lookup: a query that began before the forget may have
	// read the row the forget announces a change of, so its answer goes
	// only to those who were already waiting, and is not kept.
	inflight map[string]*dirCall

	listenDone chan struct{} // closed when the listener has stopped; nil without a channel
	// onForget runs on the listener's goroutine after it forgot label (""
	// for all): the server follows the change (dirFollower); nil for
	// nothing.
	onForget func(ctx context.Context, label string)
	// observe counts each query by result (DirLookup*); nil for nothing.
	observe func(result string)
}

// Results passed to Hooks.DirectoryLookup, one per directory query.
const (
	DirLookupRow   = "row"    // a row named a configured cluster
	DirLookupNoRow = "no_row" // no row, or a NULL cluster: the static routes decide
	DirLookupError = "error"  // the query failed, timed out, or named an unknown cluster
)

// dirCall is one lookup in flight; others asking for the same label wait
// for done and share its result.
type dirCall struct {
	done   chan struct{}
	answer route.DirAnswer
	err    error
	// protect: an authenticated client asked, so the label is a real
	// tenant's and its answer is stored protected (route.DirCache).
	// Guarded by the directory's mu.
	protect bool
}

// newTenantDirectory builds the directory of cfg (nil when off).
func newTenantDirectory(base context.Context, cfg *config.Config, clusters map[string]*upstream, router *route.Router, log *slog.Logger) (*tenantDirectory, error) {
	if cfg.TenantDirectoryQuery == "" {
		return nil, nil
	}
	up := clusters[strings.ToLower(cfg.TenantDirectoryCluster)]
	if up == nil {
		return nil, fmt.Errorf("tenant_directory_cluster: cluster %q is not defined", cfg.TenantDirectoryCluster)
	}
	q, err := backend.NewAuthQuery(up.addr, cfg.AuthUser, cfg.AuthPassword, "", "", up.tlsMode)
	if err != nil {
		return nil, fmt.Errorf("tenant directory: %w", err)
	}
	q.TLSConfig = up.tls
	q.AppName = "multigres tenant directory"
	q.MaxConns = dirPoolConns
	return &tenantDirectory{base: base, query: cfg.TenantDirectoryQuery, clusters: clusters, router: router, log: log,
		now: time.Now, lookups: q, dbname: cfg.TenantDirectoryDatabase,
		cache: route.NewDirCache(cfg.TenantDirectoryTTL, cfg.TenantDirectoryCacheSize), inflight: map[string]*dirCall{}}, nil
}

// errDirectory marks a failed lookup: the tenant cannot be placed now.
var errDirectory = errors.New("tenant directory")

// lookup returns the directory's answer for label: cached, or asked (once
// for all who ask at the same time). The error wraps errDirectory.
// Logins not yet authenticated (preAuth) are refused past dirMaxInflight;
// connected clients re-placing themselves (after REFRESH TENANTS, say,
// all at once) and console commands are not: they are bounded by
// max_client_conn and the console, and refusing them would end clients
// for want of a slot rather than of an answer.
func (d *tenantDirectory) lookup(ctx context.Context, label string, preAuth bool) (route.DirAnswer, error) {
	d.mu.Lock()
	if a, ok := d.cache.Get(label, d.now()); ok {
		d.mu.Unlock()
		return a, nil
	}
	call, waiting := d.inflight[label]
	if !waiting && preAuth && len(d.inflight) >= dirMaxInflight {
		d.mu.Unlock()
		return route.DirAnswer{}, fmt.Errorf("%w: %d lookups of other tenants in flight; tenant %q not asked", errDirectory, dirMaxInflight, label)
	}
	if !waiting {
		call = &dirCall{done: make(chan struct{})}
		d.inflight[label] = call
		go d.ask(label, call)
	}
	call.protect = call.protect || !preAuth
	d.mu.Unlock()
	select {
	case <-call.done:
		return call.answer, call.err
	case <-ctx.Done():
		return route.DirAnswer{}, fmt.Errorf("%w: lookup of tenant %q: %w", errDirectory, label, ctx.Err())
	}
}

// dirMaxInflight bounds the tenants being looked up at once for logins
// that have not authenticated. Past it such a login of a tenant without a
// cached answer is refused at once rather than queued behind a flood of
// invented tenants (each lookup may take dirQueryTimeout when the
// directory is slow).
const dirMaxInflight = 256

// dirQueryTimeout bounds one directory query, whoever waits for it: a
// caller that gives up does not cancel the others' answer.
const dirQueryTimeout = 10 * time.Second

// ask runs the query for label, stores the answer (unless the label was
// forgotten meanwhile) and wakes the callers.
func (d *tenantDirectory) ask(label string, call *dirCall) {
	ctx, cancel := context.WithTimeout(d.base, dirQueryTimeout)
	defer cancel()
	cluster, err := d.query1(ctx, label)
	if d.observe != nil {
		switch {
		case err != nil:
			d.observe(DirLookupError)
		case cluster == "":
			d.observe(DirLookupNoRow)
		default:
			d.observe(DirLookupRow)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	attached := d.inflight[label] == call
	if attached {
		delete(d.inflight, label)
	}
	switch {
	case err != nil:
		call.err = err
	case attached:
		call.answer = d.cache.Put(label, cluster, d.now(), call.protect)
	default:
		// Forgotten while asked: used once, by the callers that waited,
		// whose clients ask again at their next transaction.
		call.answer = route.DirAnswer{Cluster: cluster, Expires: d.now()}
	}
	close(call.done)
}

// query1 runs tenant_directory_query for label and checks its answer: a
// configured cluster, or "" for no row (or a NULL).
func (d *tenantDirectory) query1(ctx context.Context, label string) (string, error) {
	if err := ctx.Err(); err != nil {
		// Shut down: close may have run, and a pool made now would stay.
		return "", fmt.Errorf("%w: %w", errDirectory, err)
	}
	pool, err := d.lookups.Pool(ctx, d.dbname)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errDirectory, err)
	}
	rows, err := pool.Query(ctx, d.query, label)
	if err != nil {
		return "", fmt.Errorf("%w: tenant_directory_query for tenant %q: %w", errDirectory, label, err)
	}
	names, err := firstColumn(rows, 2)
	if err != nil {
		return "", fmt.Errorf("%w: tenant_directory_query for tenant %q: %w", errDirectory, label, err)
	}
	switch {
	case len(names) == 0 || names[0] == nil:
		return "", nil
	case len(names) > 1:
		// Which row wins would depend on the plan: not a guess to make.
		return "", fmt.Errorf("%w: tenant_directory_query returned several rows for tenant %q; it must return at most one", errDirectory, label)
	}
	name := strings.ToLower(strings.TrimSpace(*names[0]))
	if d.clusters[name] == nil {
		return "", fmt.Errorf("%w: tenant_directory_query places tenant %q on cluster %q, which is not configured", errDirectory, label, *names[0])
	}
	return name, nil
}

// firstColumn reads the first column of at most max rows as text (nil for
// NULL) and closes rows.
func firstColumn(rows pgx.Rows, max int) ([]*string, error) {
	defer rows.Close()
	var out []*string
	for len(out) < max && rows.Next() {
		var v *string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	rows.Close()
	return out, rows.Err()
}

// forget drops label's answer ("" drops all) and makes clients placed
// before re-place themselves; it returns how many answers were dropped.
func (d *tenantDirectory) forget(label string) int {
	d.mu.Lock()
	n := 0
	if label == "" {
		n = d.cache.ForgetAll()
		clear(d.inflight)
	} else {
		if d.cache.Forget(label) {
			n = 1
		}
		delete(d.inflight, label)
	}
	d.mu.Unlock()
	d.router.Bump()
	return n
}

// confirm protects label's cached answer: a login of that tenant has
// authenticated (see route.DirCache).
func (d *tenantDirectory) confirm(label string) {
	d.mu.Lock()
	d.cache.Confirm(label)
	d.mu.Unlock()
}

// cached is label's cached answer, without asking (zero when none).
func (d *tenantDirectory) cached(label string) route.DirAnswer {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, _ := d.cache.Get(label, d.now())
	return a
}

// found lists the cached answers that place a tenant (SHOW ROUTES).
func (d *tenantDirectory) found() []route.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cache.Found(d.now())
}

// listen follows channel until ctx ends: a notification's payload is the
// label to forget, empty for all. Every (re)connection forgets all, since
// notifications sent while it was down are lost. Retries back off from
// one second to thirty.
func (d *tenantDirectory) listen(ctx context.Context, channel string) {
	d.listenDone = make(chan struct{})
	go func() {
		defer close(d.listenDone)
		backoff := time.Second
		for ctx.Err() == nil {
			err := d.listenOnce(ctx, channel)
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("tenant directory: LISTEN connection lost; answers expire by tenant_directory_ttl meanwhile",
				"channel", channel, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
}

// listenOnce is one LISTEN connection's life.
func (d *tenantDirectory) listenOnce(ctx context.Context, channel string) error {
	pool, err := d.lookups.Pool(ctx, d.dbname)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection LISTENs for the rest of its life: it never goes back.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN: %w", err)
	}
	d.forgetAndFollow(ctx, "")
	d.log.Info("tenant directory: listening for changes", "channel", channel)
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		d.forgetAndFollow(ctx, n.Payload)
	}
}

// forgetAndFollow forgets label ("" for all) and lets the server follow.
func (d *tenantDirectory) forgetAndFollow(ctx context.Context, label string) {
	d.forget(label)
	if d.onForget != nil {
		d.onForget(ctx, label)
	}
}

// close stops the listener and closes the directory's connections.
func (d *tenantDirectory) close() {
	if d == nil {
		return
	}
	if d.listenDone != nil {
		<-d.listenDone
	}
	d.lookups.Close()
}
