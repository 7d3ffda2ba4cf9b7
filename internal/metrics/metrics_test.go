package metrics_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// setup starts a proxy with metrics and the admin server on a fresh database.
func setup(t *testing.T, mutate func(*config.Config)) (*proxytest.Proxy, string) {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	return proxytest.StartProxyMetrics(t, pg, mutate), db
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a simple-protocol connection through the proxy, so that
// each Exec is exactly one Query message and one ReadyForQuery.
func connect(t *testing.T, ctx context.Context, p *proxytest.Proxy, db, user, password string) (*pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(ctx, proxytest.URL(p.Addr, user, password, db)+"&default_query_exec_mode=simple_protocol")
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func mustConnect(t *testing.T, ctx context.Context, p *proxytest.Proxy, db, user string) *pgx.Conn {
	t.Helper()
	conn, err := connect(t, ctx, p, db, user, proxytest.AppUserPassword)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	return conn
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// scrape returns every sample of /metrics keyed by its series as printed,
// e.g. `multigres_tenant_connections_total{tenant="acme"}`.
func scrape(t *testing.T, p *proxytest.Proxy) (map[string]float64, string) {
	t.Helper()
	status, body := get(t, p.AdminURL+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out, body
}

// waitValue polls /metrics until series has value want, for at most 5 s:
// the hooks run on connection goroutines, a moment after the client sees
// its answer.
func waitValue(t *testing.T, p *proxytest.Proxy, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := mustScrape(t, p)[series]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v", series, got, ok, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustScrape(t *testing.T, p *proxytest.Proxy) map[string]float64 {
	t.Helper()
	m, _ := scrape(t, p)
	return m
}

func exec(t *testing.T, ctx context.Context, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// TestTrafficMetrics: connections by state, server connections, pool wait,
// queries, transactions, bytes and per-tenant counters move with traffic,
// exactly.
func TestTrafficMetrics(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	pool := `cluster="default",pool="` + db + `/app_user"`
	before := mustScrape(t, p)
	if before[`multigres_client_connections_total`] != 0 {
		t.Fatalf("fresh proxy counts connections: %v", before[`multigres_client_connections_total`])
	}

	conn := mustConnect(t, ctx, p, db, "app_user.acme")
	waitValue(t, p, `multigres_client_connections{state="idle"}`, 1)
	waitValue(t, p, `multigres_server_connections{`+pool+`,state="idle"}`, 1)
	m := mustScrape(t, p)
	for series, want := range map[string]float64{
		`multigres_client_connections_total`:                        1,
		`multigres_server_connections{` + pool + `,state="active"}`: 0,
		`multigres_pool_wait_seconds_count{` + pool + `}`:           1,
		`multigres_tenant_connections_total{tenant="acme"}`:         1,
		`multigres_queries_total{` + pool + `}`:                     0,
	} {
		if m[series] != want {
			t.Errorf("after connect: %s = %v, want %v", series, m[series], want)
		}
	}
	in0, out0 := m[`multigres_client_received_bytes_total`], m[`multigres_client_sent_bytes_total`]
	if in0 <= 0 || out0 <= 0 {
		t.Errorf("bytes after login: received %v sent %v, want > 0", in0, out0)
	}

	// Three autocommit statements and one explicit transaction of three.
	exec(t, ctx, conn, "SELECT 1", "SELECT 2", "SELECT 3", "BEGIN", "SELECT 4", "COMMIT")
	waitValue(t, p, `multigres_queries_total{`+pool+`}`, 6)
	waitValue(t, p, `multigres_transactions_total{`+pool+`}`, 4)
	m = mustScrape(t, p)
	for series, want := range map[string]float64{
		`multigres_query_duration_seconds_count{` + pool + `}`:       6,
		`multigres_transaction_duration_seconds_count{` + pool + `}`: 4,
		`multigres_tenant_transactions_total{tenant="acme"}`:         4,
		`multigres_tenant_errors_total{tenant="acme"}`:               0,
	} {
		if m[series] != want {
			t.Errorf("after queries: %s = %v, want %v", series, m[series], want)
		}
	}
	if m[`multigres_client_received_bytes_total`] <= in0 || m[`multigres_client_sent_bytes_total`] <= out0 {
		t.Errorf("bytes did not grow with queries: received %v→%v, sent %v→%v",
			in0, m[`multigres_client_received_bytes_total`], out0, m[`multigres_client_sent_bytes_total`])
	}

	// A transaction held open shows as active server connection.
	exec(t, ctx, conn, "BEGIN")
	waitValue(t, p, `multigres_client_connections{state="idle_in_transaction"}`, 1)
	waitValue(t, p, `multigres_server_connections{`+pool+`,state="active"}`, 1)
	waitValue(t, p, `multigres_server_connections{`+pool+`,state="idle"}`, 0)
	// An error is counted for the tenant; the aborted transaction ends
	// with ROLLBACK.
	if _, err := conn.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("SELECT 1/0 succeeded")
	}
	exec(t, ctx, conn, "ROLLBACK")
	waitValue(t, p, `multigres_tenant_errors_total{tenant="acme"}`, 1)
	waitValue(t, p, `multigres_transactions_total{`+pool+`}`, 5)

	// Closing returns the gauges to zero.
	conn.Close(ctx)
	waitValue(t, p, `multigres_client_connections{state="idle"}`, 0)
	waitValue(t, p, `multigres_server_connections{`+pool+`,state="idle"}`, 0)
	waitValue(t, p, `multigres_server_connections{`+pool+`,state="active"}`, 0)

	// Nothing secret or user-written reaches the exposition.
	_, body := scrape(t, p)
	for _, leak := range []string{proxytest.AppUserPassword, "SELECT", "1/0"} {
		if strings.Contains(body, leak) {
			t.Errorf("/metrics contains %q", leak)
		}
	}
}

// TestAuthFailureMetrics: refused logins count under their reason.
func TestAuthFailureMetrics(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	waitValue(t, p, `multigres_auth_failures_total{reason="password"}`, 0)
	if _, err := connect(t, ctx, p, db, "app_user.acme", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	waitValue(t, p, `multigres_auth_failures_total{reason="password"}`, 1)
	if _, err := connect(t, ctx, p, db, "nobody.acme", "x"); err == nil {
		t.Fatal("login as a role outside tenant_roles succeeded")
	}
	waitValue(t, p, `multigres_auth_failures_total{reason="invalid_username"}`, 1)
	waitValue(t, p, `multigres_auth_failures_total{reason="password"}`, 1)
	// A failed login never became a tenant session.
	if v, ok := mustScrape(t, p)[`multigres_tenant_connections_total{tenant="acme"}`]; ok {
		t.Errorf("failed login counted as a tenant connection: %v", v)
	}
}

// TestGuardRejectionMetrics: a refused SET of the tenant variable counts
// under rule set_protected and as the tenant's error.
func TestGuardRejectionMetrics(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	conn := mustConnect(t, ctx, p, db, "app_user.acme")
	_, err := conn.Exec(ctx, "SET app.current_tenant_id = 'x'")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("SET app.current_tenant_id: err %v, want 42501", err)
	}
	waitValue(t, p, `multigres_guard_rejections_total{rule="set_protected"}`, 1)
	waitValue(t, p, `multigres_tenant_errors_total{tenant="acme"}`, 1)
	exec(t, ctx, conn, "SELECT 1") // the connection carries on
}

// TestCancelMetrics: a cancel with the client's key is forwarded; one with
// an unknown key is not.
func TestCancelMetrics(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	conn := mustConnect(t, ctx, p, db, "app_user.acme")
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(20)")
		done <- err
	}()
	waitValue(t, p, `multigres_client_connections{state="active"}`, 1)
	// A cancel that reaches the server before the statement starts is
	// ignored, so wait until PostgreSQL runs it.
	super := pgtest.Shared().Connect(t, db)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var running bool
		if err := super.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(20)')").Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pg_sleep never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatalf("cancel request: %v", err)
	}
	select {
	case err := <-done:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("cancelled query: err %v, want 57014", err)
		}
	case <-ctx.Done():
		t.Fatal("query was not cancelled")
	}
	waitValue(t, p, `multigres_cancels_total{forwarded="true"}`, 1)
	waitValue(t, p, `multigres_cancels_total{forwarded="false"}`, 0)

	// A key multigres never handed out.
	nc, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pkt := binary.BigEndian.AppendUint32(nil, 16)
	pkt = binary.BigEndian.AppendUint32(pkt, 80877102)
	pkt = binary.BigEndian.AppendUint32(pkt, 12345)
	pkt = binary.BigEndian.AppendUint32(pkt, 67890)
	if _, err := nc.Write(pkt); err != nil {
		t.Fatal(err)
	}
	waitValue(t, p, `multigres_cancels_total{forwarded="false"}`, 1)
	waitValue(t, p, `multigres_cancels_total{forwarded="true"}`, 1)
}

// TestTenantFolding: with metrics_max_tenants = 2 the third tenant is
// counted as "other" and gets no label of its own.
func TestTenantFolding(t *testing.T) {
	t.Parallel()
	p, db := setup(t, func(c *config.Config) { c.MetricsMaxTenants = 2 })
	ctx := ctxT(t)
	for _, tenant := range []string{"t1", "t2", "t3", "t4", "t1"} {
		conn := mustConnect(t, ctx, p, db, "app_user."+tenant)
		exec(t, ctx, conn, "SELECT 1")
	}
	waitValue(t, p, `multigres_tenant_connections_total{tenant="t1"}`, 2)
	waitValue(t, p, `multigres_tenant_connections_total{tenant="t2"}`, 1)
	waitValue(t, p, `multigres_tenant_connections_total{tenant="other"}`, 2)
	waitValue(t, p, `multigres_tenant_transactions_total{tenant="other"}`, 2)
	m := mustScrape(t, p)
	for _, tenant := range []string{"t3", "t4"} {
		for _, name := range []string{"connections", "transactions", "errors"} {
			series := fmt.Sprintf(`multigres_tenant_%s_total{tenant=%q}`, name, tenant)
			if _, ok := m[series]; ok {
				t.Errorf("%s exists past metrics_max_tenants", series)
			}
		}
	}
}

// TestPipelineCounts: an extended-protocol pipeline counts one query per
// Sync, each answered by its own ReadyForQuery, and one transaction per
// Sync outside BEGIN.
func TestPipelineCounts(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	pool := `cluster="default",pool="` + db + `/app_user"`
	conn := mustConnect(t, ctx, p, db, "app_user.acme")
	pl := conn.PgConn().StartPipeline(ctx)
	// Three statements before the first Sync are one query; then two
	// more, each with its own Sync.
	for range 3 {
		pl.SendQueryParams("SELECT $1::int", [][]byte{[]byte("1")}, nil, nil, nil)
	}
	pl.SendPipelineSync()
	for range 2 {
		pl.SendQueryParams("SELECT 2", nil, nil, nil, nil)
		pl.SendPipelineSync()
	}
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	syncs := 0
	for syncs < 3 {
		res, err := pl.GetResults()
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		switch r := res.(type) {
		case *pgconn.ResultReader:
			if _, err := r.Close(); err != nil {
				t.Fatalf("pipeline result: %v", err)
			}
		case *pgconn.PipelineSync:
			syncs++
		case nil:
			t.Fatal("pipeline ended early")
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	waitValue(t, p, `multigres_queries_total{`+pool+`}`, 3)
	waitValue(t, p, `multigres_transactions_total{`+pool+`}`, 3)
	waitValue(t, p, `multigres_query_duration_seconds_count{`+pool+`}`, 3)
	waitValue(t, p, `multigres_client_connections{state="idle"}`, 1)
}
