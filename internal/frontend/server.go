package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/tenant"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Hooks let metrics and the admin console observe connections without the
// frontend importing them. Every field may be nil. Set them before Serve;
// they are called from connection goroutines and must be safe for that.
type Hooks struct {
	ConnState   func(id uint64, from, to ConnState)
	AuthFailure func(reason string) // one of the AuthReason constants
	Cancel      func(forwarded bool)
	// PeerCancel is called once for each CancelRequest whose key another
	// process of the fleet issued, with one of the PeerCancel* results.
	PeerCancel  func(result string)
	GuardReject func(rule string)
	// DirectoryLookup is called once for each query of the tenant
	// directory (not for cached answers), with one of the DirLookup*
	// results.
	DirectoryLookup func(result string)
	// Session is called once a client has authenticated; the Session it
	// returns (nil: none) observes that connection until it closes.
	Session func(SessionInfo) Session
}

// Server accepts client connections and proxies them upstream. Create it
// with New; the zero value is not usable.
type Server struct {
	Logger *slog.Logger
	Hooks  Hooks

	live    atomic.Pointer[liveConfig]
	secrets *secretStore
	// resolvers is nil without [resolver] sections; restart-only.
	resolvers *resolverSet
	routing   routing // clusters, routes, MOVE TENANT (routing.go, move.go)
	cancels   cancelMap
	peers     peerState // forwarding cancels to other processes (peers.go)
	roles     roleCache
	limits    tenantLimits
	adm       adminState // PAUSE, RELOAD/SHUTDOWN, totals (adminapi.go)
	nextID    atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	mu        sync.Mutex
	lns       map[net.Listener]struct{}
	conns     map[*clientConn]struct{}
	connWG    sync.WaitGroup
	inShut    atomic.Bool
	shutdown  chan struct{}

	poolOnce sync.Once
	poolSet  atomic.Pointer[pool.Set] // transaction pooling; made on first use
	shutCtx  context.Context
	shutStop context.CancelFunc

	audit auditLog // state_audit findings (txaudit.go)
	// maxByFiles is the most client connections the open-files limit
	// leaves room for (fdlimit.go); 0: no limit known.
	maxByFiles int
	// msgBudget bounds the memory of large client messages over all
	// clients (max_message_memory).
	msgBudget wire.Budget
}

// pools returns the transaction-pooling pool set, making it on first use.
func (s *Server) pools() *pool.Set {
	s.poolOnce.Do(func() { s.poolSet.Store(pool.NewSet(s.live.Load().cfg.MaxDBConnections)) })
	return s.poolSet.Load()
}

// shutdownCtx is done once Shutdown starts: clients waiting for a pooled
// server connection stop waiting.
func (s *Server) shutdownCtx() context.Context { return s.shutCtx }

// liveConfig is a config with everything derived from it, swapped
// atomically on reload so that each connection sees one consistent view.
type liveConfig struct {
	cfg     *config.Config
	rules   *tenant.Rules
	tls     *tls.Config    // nil: no client TLS
	guard   *sqlGuard      // nil when guard = off
	peers   map[int]string // peer id → address, without this process
	txGuard *sqlGuard      // transaction-mode connections; never nil
	mockKey []byte
	// citusGuard and citusTxGuard: tenants of citus_databases, in session
	// and transaction mode (citus.go); nil without Citus databases.
	citusGuard, citusTxGuard *sqlGuard
}

// New validates cfg and builds a server.
func New(cfg *config.Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{Logger: logger, lns: map[net.Listener]struct{}{}, conns: map[*clientConn]struct{}{},
		shutdown: make(chan struct{})}
	s.cancels.init(cfg.PeerID)
	s.peers.init()
	s.shutCtx, s.shutStop = context.WithCancel(context.Background())
	lc, err := buildLive(cfg, nil)
	if err != nil {
		return nil, err
	}
	if err := s.routing.init(cfg); err != nil {
		return nil, err
	}
	if s.routing.dir, err = newTenantDirectory(s.shutCtx, cfg, s.routing.clusters, s.routing.router, logger); err != nil {
		return nil, err
	}
	if s.secrets, err = newSecretStore(cfg, s.routing.clusters); err != nil {
		s.routing.dir.close()
		return nil, err
	}
	if s.resolvers, err = newResolverSet(cfg, s.routing.clusters); err != nil {
		s.secrets.close()
		s.routing.dir.close()
		return nil, err
	}
	// Last, once New can no longer fail: the listener runs until Shutdown.
	startDirectory(s, cfg)
	s.live.Store(lc)
	s.maxByFiles = raiseFileLimit(logger)
	s.msgBudget.Limit = cfg.MaxMessageMemory
	if cfg.PeerID != 0 {
		logger.Info("peering on: cancel keys name this process; others' keys are forwarded to them",
			"peer_id", cfg.PeerID, "peers", len(lc.peers))
	}
	if cfg.AuthType == "trust" {
		logger.Warn("auth_type = trust: clients are not authenticated; use this for the demo only")
	}
	return s, nil
}

func buildLive(cfg *config.Config, prev *liveConfig) (*liveConfig, error) {
	// Anchored: a pattern written without ^...$ must still match the whole
	// value, or "[a-z]+" would accept "acme';x".
	pattern := cfg.TenantValueRegexp()
	lc := &liveConfig{cfg: cfg, rules: &tenant.Rules{
		TenantSeparator: cfg.TenantSeparator, ValueSeparator: cfg.ValueSeparator,
		ContextVariables: cfg.ContextVariables, SuperuserBypass: cfg.SuperuserBypass,
		TenantRoles: cfg.TenantRoles, ValuePattern: pattern,
		// Resolved variables and a managed statement_timeout are as
		// protected at startup as in SQL.
		ExtraProtected: guardProtected(cfg),
	}}
	if cfg.Guard {
		lc.guard = newSQLGuard(cfg)
	}
	lc.txGuard = newTxGuard(cfg)
	lc.peers = peerAddrs(cfg)
	lc.citusGuard, lc.citusTxGuard = citusGuards(cfg)
	var err error
	if lc.tls, err = clientTLSConfig(cfg); err != nil {
		return nil, err
	}
	if prev != nil {
		lc.mockKey = prev.mockKey
	} else {
		lc.mockKey = randomBytes(32)
	}
	return lc, nil
}

// Reload applies cfg to new connections; open connections keep the view
// they started with. It returns the changed keys that need a restart.
func (s *Server) Reload(next *config.Config) (needRestart []string, err error) {
	prev := s.live.Load()
	// Keys that need a restart keep their old values, so a reload never
	// applies them half-way (to new connections only).
	cfg, applied, restart, err := config.ApplyReload(prev.cfg, next)
	if err != nil {
		return nil, err
	}
	lc, err := buildLive(cfg, prev)
	if err != nil {
		return nil, err
	}
	if err := s.secrets.reload(cfg); err != nil {
		return nil, err
	}
	absorbed, err := s.routing.reload(prev.cfg, cfg)
	if len(absorbed) > 0 {
		s.Logger.Info("route overrides now agree with tenant_routes and were dropped", "tenants", absorbed)
	}
	if err != nil {
		s.Logger.Error("the route state file could not be rewritten; it still lists the dropped overrides", "err", err)
	}
	s.live.Store(lc)
	s.Logger.Info("configuration reloaded", "applied", applied, "need_restart", restart)
	return restart, nil
}

// Config returns the configuration in effect for new connections.
func (s *Server) Config() *config.Config { return s.live.Load().cfg }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("multigres: server closed")

// ListenAndServe listens on listen_host:port and serves.
func (s *Server) ListenAndServe() error {
	l, err := listen(s.Config().ListenAddr(), s.Config().ListenReusePort)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown. It closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.inShut.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	defer l.Close()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.inShut.Load() {
				return ErrServerClosed
			}
			if isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Logger.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.shutdown:
				}
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		s.startConn(nc)
	}
}

// isTemporary classifies accept errors such as EMFILE as retryable, as
// net/http does, so running out of file descriptors does not stop serving.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) startConn(nc net.Conn) {
	c := newClientConn(s, nc)
	s.mu.Lock()
	if s.inShut.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if limit := s.live.Load().cfg.MaxClientConn; limit > 0 && len(s.conns) >= limit {
		s.mu.Unlock()
		go s.refuseConn(nc, wire.Fatal(wire.CodeTooManyConnections, "no more connections allowed (max_client_conn)").
			WithHint("Retry later, or raise max_client_conn."))
		return
	}
	if s.maxByFiles > 0 && len(s.conns) >= s.maxByFiles {
		s.mu.Unlock()
		go s.refuseConn(nc, wire.Fatal(wire.CodeTooManyConnections, "no more connections allowed (open-files limit)").
			WithHint("Retry later, or raise the process's open-files limit (LimitNOFILE in systemd, ulimit -n)."))
		return
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	finish := func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connWG.Done()
	}
	go func() {
		next := c.serve()
		if next == nil {
			finish()
			return
		}
		go func() {
			defer finish()
			next()
		}()
	}()
}

// refuseConn answers a connection over max_client_conn with err and closes
// it, as PgBouncer does: an SSLRequest or GSSENCRequest first gets 'N'
// (psql with sslmode=prefer would otherwise show only "server sent an
// error response during SSL exchange"), then the error follows in answer
// to the startup packet. A CancelRequest is still served: cancelling must
// work when the proxy is full. A client that sends nothing within a second
// gets the error anyway.
func (s *Server) refuseConn(nc net.Conn, err *wire.Error) {
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(time.Second))
	rd := bufio.NewReaderSize(nc, 64)
	for range 2 {
		body, rerr := wire.ReadStartup(rd)
		if rerr != nil {
			break
		}
		st, perr := wire.ParseStartup(body)
		if perr != nil {
			break
		}
		if st.Kind == wire.KindCancel {
			s.handleCancel(st.ProcessID, st.SecretKey)
			return
		}
		if st.Kind != wire.KindSSLRequest && st.Kind != wire.KindGSSENCRequest {
			break
		}
		if _, werr := nc.Write([]byte{wire.SSLRefused}); werr != nil {
			return
		}
	}
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	if b, encErr := err.Response().Encode(nil); encErr == nil {
		_, _ = nc.Write(b)
	}
}

// Shutdown stops accepting, lets open sessions finish until ctx is done,
// then closes whatever is left and waits for every connection goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.inShut.Swap(true) {
		close(s.shutdown)
		s.shutStop()
	}
	for l := range s.lns {
		l.Close()
		delete(s.lns, l)
	}
	s.mu.Unlock()
	s.wakeTxClients()
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.closeAll()
		<-done
	}
	s.secrets.close()
	s.resolvers.close()
	s.routing.dir.close()
	s.poolOnce.Do(func() {}) // no pool set after this point
	if ps := s.poolSet.Load(); ps != nil {
		ps.Close()
	}
	return err
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.kill()
	}
}

// ConnCount is the number of open client connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
