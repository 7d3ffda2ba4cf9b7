package compat

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
)

// guardRefusals are statements the SQL guard refuses (42501) that carry a
// bind parameter, as an application or ORM would send them.
var guardRefusals = []struct{ sql, message string }{
	{"SELECT pg_notify('events', $1)", "pg_notify is not available on tenant connections: channel names are shared by all tenants"},
	{"SELECT set_config('app.current_tenant_id', $1, false)", ""},
}

// TestGuardRefusalWithBindParameters: a tenant statement the SQL guard
// refuses must come back as the guard's 42501 in every protocol, also when
// it carries bind parameters and the driver lets the server infer their
// types (pgx, lib/pq), alone or in the middle of a batch, and the batch
// must fail whole.
//
// Regression test for a proxy bug found by this suite (fails with the proxy
// at commit d1f70fd): a refused Parse was replaced by a Parse of a DO block
// keeping only the client's declared parameter types, so the substitute had
// zero parameters and the client got, instead of 42501:
//   - pgx exec mode: 08P01 "bind message supplies 1 parameters, but
//     prepared statement "" requires 0";
//   - pgx describe_exec / cache_statement / cache_describe: a client-side
//     "mismatched param and argument count" (the Describe said 0);
//   - lib/pq: "pq: got 1 parameters but the statement requires 0";
//   - after the failed batch pgx closed the connection.
//
// The statement was still refused (no isolation leak), but the guard's
// message and hint were lost. The simple protocol was never affected.
func TestGuardRefusalWithBindParameters(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		for _, m := range execModes {
			t.Run("pgx_"+m.name, func(t *testing.T) {
				t.Parallel()
				ctx := testCtx(t)
				acme := pgxConnect(t, e.tenantURL("acme"), withExecMode(m.mode))
				for _, r := range guardRefusals {
					_, err := acme.Exec(ctx, r.sql, "globex")
					checkRefusal(t, err, r.sql, r.message)
				}

				// The same refusal in the middle of a batch fails the whole
				// batch (one implicit transaction) with 42501.
				name := "guardfail-" + m.name
				b := &pgx.Batch{}
				b.Queue("INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "acme", name+"-before")
				b.Queue(guardRefusals[0].sql, "x")
				b.Queue("INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "acme", name+"-after")
				err := acme.SendBatch(ctx, b).Close()
				checkRefusal(t, err, "batch with "+guardRefusals[0].sql, guardRefusals[0].message)
				for _, n := range tenantRows(t, e, "acme") {
					if strings.HasPrefix(n, name) {
						t.Errorf("%s was committed by a batch that failed", n)
					}
				}
				checkIsolation(t, e, pgxClient(acme), "acme")
			})
		}
		t.Run("lib_pq", func(t *testing.T) {
			t.Parallel()
			db := openDB(t, "postgres", e.tenantURL("acme"))
			for _, r := range guardRefusals {
				_, err := db.ExecContext(testCtx(t), r.sql, "globex")
				checkRefusal(t, err, r.sql, r.message)
			}
			checkIsolation(t, e, sqlClient(db), "acme")
		})
	})
}

// checkRefusal reports (without stopping the test, so every path is shown)
// unless err is the guard's 42501 with message (any message when "").
func checkRefusal(t *testing.T, err error, what, message string) {
	t.Helper()
	var pgErr *pgconn.PgError
	var pqErr *pq.Error
	var code, msg string
	switch {
	case errors.As(err, &pgErr):
		code, msg = pgErr.Code, pgErr.Message
	case errors.As(err, &pqErr):
		code, msg = string(pqErr.Code), pqErr.Message
	}
	if code != "42501" || (message != "" && msg != message) {
		t.Errorf("%s: want the guard's 42501 %q, got %v", what, message, err)
	}
}
