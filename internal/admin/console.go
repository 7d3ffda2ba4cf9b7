package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// maxQuery caps a console message: no admin command is near it.
const maxQuery = 64 << 10

// result is what one command returns: rows for SHOW, just a tag otherwise.
type result struct {
	columns []string
	rows    [][]string
	tag     string
}

// command runs one console command with its arguments (words after the
// command name).
type command func(ctx context.Context, p Proxy, args []string) (*result, error)

// commands maps a command name (upper case) to its implementation. SHOW is
// dispatched again on its first argument through shows.
var commands = map[string]command{
	"SHOW":     show,
	"PAUSE":    pause,
	"RESUME":   resume,
	"RELOAD":   reload,
	"KILL":     kill,
	"SHUTDOWN": shutdown,
	"MOVE":     move,
	"REFRESH":  refresh,
}

var shows = map[string]command{
	"POOLS":   showPools,
	"CLIENTS": showClients,
	"SERVERS": showServers,
	"STATS":   showStats,
	"TENANTS": showTenants,
	"CONFIG":  showConfig,
	"VERSION": showVersion,
	"ROUTES":  showRoutes,
}

// Console serves one admin connection.
type Console struct {
	Proxy Proxy
	// Command, when set, wraps each Query message: it returns the context
	// the commands run in (the frontend cancels it on a CancelRequest) and
	// a function called once the answer, ReadyForQuery included, is
	// flushed. SHOW CLIENTS shows the console active in between.
	Command func(ctx context.Context) (context.Context, func())
}

// Serve answers messages from r on w until the client terminates or the
// connection fails. Only the simple query protocol is served: extended
// protocol messages get an error (and are skipped until Sync, as
// PostgreSQL does after an error).
func (c *Console) Serve(ctx context.Context, r *bufio.Reader, w *bufio.Writer) error {
	frames := wire.NewFrameReader(r, maxQuery)
	skipToSync := false
	for {
		typ, frame, err := frames.Next()
		if err != nil {
			var tl *wire.TooLargeError
			if errors.As(err, &tl) {
				_ = write(w, wire.Fatal(wire.CodeProtocolViolation, "message too large for the admin console").Response())
				_ = w.Flush()
			}
			return err
		}
		switch wire.ClientType(typ) {
		case wire.Terminate:
			return nil
		case wire.Query:
			var q pgproto3.Query
			if err := q.Decode(frame[5:]); err != nil {
				_ = write(w, wire.Fatal(wire.CodeProtocolViolation, "invalid message format").Response())
				_ = w.Flush()
				return fmt.Errorf("admin: decode query: %w", err)
			}
			cctx, done := ctx, func() {}
			if c.Command != nil {
				cctx, done = c.Command(ctx)
			}
			c.run(cctx, q.String, w)
			_ = write(w, &pgproto3.ReadyForQuery{TxStatus: wire.TxIdle})
			err := w.Flush()
			done()
			if err != nil {
				return fmt.Errorf("admin: write: %w", err)
			}
			continue
		case wire.Sync:
			skipToSync = false
			_ = write(w, &pgproto3.ReadyForQuery{TxStatus: wire.TxIdle})
		case wire.Flush:
			// Flush: nothing is pending.
		case wire.Parse, wire.Bind, wire.Describe, wire.Execute, wire.Close, wire.FunctionCall:
			if !skipToSync {
				skipToSync = wire.ClientType(typ) != wire.FunctionCall
				_ = write(w, errorResponse(wire.CodeFeatureNotSupported,
					"the admin console supports the simple query protocol only",
					"Use psql, or a driver in simple query mode (pgx: QueryExecModeSimpleProtocol)."))
				if wire.ClientType(typ) == wire.FunctionCall {
					_ = write(w, &pgproto3.ReadyForQuery{TxStatus: wire.TxIdle})
				}
			}
		default:
			_ = write(w, wire.Fatal(wire.CodeProtocolViolation, "unexpected message type %q on the admin console", typ).Response())
			_ = w.Flush()
			return fmt.Errorf("admin: unexpected message type %q", typ)
		}
		if frames.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("admin: write: %w", err)
			}
		}
	}
}

// run executes every ';'-separated command of a Query message in order,
// stopping at the first error, and writes the results.
func (c *Console) run(ctx context.Context, sql string, w *bufio.Writer) {
	ran := false
	for _, stmt := range strings.Split(sql, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		ran = true
		res, err := Execute(ctx, c.Proxy, stmt)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) {
				we = &wire.Error{Severity: wire.SeverityError, Code: wire.CodeInternalError, Message: err.Error()}
			}
			_ = write(w, we.Response())
			return
		}
		writeResult(w, res)
	}
	if !ran {
		_ = write(w, &pgproto3.EmptyQueryResponse{})
	}
}

// Execute parses and runs one console command (without ';').
func Execute(ctx context.Context, p Proxy, stmt string) (*result, error) {
	words := fields(stmt)
	if len(words) == 0 {
		return nil, syntaxError("empty command")
	}
	name := strings.ToUpper(words[0])
	cmd, ok := commands[name]
	if !ok {
		return nil, syntaxError(fmt.Sprintf("unknown admin console command %q", words[0]))
	}
	return cmd(ctx, p, words[1:])
}

func show(ctx context.Context, p Proxy, args []string) (*result, error) {
	if len(args) == 0 {
		return nil, syntaxError("SHOW needs an item")
	}
	what := strings.ToUpper(args[0])
	cmd, ok := shows[what]
	if !ok {
		return nil, syntaxError(fmt.Sprintf("unknown SHOW item %q", args[0]))
	}
	if len(args) > 1 {
		return nil, syntaxError(fmt.Sprintf("SHOW %s takes no arguments", what))
	}
	return cmd(ctx, p, nil)
}

// fields splits a command into words; a double-quoted word keeps its case
// and may contain spaces ("" is a literal quote), as identifiers do.
func fields(s string) []string {
	var out []string
	rs := []rune(strings.TrimSpace(s))
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		var b strings.Builder
		if rs[i] == '"' {
			i++
			for i < len(rs) {
				if rs[i] == '"' {
					if i+1 < len(rs) && rs[i+1] == '"' {
						b.WriteRune('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteRune(rs[i])
				i++
			}
		} else {
			for i < len(rs) && !unicode.IsSpace(rs[i]) {
				b.WriteRune(rs[i])
				i++
			}
		}
		out = append(out, b.String())
	}
	return out
}

// help lists the commands, for error hints.
func help() string {
	var items []string
	for k := range shows {
		items = append(items, "SHOW "+k)
	}
	sort.Strings(items)
	return "Commands: " + strings.Join(items, ", ") + ", PAUSE [db], RESUME [db], RELOAD, KILL <tenant>, SHUTDOWN, " +
		"MOVE TENANT <tenant> TO <cluster> [PAUSE | SWITCH], RESUME TENANT <tenant>, REFRESH TENANT <tenant> | TENANTS."
}

func syntaxError(msg string) error {
	return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeSyntaxError, Message: msg, Hint: help()}
}

func errorResponse(code, msg, hint string) *pgproto3.ErrorResponse {
	return (&wire.Error{Severity: wire.SeverityError, Code: code, Message: msg, Hint: hint}).Response()
}

// textOID is the type of every result column.
const textOID = 25

func writeResult(w *bufio.Writer, res *result) {
	if res.columns != nil {
		fds := make([]pgproto3.FieldDescription, len(res.columns))
		for i, c := range res.columns {
			fds[i] = pgproto3.FieldDescription{Name: []byte(c), DataTypeOID: textOID, DataTypeSize: -1, TypeModifier: -1}
		}
		_ = write(w, &pgproto3.RowDescription{Fields: fds})
		for _, row := range res.rows {
			vals := make([][]byte, len(row))
			for i, v := range row {
				vals[i] = []byte(v)
			}
			_ = write(w, &pgproto3.DataRow{Values: vals})
		}
	}
	_ = write(w, &pgproto3.CommandComplete{CommandTag: []byte(res.tag)})
}

func write(w *bufio.Writer, m pgproto3.BackendMessage) error {
	buf, err := m.Encode(nil)
	if err != nil {
		return fmt.Errorf("admin: encode: %w", err)
	}
	_, err = w.Write(buf)
	return err
}
