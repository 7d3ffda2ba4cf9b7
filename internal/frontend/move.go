package frontend

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/route"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// MOVE TENANT on the admin console: moving one tenant to another cluster
// without failing its clients' transactions.
//
//  1. PAUSE: the tenant's new logins and its clients' next transactions
//     wait (pauseState, the same gate as PAUSE), and the command returns
//     once no client of the tenant is logging in or inside a transaction,
//     or fails after tenant_move_timeout listing those still running (the
//     pause stays; run the step again or RESUME TENANT).
//  2. The operator copies the tenant's rows to the new cluster: nothing of
//     the tenant's can change on the old one meanwhile.
//  3. SWITCH: the route override is written (route_state_file) and set,
//     which bumps the router's epoch; then the tenant's session-mode
//     connections still on another cluster are ended (57P01: they must
//     reconnect), and the pause is lifted. Waiting transaction-mode
//     clients go on, and each resolves its route again before it takes a
//     server connection (txRoute.pool), so every transaction after the
//     switch runs on the new cluster.

// moveState is the tenants being moved. The zero value is ready to use.
type moveState struct {
	mu    sync.Mutex
	moves map[string]*tenantMove
}

// tenantMove is one move between its pause and its switch.
type tenantMove struct {
	from, to string
	since    time.Time
}

// target is the cluster tenant is being moved to, if it is.
func (m *moveState) target(tenant string) (string, bool) {
	if tenant == "" {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if mv, ok := m.moves[tenant]; ok {
		return mv.to, true
	}
	return "", false
}

// MoveTenant runs one step of moving tenant to cluster (see
// admin.MoveStep).
func (s *Server) MoveTenant(ctx context.Context, tenant, cluster string, step admin.MoveStep) (admin.MoveInfo, error) {
	cluster = strings.ToLower(cluster)
	info := admin.MoveInfo{Tenant: tenant, To: cluster}
	rt := &s.routing
	if rt.clusters[cluster] == nil {
		return info, &wire.Error{Severity: wire.SeverityError, Code: wire.CodeUndefinedObject,
			Message: fmt.Sprintf("cluster %q is not configured", cluster),
			Hint:    "Clusters are default (upstream_host) and the [cluster NAME] sections; SHOW ROUTES lists the routes."}
	}
	if tenant == "" || strings.ContainsAny(tenant, `*?[\`) {
		return info, &wire.Error{Severity: wire.SeverityError, Code: wire.CodeInvalidParameterValue,
			Message: fmt.Sprintf("MOVE TENANT takes one tenant label, not %q", tenant),
			Hint:    "Move tenants one at a time; patterns belong in tenant_routes."}
	}
	mv := mover{s}
	if step != admin.MoveSwitch {
		if err := mv.pause(ctx, &info); err != nil {
			return info, err
		}
		if step == admin.MovePause {
			return info, nil
		}
	}
	return info, mv.switchTo(ctx, &info)
}

// mover runs the steps of MOVE TENANT on a server.
type mover struct{ s *Server }

// pause is MOVE's first step: record the move, pause the tenant and wait
// for its open transactions.
func (mv mover) pause(ctx context.Context, info *admin.MoveInfo) error {
	s := mv.s
	rt := &s.routing
	// Where the tenant is now may be the directory's answer; asked before
	// taking the lock, since it may query the directory database.
	dir, err := rt.dirAnswer(ctx, info.Tenant, false)
	if err != nil {
		return dirCommandError(info.Tenant, err)
	}
	m := &rt.moves
	m.mu.Lock()
	if tm, busy := m.moves[info.Tenant]; busy && tm.to == info.To {
		// The step again, after a timeout: wait for the stragglers.
		m.mu.Unlock()
		info.From, info.State = tm.from, "paused"
		return mv.drain(ctx, info)
	}
	cur, ok := rt.router.Tenant(info.Tenant, "", dir)
	if ok && cur.Cluster == info.To {
		m.mu.Unlock()
		return errNotInState("tenant %q is already routed to cluster %q (by %s)", info.Tenant, info.To, cur.Source)
	}
	info.From = cur.Cluster
	if tm, busy := m.moves[info.Tenant]; busy {
		m.mu.Unlock()
		return moveError(fmt.Sprintf("Run MOVE TENANT %s TO %s SWITCH, or RESUME TENANT %s to call it off.", quoteWord(info.Tenant), tm.to, quoteWord(info.Tenant)),
			"tenant %q is already being moved to cluster %q", info.Tenant, tm.to)
	}
	if err := s.adm.pause.addTenant(info.Tenant); err != nil {
		m.mu.Unlock()
		return err
	}
	if m.moves == nil {
		m.moves = map[string]*tenantMove{}
	}
	m.moves[info.Tenant] = &tenantMove{from: info.From, to: info.To, since: time.Now()}
	m.mu.Unlock()
	s.Logger.Info("MOVE TENANT: paused", "tenant", info.Tenant, "from", info.From, "to", info.To)
	info.State = "paused"
	return mv.drain(ctx, info)
}

// drain waits until no client of the tenant is logging in or in a
// transaction, up to tenant_move_timeout (and ctx). On timeout it fails
// listing the clients still running; the pause stays.
func (mv mover) drain(ctx context.Context, info *admin.MoveInfo) error {
	s := mv.s
	start := time.Now()
	if d := s.Config().TenantMoveTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	tick := time.NewTicker(5 * time.Millisecond) // as Pause: no signal from the hot path
	defer tick.Stop()
	for {
		running := mv.running(info.Tenant)
		if len(running) == 0 {
			info.Waited = time.Since(start)
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-s.shutdown:
			return errors.New("the server is shutting down")
		case <-ctx.Done():
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeObjectInUse,
			Message: fmt.Sprintf("tenant %q still has %d client(s) logging in or in a transaction after tenant_move_timeout (%s)",
				info.Tenant, len(running), s.Config().TenantMoveTimeout),
			Detail: "Still running: " + strings.Join(running, "; ") + ". The tenant stays paused.",
			Hint: fmt.Sprintf("Run the step again to wait longer, end those clients (SHOW CLIENTS, KILL), or RESUME TENANT %s to call the move off.",
				quoteWord(info.Tenant))}
	}
}

// running describes the clients of tenant that are logging in or in a
// transaction and not held by a pause, sorted by id.
func (mv mover) running(tenant string) []string {
	now := time.Now()
	var out []string
	for _, c := range mv.s.snapshot() {
		info := c.ad.info.Load()
		if info == nil || info.admin || info.tenant != tenant || c.ad.waiting.Load() {
			continue
		}
		switch st := c.State(); st {
		case StateConnecting, StateInjecting, StateActive, StateInTransaction:
			desc := fmt.Sprintf("client %d %s on cluster %s", c.id, st, info.cluster)
			if stats := info.stats; stats != nil {
				if t := stats.lastRequest.Load(); t != 0 {
					desc += fmt.Sprintf(", last query ended %s ago", now.Sub(time.Unix(0, t)).Round(time.Millisecond))
				}
			}
			out = append(out, desc)
		}
	}
	return out
}

// switchTo is MOVE's last step: route the tenant to the new cluster, end
// its session-mode connections elsewhere, lift the pause.
func (mv mover) switchTo(ctx context.Context, info *admin.MoveInfo) error {
	s := mv.s
	rt := &s.routing
	m := &rt.moves
	m.mu.Lock()
	tm, ok := m.moves[info.Tenant]
	m.mu.Unlock()
	if !ok || tm.to != info.To {
		return moveError(fmt.Sprintf("Run MOVE TENANT %s TO %s PAUSE first (SHOW ROUTES lists moves in progress).", quoteWord(info.Tenant), info.To),
			"tenant %q is not paused for a move to cluster %q", info.Tenant, info.To)
	}
	info.From = tm.from
	// A step run again after a timeout waits for the stragglers first.
	if err := mv.drain(ctx, info); err != nil {
		return err
	}
	prev, had := rt.router.Overrides()[info.Tenant]
	rt.router.SetOverride(info.Tenant, info.To)
	if err := rt.saveOverrides(); err != nil {
		if had {
			rt.router.SetOverride(info.Tenant, prev)
		} else {
			rt.router.ReplaceOverrides(without(rt.router.Overrides(), info.Tenant))
		}
		return fmt.Errorf("the route could not be saved, so the tenant was not switched (it stays paused): %w", err)
	}
	info.Persisted = rt.stateFile != ""
	info.Closed = mv.endSessions(info.Tenant, info.To)
	m.mu.Lock()
	delete(m.moves, info.Tenant)
	m.mu.Unlock()
	s.adm.pause.liftTenant(info.Tenant)
	info.State = "switched"
	if info.Persisted {
		s.Logger.Info("MOVE TENANT: switched", "tenant", info.Tenant, "from", info.From, "to", info.To,
			"closed_session_connections", info.Closed)
	} else {
		s.Logger.Warn("MOVE TENANT: switched; the route lives in memory only: add it to tenant_routes (or the tenant directory) before the next restart",
			"tenant", info.Tenant, "from", info.From, "to", info.To, "closed_session_connections", info.Closed)
	}
	return nil
}

func without(m map[string]string, key string) map[string]string {
	delete(m, key)
	return m
}

// endSessions ends the tenant's session-mode connections whose server
// connection is not on cluster: their sessions cannot follow the tenant.
// Each gets FATAL 57P01 (written within a second, or not at all) and is
// closed; it returns how many.
func (mv mover) endSessions(tenant, cluster string) int {
	n := 0
	for _, c := range mv.s.snapshot() {
		info := c.ad.info.Load()
		if info == nil || info.admin || info.tenant != tenant || c.tx.pool != nil || info.cluster == cluster {
			continue
		}
		if c.currentServer() == nil && c.State() != StateIdle && c.State() != StateInTransaction {
			continue // not logged in upstream yet: its login follows the route
		}
		endSession(c, movedError(tenant, cluster), "closed by MOVE TENANT: a session-mode connection cannot follow its tenant", cluster)
		n++
	}
	return n
}

// movedError is what a session-mode client whose tenant moved reads.
func movedError(tenant, cluster string) *wire.Error {
	return wire.Fatal(wire.CodeAdminShutdown, "terminating connection: tenant %q moved to cluster %q", tenant, cluster).
		WithHint("Reconnect; new connections go to the tenant's new cluster.")
}

// endSession writes we to a session-mode client (within a second, or not
// at all: a client that does not read must not hold the caller) and
// closes it.
func endSession(c *clientConn, we *wire.Error, why, cluster string) {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.writeMsg(we.Response())
	_ = c.flush()
	c.logger().Info(why, "to", cluster)
	c.kill()
}

// ResumeTenant calls off a move that has not switched: the tenant's
// waiting logins and transactions go on where they were.
func (s *Server) ResumeTenant(tenant string) error {
	m := &s.routing.moves
	m.mu.Lock()
	mv, ok := m.moves[tenant]
	delete(m.moves, tenant)
	m.mu.Unlock()
	if !ok {
		return errNotInState("tenant %q is not paused", tenant)
	}
	s.adm.pause.liftTenant(tenant)
	s.Logger.Info("RESUME TENANT: move called off", "tenant", tenant, "to", mv.to)
	return nil
}

// Routes lists, for SHOW ROUTES, the moves in progress, the overrides
// (sorted by tenant), the tenant directory's cached answers that place a
// tenant, then the configuration's rules in the order they apply.
func (s *Server) Routes() []admin.RouteInfo {
	rt := &s.routing
	var out []admin.RouteInfo
	m := &rt.moves
	m.mu.Lock()
	for tenant, mv := range m.moves {
		out = append(out, admin.RouteInfo{Match: tenant, Source: "move", Cluster: mv.to,
			State: fmt.Sprintf("paused since %s, from %s", mv.since.Format("2006-01-02 15:04:05"), mv.from)})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Match < out[j].Match })
	overrides := rt.router.Overrides()
	labels := make([]string, 0, len(overrides))
	for l := range overrides {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		out = append(out, admin.RouteInfo{Match: l, Source: route.SourceOverride.String(), Cluster: overrides[l]})
	}
	if rt.dir != nil {
		for _, d := range rt.dir.found() {
			out = append(out, admin.RouteInfo{Match: d.Match, Source: d.Source.String(), Cluster: d.Cluster, State: "cached"})
		}
	}
	for _, d := range rt.router.Table().Rules() {
		out = append(out, admin.RouteInfo{Match: d.Match, Source: d.Source.String(), Cluster: d.Cluster})
	}
	return out
}

// moveError is a MOVE TENANT or RESUME TENANT refused in the state the
// tenant is in (55000, as PAUSE twice is), with what to do instead.
func moveError(hint, format string, args ...any) error {
	return &wire.Error{Severity: wire.SeverityError, Code: "55000", Message: fmt.Sprintf(format, args...), Hint: hint}
}

// quoteWord writes a console word so that the console reads it back as
// one word: quoted when it has blanks or quotes.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"") {
		return w
	}
	return `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
}
