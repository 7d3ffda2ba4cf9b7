package frontend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// sqlOf extracts the SQL text of a Query or Parse frame, in place.
func sqlOf(typ byte, frame []byte) ([]byte, error) {
	body := frame[5:]
	if typ == 'P' {
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return nil, errors.New("unterminated statement name")
		}
		body = body[i+1:]
	}
	i := bytes.IndexByte(body, 0)
	if i < 0 {
		return nil, errors.New("unterminated query string")
	}
	return body[:i], nil
}

// rejectFrame builds a replacement for a refused message: a statement that
// raises the refusal on the server itself. For Parse the statement name is
// kept, so the client's later Bind/Describe of it fail as they would after a
// failed Parse.
func rejectFrame(typ byte, frame []byte, cause error) []byte {
	we := wire.ToClient(cause)
	return buildReject(typ, frame, we)
}

func buildReject(typ byte, frame []byte, we *wire.Error) []byte {
	sql := "DO $multigres$ BEGIN RAISE EXCEPTION USING ERRCODE = " + quoteLiteral(we.Code) +
		", MESSAGE = " + quoteLiteral(we.Message) + ", HINT = " + quoteLiteral(we.Hint) + "; END $multigres$"
	if typ == 'Q' {
		return buildFrame('Q', []byte(sql), []byte{0})
	}
	body := frame[5:]
	name := body[:bytes.IndexByte(body, 0)+1]
	return buildFrame('P', name, []byte(sql), []byte{0, 0, 0})
}

func buildFrame(typ byte, parts ...[]byte) []byte {
	n := 4
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 5, n+1)
	out[0] = typ
	binary.BigEndian.PutUint32(out[1:], uint32(n))
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", "''") + "'"
}

// refusalWhere is the CONTEXT PostgreSQL attaches to the substituted
// statement's error; it describes multigres's mechanism, not the client's
// statement, so the relay removes it.
const refusalWhere = "PL/pgSQL function inline_code_block line 1 at RAISE"

// refuse substitutes a refused message and remembers to clean its error.
func (c *clientConn) refuse(typ byte, frame []byte, cause error) []byte {
	c.refusals.Add(1)
	return rejectFrame(typ, frame, cause)
}

// stripRefusalContext drops the CONTEXT of an ErrorResponse raised by a
// substituted statement. Other errors pass unchanged.
func (c *clientConn) stripRefusalContext(frame []byte) []byte {
	var e pgproto3.ErrorResponse
	if err := e.Decode(frame[5:]); err != nil || e.Where != refusalWhere || e.Code != wire.CodeInsufficientPrivilege && e.Code != wire.CodeSyntaxError {
		return frame
	}
	c.refusals.Add(-1)
	e.Where = ""
	out, err := e.Encode(nil)
	if err != nil {
		return frame
	}
	return out
}
