package frontend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/route"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// moveServer is a Server with routing over three clusters and no
// connections: enough for the MOVE TENANT state machine.
func moveServer(t *testing.T, mutate func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Clusters = []config.ClusterConfig{{Name: "c2", Host: "127.0.0.1", Port: 1}, {Name: "c3", Host: "127.0.0.1", Port: 2}}
	cfg.TenantRoutes = []string{"acme:default", "big-*:c3"}
	if mutate != nil {
		mutate(cfg)
	}
	s := &Server{shutdown: make(chan struct{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.live.Store(&liveConfig{cfg: cfg})
	if err := s.routing.init(cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

func sqlstate(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

// TestMoveStateMachine: PAUSE gates the tenant only, SWITCH sets the
// override and opens the gate, and the commands refuse what does not fit
// the tenant's state.
func TestMoveStateMachine(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "routes")
	s := moveServer(t, func(c *config.Config) { c.RouteStateFile = state })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if _, err := s.MoveTenant(ctx, "acme", "nowhere", admin.MovePause); sqlstate(err) != wire.CodeUndefinedObject {
		t.Errorf("move to an unknown cluster: %v", err)
	}
	if _, err := s.MoveTenant(ctx, "acme", "default", admin.MovePause); sqlstate(err) != "55000" {
		t.Errorf("move to the cluster it is on: %v", err)
	}
	if _, err := s.MoveTenant(ctx, "big-*", "c2", admin.MovePause); sqlstate(err) != wire.CodeInvalidParameterValue {
		t.Errorf("move of a pattern: %v", err)
	}
	if _, err := s.MoveTenant(ctx, "acme", "c2", admin.MoveSwitch); sqlstate(err) != "55000" {
		t.Errorf("switch without pause: %v", err)
	}

	info, err := s.MoveTenant(ctx, "acme", "C2", admin.MovePause)
	if err != nil || info.State != "paused" || info.From != "default" || info.To != "c2" {
		t.Fatalf("pause: %+v, %v", info, err)
	}
	gate := s.adm.pause.gate("app", "acme")
	if gate == nil || s.adm.pause.gate("app", "globex") != nil || s.adm.pause.gate("app", "") != nil {
		t.Fatal("the pause does not gate acme alone")
	}
	if _, err := s.MoveTenant(ctx, "acme", "c3", admin.MovePause); sqlstate(err) != "55000" {
		t.Errorf("a second move while paused: %v", err)
	}
	if again, err := s.MoveTenant(ctx, "acme", "c2", admin.MovePause); err != nil || again.State != "paused" || again.From != "default" {
		t.Errorf("PAUSE again (after a timeout, to wait longer): %+v, %v", again, err)
	}
	if _, err := s.MoveTenant(ctx, "acme", "c3", admin.MoveSwitch); sqlstate(err) != "55000" {
		t.Errorf("switch to another cluster than the paused move's: %v", err)
	}
	if r := s.Routes(); len(r) == 0 || r[0].Source != "move" || r[0].Match != "acme" || r[0].Cluster != "c2" {
		t.Errorf("SHOW ROUTES during the move: %+v", r)
	}
	epoch := s.routing.router.Epoch()

	info, err = s.MoveTenant(ctx, "acme", "c2", admin.MoveSwitch)
	if err != nil || info.State != "switched" || !info.Persisted || info.From != "default" {
		t.Fatalf("switch: %+v, %v", info, err)
	}
	select {
	case <-gate:
	default:
		t.Fatal("the switch did not release the tenant's waiters")
	}
	if s.adm.pause.n.Load() != 0 {
		t.Error("a pause is left over")
	}
	if s.routing.router.Epoch() == epoch {
		t.Error("the switch did not change the routing epoch")
	}
	if d, _ := s.routing.router.Tenant("acme", "app", route.DirAnswer{}); d.Cluster != "c2" || d.Source.String() != "override" {
		t.Errorf("acme routes to %+v", d)
	}
	data, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(data), "\nacme:c2\n") {
		t.Errorf("state file: %q, %v", data, err)
	}
	routes := s.Routes()
	if routes[0].Source != "override" || routes[0].Match != "acme" || routes[1].Source != "tenant_routes" {
		t.Errorf("SHOW ROUTES after the move: %+v", routes)
	}
	if err := s.ResumeTenant("acme"); sqlstate(err) != "55000" {
		t.Errorf("RESUME TENANT after the switch: %v", err)
	}

	// A restart reads the override back.
	again := moveServer(t, func(c *config.Config) { c.RouteStateFile = state })
	if d, _ := again.routing.router.Tenant("acme", "app", route.DirAnswer{}); d.Cluster != "c2" {
		t.Errorf("after a restart acme routes to %+v", d)
	}
}

// TestMoveResume: RESUME TENANT calls a paused move off.
func TestMoveResume(t *testing.T) {
	t.Parallel()
	s := moveServer(t, nil)
	ctx := context.Background()
	if _, err := s.MoveTenant(ctx, "big-corp", "c2", admin.MovePause); err != nil {
		t.Fatal(err)
	}
	gate := s.adm.pause.gate("app", "big-corp")
	if err := s.ResumeTenant("big-corp"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate:
	default:
		t.Fatal("RESUME TENANT did not release the waiters")
	}
	if d, _ := s.routing.router.Tenant("big-corp", "app", route.DirAnswer{}); d.Cluster != "c3" {
		t.Errorf("a called-off move changed the route: %+v", d)
	}
	// The one-step form pauses and switches.
	info, err := s.MoveTenant(ctx, "big-corp", "c2", admin.MoveAll)
	if err != nil || info.State != "switched" || info.Persisted {
		t.Errorf("MOVE without a step: %+v, %v", info, err)
	}
}

// TestRouteStateFileUnknownCluster: a state file naming a cluster that is
// gone fails the start, naming the tenant and the file.
func TestRouteStateFileUnknownCluster(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "routes")
	if err := os.WriteFile(state, []byte("acme:gone\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.RouteStateFile = state
	var rt routing
	if err := rt.init(cfg); err == nil || !strings.Contains(err.Error(), `tenant "acme" was moved to cluster "gone"`) {
		t.Errorf("init: %v", err)
	}
}
