package frontend

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/txstate"
)

// The state audit (state_audit = on; a testing aid). Transaction pooling
// rests on one invariant: when a server connection is handed to a client,
// its observable session state is exactly what multigres believes it is.
// With the audit on, every release of a reusable connection first reads
// the connection's real state in one round trip and compares it with the
// model: session settings (pg_settings with source 'session', values
// compared after the server canonicalises the model's), the role and
// session user, prepared statements, open cursors, advisory locks,
// listened channels, the transaction status and what the ParameterStatus
// messages reported. A difference is logged, recorded for tests
// (Server.StateAuditFailures) and the connection closed.
//
// Where the model says "unknown" (a switch failed, a batch's effects could
// not be known), the next switch resets everything of that kind, so the
// audit does not compare it.

// The audit calls multigres_audit.session_state, which the test harness
// installs in every database of its clusters (pgtest.StateAuditSQL).

// auditLog collects audit findings for the whole server.
type auditLog struct {
	mu       sync.Mutex
	failures []string
}

// StateAuditFailures returns every difference the state audit found so far.
func (s *Server) StateAuditFailures() []string {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return slices.Clone(s.audit.failures)
}

// auditState runs the audit on sc and reports whether it may be pooled.
func (r *txRelay) auditState(sc *pool.Conn) bool {
	c := r.c
	diffs, err := r.auditDiffs(sc)
	var pe *pgconn.PgError
	if err != nil && !errors.As(err, &pe) && !errors.Is(err, backend.ErrNotIdle) {
		// The connection failed under the audit (a server restart): it
		// is closed, which is all the audit would have done.
		c.logger().Info("state audit: the server connection failed; closing it", "err", err)
		return false
	}
	if errors.Is(err, errAuditNotRun) {
		// The client's own short statement_timeout, which the model knows
		// of, cancelled even the statement that turns it off, every time
		// (a loaded machine): the state is not known, so the connection
		// is closed, but nothing was found to differ.
		c.logger().Warn("state audit: could not run under the client's short statement_timeout; closing the connection", "err", err)
		return false
	}
	if err != nil {
		diffs = append(diffs, "audit failed: "+err.Error())
	}
	if len(diffs) == 0 {
		return true
	}
	msg := fmt.Sprintf("server pid %d released by client %d (tenant %q): %s", sc.PID, c.id, c.tl.name, strings.Join(diffs, "; "))
	c.srv.audit.mu.Lock()
	if len(c.srv.audit.failures) < 1000 {
		c.srv.audit.failures = append(c.srv.audit.failures, msg)
	}
	c.srv.audit.mu.Unlock()
	c.logger().Error("state audit: a server connection differs from multigres' model; closing it", "diff", msg)
	return false
}

// auditModel is what multigres believes of a connection's session.
type auditModel struct {
	exact  map[string]string // settings compared as text (custom variables, MACs)
	canon  map[string]string // settings compared after the server canonicalises them
	role   string            // "" when the context is unknown
	ctxOK  bool
	setsOK bool
}

func (r *txRelay) auditModel(sv *txstate.Server) auditModel {
	cfg := r.m.Config()
	m := auditModel{exact: map[string]string{}, canon: map[string]string{},
		ctxOK: sv.Context != "" && sv.Context == cfg.Key, setsOK: sv.SettingsKnown()}
	if m.ctxOK {
		ctx := cfg.Context
		for i, v := range ctx.Variables {
			if strings.Contains(v, ".") {
				m.exact[strings.ToLower(v)] = ctx.Values[i]
			} else {
				m.canon[strings.ToLower(v)] = ctx.Values[i]
			}
		}
		if cfg.MACs != nil {
			for i, mac := range cfg.MACs(sv.PID) {
				m.exact[strings.ToLower(ctx.MACNames[i])] = mac
			}
		}
		m.role = ctx.Role
	}
	if m.setsOK {
		maps.Copy(m.canon, sv.Settings)
	}
	return m
}

// auditDiffs reads sc's session state and lists how it differs from the
// model.
func (r *txRelay) auditDiffs(sc *pool.Conn) ([]string, error) {
	sv := r.model(sc)
	m := r.auditModel(sv)
	var timer *sessionTimer
	if txstate.NeedsTimerReset(sv.Settings, nil) {
		// The audit would run under the client's own short timeout: turn
		// it off, and compare the value found with the model separately.
		var err error
		if timer, err = pauseStatementTimeout(sc, sv); err != nil {
			return nil, fmt.Errorf("%w: %w", errAuditNotRun, err)
		}
		timer.model, timer.inModel = m.canon["statement_timeout"]
		delete(m.canon, "statement_timeout")
	}
	canon := m.canon
	if timer != nil {
		canon = maps.Clone(m.canon)
		canon["statement_timeout"] = auditDefault
		if timer.inModel {
			canon["statement_timeout"] = timer.model
		}
	}
	rows, err := auditQuery(sc, sv, canon)
	if err != nil {
		return nil, fmt.Errorf("audit query (statement_timeout paused: %v): %w", timer != nil, err)
	}
	var timerDiff string
	if timer != nil {
		if err := timer.restore(sc, sv); err != nil {
			return nil, fmt.Errorf("restoring statement_timeout after the audit: %w", err)
		}
		rows, timerDiff = timer.check(rows)
	}
	var diffs []string
	if !slices.ContainsFunc(rows, func(r [3]string) bool { return r[0] == "user" }) {
		// Its last row is missing: what was read was not (all) the
		// audit's own answer, so the connection is out of step.
		diffs = append(diffs, "the audit's answer is incomplete: the connection's answers are out of step with its requests")
	}
	if timerDiff != "" {
		diffs = append(diffs, timerDiff)
	}

	actual := map[string]string{}
	prepared := map[string]bool{}
	for _, r := range rows {
		switch r[0] {
		case "setting":
			actual[strings.ToLower(r[1])] = r[2]
		case "default":
			// Marked as set by the session but at its default value (a
			// PostgreSQL quirk after a reset and a local set in one
			// transaction): what the model expects of a setting it does
			// not list, and still compared when it does.
			name := strings.ToLower(r[1])
			_, exact := m.exact[name]
			if _, canon := m.canon[name]; canon || exact {
				actual[name] = r[2]
			}
		case "canon", "user", "report":
		case "prepared":
			prepared[r[1]] = true
		default: // cursor, lock, listen: none may outlive a transaction
			diffs = append(diffs, fmt.Sprintf("%s %s (%s) left in the session", r[0], r[1], r[2]))
		}
	}
	diffs = append(diffs, m.settingDiffs(actual, rows)...)
	diffs = append(diffs, preparedDiffs(sv, prepared)...)
	diffs = append(diffs, identityDiffs(r.c.ident.Role, sc, m, rows)...)
	return diffs, nil
}

// settingDiffs compares the session-level settings.
func (m auditModel) settingDiffs(actual map[string]string, rows [][3]string) []string {
	var diffs []string
	for _, r := range rows {
		if r[0] != "canon" {
			continue
		}
		name := strings.ToLower(r[1])
		if got, ok := actual[name]; !ok || got != r[2] {
			diffs = append(diffs, fmt.Sprintf("setting %s is %q, multigres believes %q", name, got, r[2]))
		}
	}
	for name, got := range actual {
		if want, ok := m.exact[name]; ok {
			if got != want {
				diffs = append(diffs, fmt.Sprintf("setting %s is %q, multigres believes %q", name, got, want))
			}
			continue
		}
		_, canon := m.canon[name]
		switch {
		case canon, strings.HasPrefix(name, "multigres_fp."):
		case !m.ctxOK && (strings.Contains(name, ".") || name == "role"):
		case !m.setsOK && sqlguard.IsTracked(name):
		default:
			diffs = append(diffs, fmt.Sprintf("session setting %s = %q that multigres does not know of", name, got))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// preparedDiffs compares the server's prepared statements with sc's
// record of them.
func preparedDiffs(sc *txstate.Server, onServer map[string]bool) []string {
	model := map[string]bool{}
	for _, n := range sc.Prepared.Names() {
		model[n] = true
	}
	for n := range sc.Internal {
		model[n] = true
	}
	for n := range sc.Orphans {
		model[n] = true
	}
	var diffs []string
	for n := range onServer {
		if !model[n] {
			diffs = append(diffs, fmt.Sprintf("prepared statement %s on the server that multigres does not know of", n))
		}
	}
	for n := range model {
		if !onServer[n] {
			diffs = append(diffs, fmt.Sprintf("prepared statement %s missing on the server", n))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// identityDiffs compares the role and the reported parameters.
func identityDiffs(loginRole string, sc *pool.Conn, m auditModel, rows [][3]string) []string {
	var diffs []string
	for _, r := range rows {
		switch r[0] {
		case "user":
			if m.role != "" && r[1] != m.role {
				diffs = append(diffs, fmt.Sprintf("current_user is %q, multigres believes %q", r[1], m.role))
			}
			if r[2] != loginRole {
				diffs = append(diffs, fmt.Sprintf("session_user is %q, not the login role %q", r[2], loginRole))
			}
		case "report":
			for _, p := range sc.Params {
				if strings.EqualFold(p.Name, r[1]) && p.Value != r[2] {
					diffs = append(diffs, fmt.Sprintf("parameter %s was reported as %q but is %q", p.Name, p.Value, r[2]))
				}
			}
		}
	}
	return diffs
}

// auditQuery runs the audit on sc and returns its rows (a server left in a
// transaction is backend.ErrNotIdle). The model's settings travel as literals in
// a simple query (standard_conforming_strings is on on every server
// connection multigres uses), so that no portal of the audit's own shows
// in pg_cursors.
func auditQuery(sc *pool.Conn, sv *txstate.Server, canon map[string]string) ([][3]string, error) {
	names := slices.Sorted(maps.Keys(canon))
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = canon[n]
	}
	sql := "SELECT kind, name, detail FROM multigres_audit.session_state(" + textArray(names) + ", " + textArray(vals) + ")" +
		" UNION ALL SELECT 'user', current_user::text, session_user::text"
	return runAuditSQL(sc, sv, sql)
}

// runAuditSQL runs a simple query of the audit on sc and returns its rows
// (the first three columns, NULL as "").
func runAuditSQL(sc *pool.Conn, sv *txstate.Server, sql string) ([][3]string, error) {
	sv.OwnQueryRan()
	rows, err := sc.SimpleQuery(sql, 10*time.Second)
	if err != nil {
		return nil, err
	}
	out := make([][3]string, len(rows))
	for i, r := range rows {
		if len(r) > 3 {
			return nil, errors.New("malformed audit row")
		}
		copy(out[i][:], r)
	}
	return out, nil
}

// textArray is a text[] literal of vals.
func textArray(vals []string) string {
	var b strings.Builder
	b.WriteString("ARRAY[")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
	}
	b.WriteString("]::text[]")
	return b.String()
}

// errAuditNotRun: the audit could not start because the session's known
// short statement_timeout cancelled the statement that pauses it.
var errAuditNotRun = errors.New("the state audit could not pause the session's statement_timeout")

// auditDefault asks the audit function for a setting's default (RESET)
// value in place of a model value.
const auditDefault = "multigres:default"

// sessionTimer is a connection's statement_timeout as the audit found it
// before turning it off for its own query, and the model's value.
type sessionTimer struct {
	found   string // current_setting before the audit
	model   string
	inModel bool // the model lists statement_timeout (else: the default)
}

// pauseStatementTimeout reads statement_timeout and sets it to 0 in one
// trivial statement, retried while the short timeout cancels even that.
func pauseStatementTimeout(sc *pool.Conn, sv *txstate.Server) (*sessionTimer, error) {
	rows, err := auditRetry(sc, sv, "SELECT pg_catalog.current_setting('statement_timeout'), "+
		"pg_catalog.set_config('statement_timeout', '0', false)")
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, errors.New("reading statement_timeout: no row")
	}
	return &sessionTimer{found: rows[0][0]}, nil
}

// restore puts statement_timeout back as the model has it (the model is
// what the next client's switch starts from; a difference fails anyway).
func (st *sessionTimer) restore(sc *pool.Conn, sv *txstate.Server) error {
	value := "NULL"
	if st.inModel {
		value = "'" + strings.ReplaceAll(st.model, "'", "''") + "'"
	}
	_, err := auditRetry(sc, sv, "SELECT pg_catalog.set_config('statement_timeout', "+value+", false)")
	return err
}

// check compares the value found before the audit with the model's
// canonical value (or the default), and drops the audit's own view of
// statement_timeout (the 0 it set) from rows.
func (st *sessionTimer) check(rows [][3]string) ([][3]string, string) {
	out := rows[:0]
	diff := ""
	for _, r := range rows {
		if !strings.EqualFold(r[1], "statement_timeout") {
			out = append(out, r)
			continue
		}
		if r[0] == "canon" && r[2] != st.found {
			diff = fmt.Sprintf("setting statement_timeout is %q, multigres believes %q", st.found, r[2])
		}
	}
	return out, diff
}

// auditRetry runs a one-row query, retrying up to 20 times when it fails
// (a millisecond statement_timeout can cancel even a trivial statement).
func auditRetry(sc *pool.Conn, sv *txstate.Server, sql string) ([][3]string, error) {
	var err error
	for range 20 {
		var rows [][3]string
		if rows, err = runAuditSQL(sc, sv, sql); err == nil {
			return rows, nil
		}
	}
	return nil, err
}
