package e2e

// A model-based test of transaction pooling: seeded random sequences of
// protocol messages from several tenants over a pool of one and of two
// server connections, checked after every step against a model of what
// each client must observe (its own tenant's rows and context, its own
// settings, its own transaction status), with the state audit on.
//
// MULTIGRES_MODEL_STEPS sets the number of steps per pool size (default
// 10,000, so 20,000 in all), MULTIGRES_MODEL_SEED the seed (default 1;
// `make fuzz` runs it longer with a random seed). A failure prints the
// seed and the shortest failing sequence found by removing steps.

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

var modelTenants = []string{"acme", "globex", "initech"}

// modelSettings are the tracked settings the model varies, with values.
var modelSettings = map[string][]string{
	"application_name":   {"app-one", "app-two", "app three"},
	"extra_float_digits": {"0", "1", "2"},
	"work_mem":           {"4MB", "8MB"},
}

const modelCheck = "SELECT coalesce((SELECT string_agg(DISTINCT tenant_id, ',' ORDER BY tenant_id) FROM public.contacts), '-'), " +
	"current_setting('app.current_tenant_id'), current_setting('application_name'), " +
	"current_setting('extra_float_digits'), current_setting('work_mem')"

// step is one action, with every random choice made, so that a sequence
// replays exactly.
type step struct {
	client int
	kind   string
	name   string // setting name
	value  string
	alt    bool // a variant: extended protocol, abrupt close, ...
}

func (s step) String() string {
	return fmt.Sprintf("c%d %s %s %q alt=%v", s.client, s.kind, s.name, s.value, s.alt)
}

var stepKinds = []string{"check", "check", "checkNamed", "closeNamed", "set", "setLocal", "reset", "begin", "commit",
	"rollback", "savepoint", "rollbackTo", "error", "batchLeak", "pipeline", "insertOther", "reconnect", "errorThenSkipped",
	"batchRollback", "setPipelined"}

func genSteps(rng *rand.Rand, n, clients int) []step {
	names := slices.Sorted(maps.Keys(modelSettings))
	out := make([]step, n)
	for i := range out {
		name := names[rng.IntN(len(names))]
		vals := modelSettings[name]
		out[i] = step{client: rng.IntN(clients), kind: stepKinds[rng.IntN(len(stepKinds))], name: name,
			value: vals[rng.IntN(len(vals))], alt: rng.IntN(2) == 0}
	}
	return out
}

// mclient is one client and the model of what it must observe.
type mclient struct {
	tenant   string
	w        *rawWire
	settings map[string]string // session values
	local    map[string]string // SET LOCAL values in the open transaction
	saved    map[string]string // local at the savepoint
	status   byte
	named    bool // statement "q" is prepared
	savept   bool
}

// modelRun drives one proxy with a sequence; it returns the first
// violation, or "".
type modelRun struct {
	t        *testing.T
	e        *env
	pool     int
	defaults map[string]string
	clients  []*mclient
}

func newModelRun(t *testing.T, pool int) *modelRun {
	e := newEnv(t, func(c *config.Config) {
		txMode(pool)(c)
		c.QueryWaitTimeout = 10 * time.Second
	})
	e.exec(t, "INSERT INTO contacts (tenant_id, name) VALUES ('initech', 'Ian')")
	r := &modelRun{t: t, e: e, pool: pool}
	for i := range modelTenants {
		r.clients = append(r.clients, r.login(modelTenants[i]))
	}
	r.defaults = map[string]string{}
	rows, _, err := r.clients[0].exchange(1, &pgproto3.Query{String: modelCheck})
	if err != "" || len(rows) != 1 {
		t.Fatalf("reading defaults: %v %s", rows, err)
	}
	r.defaults["application_name"], r.defaults["extra_float_digits"], r.defaults["work_mem"] = rows[0][2], rows[0][3], rows[0][4]
	for _, c := range r.clients {
		c.settings = maps.Clone(r.defaults)
	}
	return r
}

func (r *modelRun) login(tenant string) *mclient {
	conn := r.e.connect(r.t, "app_user."+tenant)
	return &mclient{tenant: tenant, w: hijackRaw(r.t, conn), status: 'I', local: map[string]string{}}
}

// exchange sends msgs and reads until n ReadyForQuery; it returns the rows
// of the last result, the status and the first error's SQLSTATE.
func (c *mclient) exchange(n int, msgs ...pgproto3.FrontendMessage) ([][]string, byte, string) {
	_ = c.w.hc.Conn.SetDeadline(time.Now().Add(15 * time.Second))
	for _, m := range msgs {
		c.w.fe.Send(m)
	}
	if err := c.w.fe.Flush(); err != nil {
		return nil, 0, "send: " + err.Error()
	}
	var rows [][]string
	code := ""
	var status byte
	for n > 0 {
		m, err := c.w.fe.Receive()
		if err != nil {
			return nil, 0, "receive: " + err.Error()
		}
		switch m := m.(type) {
		case *pgproto3.RowDescription:
			rows = nil
		case *pgproto3.DataRow:
			row := make([]string, len(m.Values))
			for i, v := range m.Values {
				row[i] = string(v)
			}
			rows = append(rows, row)
		case *pgproto3.ErrorResponse:
			if code == "" {
				code = m.Code
			}
			if m.Severity == "FATAL" {
				return nil, 0, "FATAL " + m.Code + " " + m.Message
			}
		case *pgproto3.ReadyForQuery:
			status = m.TxStatus
			n--
		}
	}
	return rows, status, code
}

// effective is what current_setting shows the client now.
func (c *mclient) effective(name string) string {
	if v, ok := c.local[name]; ok {
		return v
	}
	return c.settings[name]
}

func (c *mclient) endTx() {
	c.local, c.saved, c.savept = map[string]string{}, nil, false
}

// expectError applies an error inside or outside a block to the model.
func (c *mclient) failed() {
	if c.status != 'I' {
		c.status = 'E'
	}
}

func extended(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
}

// canAct reports whether client i may act now without waiting forever
// for a server connection held by another client's open transaction.
func (r *modelRun) canAct(i int) bool {
	if r.clients[i].status != 'I' {
		return true
	}
	open := 0
	for _, c := range r.clients {
		if c.status != 'I' {
			open++
		}
	}
	return open < r.pool
}

// do runs one step and returns a violation, or "".
func (r *modelRun) do(s step) string {
	i := s.client % len(r.clients)
	if !r.canAct(i) {
		for j := range r.clients { // someone in a transaction acts instead
			if r.clients[j].status != 'I' {
				i = j
				break
			}
		}
		s.kind = "commit"
	}
	c := r.clients[i]
	want := func(code string, status byte, got string, gotStatus byte) string {
		if got != code || gotStatus != status {
			return fmt.Sprintf("%s: got error %q status %q, model expects %q status %q", s, got, gotStatus, code, status)
		}
		return ""
	}
	switch s.kind {
	case "check", "checkNamed":
		var msgs []pgproto3.FrontendMessage
		switch {
		case s.kind == "checkNamed":
			if !c.named {
				msgs = append(msgs, &pgproto3.Parse{Name: "q", Query: modelCheck})
			}
			msgs = append(msgs, &pgproto3.Bind{PreparedStatement: "q"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		case s.alt:
			msgs = extended(modelCheck)
		default:
			msgs = []pgproto3.FrontendMessage{&pgproto3.Query{String: modelCheck}}
		}
		rows, status, code := c.exchange(1, msgs...)
		if s.kind == "checkNamed" && code == "" {
			c.named = true
		}
		if c.status == 'E' {
			return want("25P02", 'E', code, status)
		}
		if v := want("", c.status, code, status); v != "" {
			return v
		}
		exp := []string{c.tenant, c.tenant, c.effective("application_name"), c.effective("extra_float_digits"), c.effective("work_mem")}
		if len(rows) != 1 || !slices.Equal(rows[0], exp) {
			return fmt.Sprintf("%s: observed %v, model expects %v", s, rows, exp)
		}
	case "closeNamed":
		_, status, code := c.exchange(1, &pgproto3.Close{ObjectType: 'S', Name: "q"}, &pgproto3.Sync{})
		c.named = false
		return want("", c.status, code, status)
	case "set", "setLocal", "reset":
		sql := "SET " + s.name + " = '" + s.value + "'"
		switch s.kind {
		case "setLocal":
			sql = "SET LOCAL " + s.name + " = '" + s.value + "'"
		case "reset":
			sql = "RESET " + s.name
		}
		msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
		if s.alt {
			msgs = extended(sql)
		}
		_, status, code := c.exchange(1, msgs...)
		switch {
		case c.status == 'E' && s.kind == "setLocal":
			return want("25P02", 'E', code, status)
		case c.status != 'I' && s.kind != "setLocal":
			// Refused by the proxy before the server sees it.
			c.status = 'E'
			return want("0A000", 'E', code, status)
		case s.kind == "setLocal":
			if c.status == 'T' {
				c.local[s.name] = s.value
			}
			return want("", c.status, code, status)
		case s.kind == "reset":
			c.settings[s.name] = r.defaults[s.name]
		default:
			c.settings[s.name] = s.value
		}
		return want("", 'I', code, status)
	case "begin":
		_, status, code := c.exchange(1, &pgproto3.Query{String: "BEGIN"})
		if c.status == 'E' {
			return want("25P02", 'E', code, status)
		}
		c.status = 'T'
		return want("", 'T', code, status)
	case "commit", "rollback":
		word := strings.ToUpper(s.kind)
		_, status, code := c.exchange(1, &pgproto3.Query{String: word})
		c.status = 'I'
		c.endTx()
		return want("", 'I', code, status)
	case "savepoint":
		_, status, code := c.exchange(1, &pgproto3.Query{String: "SAVEPOINT sp"})
		switch c.status {
		case 'E':
			return want("25P02", 'E', code, status)
		case 'T':
			c.savept, c.saved = true, maps.Clone(c.local)
			return want("", 'T', code, status)
		}
		return want("25P01", 'I', code, status)
	case "rollbackTo":
		_, status, code := c.exchange(1, &pgproto3.Query{String: "ROLLBACK TO SAVEPOINT sp"})
		switch {
		case c.status == 'I':
			return want("25P01", 'I', code, status)
		case !c.savept:
			c.status = 'E'
			return want("3B001", 'E', code, status)
		}
		c.status, c.local = 'T', maps.Clone(c.saved)
		return want("", 'T', code, status)
	case "error":
		msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1/0"}}
		if s.alt {
			msgs = extended("SELECT 1/0")
		}
		_, status, code := c.exchange(1, msgs...)
		if c.status == 'E' {
			return want("25P02", 'E', code, status)
		}
		c.failed()
		return want("22012", c.status, code, status)
	case "batchLeak":
		if c.status != 'I' {
			return ""
		}
		// A session SET committed by a COMMIT in the same batch, then an
		// error: the proxy does not carry the SET, and nobody else sees it.
		msgs := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SET " + s.name + " = '" + s.value + "'"}, &pgproto3.Bind{}, &pgproto3.Execute{}}
		if s.alt {
			msgs = append(msgs, &pgproto3.Query{String: "COMMIT; SELECT 1/0"})
		} else {
			msgs = append(msgs, &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		}
		_, status, code := c.exchange(1, msgs...)
		return want("22012", 'I', code, status)
	case "pipeline":
		if c.status == 'E' {
			return ""
		}
		msgs := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Flush{}, &pgproto3.Parse{Query: modelCheck}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{}, &pgproto3.Sync{}}
		rows, status, code := c.exchange(1, msgs...)
		if v := want("", c.status, code, status); v != "" {
			return v
		}
		exp := []string{c.tenant, c.tenant, c.effective("application_name"), c.effective("extra_float_digits"), c.effective("work_mem")}
		if len(rows) != 1 || !slices.Equal(rows[0], exp) {
			return fmt.Sprintf("%s: pipeline observed %v, model expects %v", s, rows, exp)
		}
	case "errorThenSkipped":
		// An extended-protocol error answered before any Sync; what the
		// client sends next is ignored by the server until its Sync.
		if c.status == 'E' {
			return ""
		}
		_, _, code := c.exchange(0, &pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
		if code != "" {
			return fmt.Sprintf("%s: %s", s, code)
		}
		for {
			m, err := c.w.fe.Receive()
			if err != nil {
				return fmt.Sprintf("%s: waiting for the error: %v", s, err)
			}
			if er, ok := m.(*pgproto3.ErrorResponse); ok {
				if er.Code != "22012" {
					return fmt.Sprintf("%s: error %s %s", s, er.Code, er.Message)
				}
				break
			}
		}
		msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: modelCheck}}
		if s.alt {
			msgs = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: modelCheck}, &pgproto3.Bind{}, &pgproto3.Execute{}}
		}
		rows, status, code := c.exchange(1, append(msgs, &pgproto3.Sync{})...)
		c.failed()
		if len(rows) != 0 {
			return fmt.Sprintf("%s: a message sent after the error ran: %v", s, rows)
		}
		return want("", c.status, code, status)
	case "setPipelined":
		// A SET (or RESET) and a check pipelined behind it in one write.
		if c.status != 'I' {
			return ""
		}
		sql := "SET " + s.name + " = '" + s.value + "'"
		if s.alt {
			sql = "RESET " + s.name
		}
		rows, status, code := c.exchange(2, &pgproto3.Query{String: sql}, &pgproto3.Query{String: modelCheck})
		if s.alt {
			c.settings[s.name] = r.defaults[s.name]
		} else {
			c.settings[s.name] = s.value
		}
		if v := want("", 'I', code, status); v != "" {
			return v
		}
		exp := []string{c.tenant, c.tenant, c.effective("application_name"), c.effective("extra_float_digits"), c.effective("work_mem")}
		if len(rows) != 1 || !slices.Equal(rows[0], exp) {
			return fmt.Sprintf("%s: observed %v, model expects %v", s, rows, exp)
		}
	case "batchRollback":
		// A SET undone by a ROLLBACK in the same batch is not carried.
		if c.status != 'I' {
			return ""
		}
		_, status, code := c.exchange(1, &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SET " + s.name + " = '" + s.value + "'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		return want("", 'I', code, status)
	case "insertOther":
		other := modelTenants[(slices.Index(modelTenants, c.tenant)+1)%len(modelTenants)]
		sql := "INSERT INTO public.contacts (tenant_id, name) VALUES ('" + other + "', 'intruder')"
		msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
		if s.alt {
			msgs = extended(sql)
		}
		_, status, code := c.exchange(1, msgs...)
		if c.status == 'E' {
			return want("25P02", 'E', code, status)
		}
		c.failed()
		return want("42501", c.status, code, status)
	case "reconnect":
		if s.alt {
			c.w.hc.Conn.Close() // abrupt, possibly inside a transaction
		} else {
			c.w.send(&pgproto3.Terminate{})
			c.w.hc.Conn.Close()
		}
		n := r.login(c.tenant)
		n.settings = maps.Clone(r.defaults)
		r.clients[i] = n
	}
	return ""
}

// runModel replays steps on a fresh proxy and returns the first violation
// with its index.
func runModel(t *testing.T, pool int, steps []step) (int, string) {
	r := newModelRun(t, pool)
	for k, s := range steps {
		if v := r.do(s); v != "" {
			return k, v
		}
		if f := r.e.proxy.Server.StateAuditFailures(); len(f) > 0 {
			return k, fmt.Sprintf("%s: state audit: %s", s, f[0])
		}
	}
	return -1, ""
}

func modelSteps() int {
	if n, err := strconv.Atoi(os.Getenv("MULTIGRES_MODEL_STEPS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

func modelSeed() uint64 {
	if n, err := strconv.ParseUint(os.Getenv("MULTIGRES_MODEL_SEED"), 10, 64); err == nil {
		return n
	}
	return 1
}

func TestTxModelRandomSequences(t *testing.T) {
	for _, pool := range []int{1, 2} {
		t.Run(fmt.Sprintf("pool %d", pool), func(t *testing.T) {
			t.Parallel()
			seed := modelSeed()
			steps := genSteps(rand.New(rand.NewPCG(seed, uint64(pool))), modelSteps(), len(modelTenants))
			var at int
			var violation string
			t.Run("run", func(t *testing.T) { at, violation = runModel(t, pool, steps) })
			if violation == "" {
				return
			}
			short := shrinkModel(t, pool, steps[:at+1])
			var b strings.Builder
			for _, s := range short {
				b.WriteString("\n  " + s.String())
			}
			t.Fatalf("seed %d, pool %d: step %d: %s\nshortest failing sequence found (%d steps):%s", seed, pool, at, violation, len(short), b.String())
		})
	}
}

// shrinkModel removes chunks of steps while the sequence still fails,
// within a time budget.
func shrinkModel(t *testing.T, pool int, steps []step) []step {
	deadline := time.Now().Add(90 * time.Second)
	fails := func(cand []step) bool {
		var v string
		t.Run("shrink", func(t *testing.T) { _, v = runModel(t, pool, cand) })
		return v != ""
	}
	for chunk := len(steps) / 2; chunk >= 1 && time.Now().Before(deadline); chunk /= 2 {
		for i := 0; i+chunk <= len(steps) && time.Now().Before(deadline); {
			cand := append(slices.Clone(steps[:i]), steps[i+chunk:]...)
			if fails(cand) {
				steps = cand
				continue
			}
			i += chunk
		}
	}
	return steps
}
