package citus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// step is one request of a protocol scenario: messages sent in one write,
// then the answers read up to the wait-th ReadyForQuery (or, with
// untilComplete, up to the first CommandComplete).
type step struct {
	msgs          []pgproto3.FrontendMessage
	wait          int
	untilComplete bool
}

func query(sql string) step {
	return step{msgs: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, wait: 1}
}

// pbe is Parse/Bind/Execute of sql as the unnamed statement and portal.
func pbe(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}}
}

// batch is the extended-protocol statements sqls, then one Sync.
func batch(sqls ...string) step {
	var msgs []pgproto3.FrontendMessage
	for _, s := range sqls {
		msgs = append(msgs, pbe(s)...)
	}
	return step{msgs: append(msgs, &pgproto3.Sync{}), wait: 1}
}

// scenarios are requests whose answers do not depend on the tenant's data:
// through multigres on Citus they must be exactly PostgreSQL's own.
var scenarios = map[string][]step{
	"simple query":                                 {query("SELECT 1")},
	"multi-statement query":                        {query("SELECT 1; SELECT 2")},
	"failed query":                                 {query("SELECT 1/0"), query("SELECT 2")},
	"empty query":                                  {query("")},
	"explicit block with savepoint":                {query("BEGIN"), query("SELECT 1"), query("SAVEPOINT a"), query("SELECT 1/0"), query("ROLLBACK TO SAVEPOINT a"), query("SELECT 2"), query("COMMIT")},
	"isolation level kept":                         {query("BEGIN ISOLATION LEVEL SERIALIZABLE"), query("SHOW transaction_isolation"), query("COMMIT")},
	"commit outside a block":                       {query("COMMIT"), query("ROLLBACK")},
	"failed block committed":                       {query("BEGIN"), query("SELECT 1/0"), query("SELECT 1"), query("COMMIT")},
	"savepoint outside a block":                    {query("SAVEPOINT a")},
	"pipelined simple queries":                     {{msgs: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Query{String: "SELECT 1/0"}, &pgproto3.Query{String: "SELECT 3"}}, wait: 3}},
	"extended statement":                           {batch("SELECT 1")},
	"extended failure":                             {batch("SELECT 1", "SELECT 1/0", "SELECT 2"), batch("SELECT 3")},
	"extended BEGIN after a statement":             {batch("SELECT 1", "BEGIN", "SELECT 2"), query("SHOW transaction_isolation"), query("COMMIT")},
	"extended COMMIT after a statement":            {batch("SELECT 1", "COMMIT", "SELECT 2")},
	"extended savepoint after a statement":         {batch("SELECT 1", "SAVEPOINT a", "SELECT 2"), query("SELECT 3")},
	"simple savepoint pipelined after a statement": {{msgs: append(pbe("SELECT 1"), &pgproto3.Query{String: "SAVEPOINT a"}), wait: 1}, query("SELECT 2")},
	"simple BEGIN pipelined after a statement":     {{msgs: append(pbe("SELECT 1"), &pgproto3.Query{String: "BEGIN"}), wait: 1}, query("SHOW transaction_isolation"), query("COMMIT")},
	"simple COMMIT pipelined after a statement":    {{msgs: append(pbe("SELECT 1"), &pgproto3.Query{String: "COMMIT"}), wait: 1}, query("SELECT 2")},
	"simple query pipelined after a statement":     {{msgs: append(pbe("SELECT 1"), &pgproto3.Query{String: "SELECT 1/0"}), wait: 1}, query("SELECT 2")},
	"extended block":                               {batch("BEGIN"), batch("SELECT 1"), batch("SELECT 1/0", "COMMIT", "SELECT 2"), query("ROLLBACK")},
	"extended block committed":                     {batch("BEGIN", "SELECT 1"), batch("COMMIT", "SELECT 2"), query("SELECT 3")},
	"extended flush": {{msgs: append(pbe("SELECT 1"), &pgproto3.Flush{}), untilComplete: true},
		{msgs: []pgproto3.FrontendMessage{&pgproto3.Sync{}}, wait: 1}},
	"named statement reused": {{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s1", Query: "SELECT 1"},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}}, wait: 3}},
	"unnamed statement bound twice": {{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT $1::int + 1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("3")}}, &pgproto3.Execute{}, &pgproto3.Sync{}}, wait: 2}},
}

// TestClientSeesPostgreSQLsAnswers runs every scenario straight against
// the coordinator (as the tenant role, without multigres) and through
// multigres in both pool modes, and compares the transcripts message by
// message: command tags, rows, errors, notices and every ReadyForQuery's
// status. multigres' BEGIN, SET LOCALs and COMMIT must not show.
func TestClientSeesPostgreSQLsAnswers(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	direct := w.citus.Coordinator.URL(proxytest.AppUser, proxytest.AppUserPassword, w.db)
	for name, steps := range scenarios {
		for _, pool := range poolModes {
			t.Run(pool+"/"+name, func(t *testing.T) {
				t.Parallel()
				want := transcript(t, direct, steps)
				got := transcript(t, proxytest.URL(w.proxies[pool].Addr, "app_user.acme", proxytest.AppUserPassword, w.db), steps)
				if got != want {
					t.Fatalf("through multigres:\n%s\nPostgreSQL:\n%s", got, want)
				}
			})
		}
	}
}

// transcript connects to url, runs the steps on the raw protocol and
// renders every answer.
func transcript(t *testing.T, url string, steps []step) string {
	t.Helper()
	ctx := testCtx(t)
	pc, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	_ = hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	fe := hc.Frontend
	var out strings.Builder
	for i, st := range steps {
		fmt.Fprintf(&out, "-- request %d\n", i+1)
		for _, m := range st.msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		readies := 0
		for readies < st.wait || st.untilComplete {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatalf("receive: %v\n%s", err, out.String())
			}
			switch m := msg.(type) {
			case *pgproto3.ReadyForQuery:
				readies++
				fmt.Fprintf(&out, "Z %c\n", m.TxStatus)
			case *pgproto3.CommandComplete:
				fmt.Fprintf(&out, "C %s\n", m.CommandTag)
				if st.untilComplete {
					st.untilComplete = false
				}
			case *pgproto3.DataRow:
				fmt.Fprintf(&out, "D %q\n", m.Values)
			case *pgproto3.ErrorResponse:
				fmt.Fprintf(&out, "E %s %s %s\n", m.Severity, m.Code, m.Message)
			case *pgproto3.NoticeResponse:
				fmt.Fprintf(&out, "N %s %s %s\n", m.Severity, m.Code, m.Message)
			case *pgproto3.RowDescription:
				fmt.Fprintf(&out, "T %d\n", len(m.Fields))
			default:
				fmt.Fprintf(&out, "%T\n", m)
			}
		}
	}
	return out.String()
}
