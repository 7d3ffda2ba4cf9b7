package frontend

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
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
	// The message may quote client text (a function name), so it is quoted
	// as an E'' literal (safe whatever standard_conforming_strings says)
	// inside a dollar-quoted body whose tag is random per refusal.
	tag := "$mg" + hex.EncodeToString(randomBytes(8)) + "$"
	sql := "DO " + tag + " BEGIN RAISE EXCEPTION USING ERRCODE = " + quoteLiteral(we.Code) +
		", MESSAGE = " + quoteLiteral(we.Message) + ", HINT = " + quoteLiteral(we.Hint) + "; END " + tag
	if typ == 'Q' {
		return buildFrame('Q', []byte(sql), []byte{0})
	}
	// Parse: keep the statement name and the declared parameter types, so
	// a Bind with the client's parameters is accepted and the refusal is
	// raised at Execute.
	body := frame[5:]
	nameEnd := bytes.IndexByte(body, 0) + 1
	rest := body[nameEnd:]
	queryEnd := bytes.IndexByte(rest, 0) + 1
	return buildFrame('P', body[:nameEnd], []byte(sql), []byte{0}, rest[queryEnd:])
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

// quoteLiteral writes s as an E'...' literal: backslashes and quotes doubled,
// NULs and dollar signs dropped (no dollar-quote tag can be completed).
func quoteLiteral(s string) string {
	r := strings.NewReplacer("\x00", "", "$", "", "\\", "\\\\", "'", "''")
	return "E'" + r.Replace(s) + "'"
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

var errUnsafeParameter = errors.New("server reported a client_encoding or standard_conforming_strings under which the SQL guard cannot read statements; closing")

// unsafeParameter reports a ParameterStatus that would make the server read
// SQL differently from the guard: an ASCII-unsafe client_encoding, or
// standard_conforming_strings off. The guard refuses the statements that
// set them; this catches any other path.
func (c *clientConn) unsafeParameter(frame []byte) bool {
	var ps pgproto3.ParameterStatus
	if err := ps.Decode(frame[5:]); err != nil {
		return true
	}
	switch ps.Name {
	case "client_encoding":
		return wire.UnsafeClientEncoding(ps.Value)
	case "standard_conforming_strings":
		return ps.Value != "on"
	}
	return false
}
