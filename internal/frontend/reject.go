package frontend

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/txstate"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// sqlOf extracts the SQL text of a Query or Parse frame, in place.
func sqlOf(typ byte, frame []byte) ([]byte, error) {
	body := frame[5:]
	if wire.ClientType(typ) == wire.Parse {
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

// A refused message is replaced by one whose SQL is a random token, which
// the server rejects at parse time with a syntax error. The server thus
// does exactly what it does for any failed statement: it aborts an open
// transaction, and after a failed Parse it skips to Sync (so a client
// that described the statement first, as pgx does, sees the error at
// Parse). The relay then swaps that syntax error for the guard's error.
// Nothing the client or the guard wrote is ever put into SQL.
const refusalPrefix = txstate.RefusalPrefix

// refusalTokenHex is the length of a token's random part in hex digits.
const refusalTokenHex = 24

// maxPendingRefusals bounds remembered refusals: a refusal skipped by the
// server (after an earlier error in the same pipeline) never produces its
// error, so old entries are dropped.
const maxPendingRefusals = 64

// refusals maps a refusal token to the error the client must see.
type refusals struct {
	mu    sync.Mutex
	byTok map[string]*wire.Error
	order []string
	count atomic.Int32
}

func (r *refusals) add(tok string, we *wire.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byTok == nil {
		r.byTok = map[string]*wire.Error{}
	}
	if len(r.order) >= maxPendingRefusals {
		delete(r.byTok, r.order[0])
		r.order = r.order[1:]
	}
	r.byTok[tok] = we
	r.order = append(r.order, tok)
	r.count.Store(int32(len(r.order)))
}

func (r *refusals) take(tok string) *wire.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	we := r.byTok[tok]
	if we == nil {
		return nil
	}
	delete(r.byTok, tok)
	for i, t := range r.order {
		if t == tok {
			r.order = append(r.order[:i:i], r.order[i+1:]...)
			break
		}
	}
	r.count.Store(int32(len(r.order)))
	return we
}

// refuse substitutes a refused message and remembers its error.
func (c *clientConn) refuse(typ byte, frame []byte, cause error) []byte {
	tok := refusalPrefix + hex.EncodeToString(randomBytes(refusalTokenHex/2))
	we := *wire.ToClient(cause)
	we.Severity = wire.SeverityError
	c.refused.add(tok, &we)
	return refusalFrame(typ, frame, tok)
}

// refusalFrame is typ's message with the SQL replaced by tok. For Parse the
// statement name and parameter types are kept.
func refusalFrame(typ byte, frame []byte, tok string) []byte {
	if wire.ClientType(typ) != wire.Parse {
		return wire.Build(byte(wire.Query), []byte(tok), []byte{0})
	}
	body := frame[5:]
	nameEnd := bytes.IndexByte(body, 0) + 1
	rest := body[nameEnd:]
	queryEnd := bytes.IndexByte(rest, 0) + 1
	return wire.Build(byte(wire.Parse), body[:nameEnd], []byte(tok), []byte{0}, rest[queryEnd:])
}

// translateRefusal replaces the server's syntax error for a refusal token
// with the guard's error. Other errors pass unchanged.
func (c *clientConn) translateRefusal(frame []byte) []byte {
	var e pgproto3.ErrorResponse
	if err := e.Decode(frame[5:]); err != nil || e.Code != wire.CodeSyntaxError {
		return frame
	}
	// Find the token itself rather than rely on the message's wording or
	// quotes, which lc_messages may translate.
	i := strings.Index(e.Message, refusalPrefix)
	if i < 0 || len(e.Message) < i+len(refusalPrefix)+refusalTokenHex {
		return frame
	}
	tok := e.Message[i : i+len(refusalPrefix)+refusalTokenHex]
	we := c.refused.take(tok)
	if we == nil {
		return frame
	}
	out, err := we.Response().Encode(nil)
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
