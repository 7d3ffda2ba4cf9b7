package wire

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Severity values of an ErrorResponse.
const (
	SeverityError = "ERROR"
	SeverityFatal = "FATAL"
)

// Error is an error that a client sees as an ErrorResponse. Internal code
// returns ordinary wrapped errors; only the wire edge (or code that decides
// what the client must read, such as username validation) builds an Error.
type Error struct {
	Severity string
	Code     string
	Message  string
	Detail   string
	Hint     string
	Rule     string // for metrics: which check produced it (never sent)
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s (%s) %s", e.Severity, e.Message, e.Code, e.Detail)
	}
	return fmt.Sprintf("%s: %s (%s)", e.Severity, e.Message, e.Code)
}

// Fatal builds a FATAL error with code and message.
func Fatal(code, format string, args ...any) *Error {
	return &Error{Severity: SeverityFatal, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithDetail returns e with Detail set.
func (e *Error) WithDetail(detail string) *Error { e.Detail = detail; return e }

// WithHint returns e with Hint set.
func (e *Error) WithHint(hint string) *Error { e.Hint = hint; return e }

// Response converts e to the protocol message.
func (e *Error) Response() *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{
		Severity:            e.Severity,
		SeverityUnlocalized: e.Severity,
		Code:                e.Code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
	}
}

// ToClient maps any error to the Error a client should see. Errors carrying
// a wire.Error or a server's *pgconn.PgError keep their code; anything else
// becomes a FATAL connection failure whose message says what to check,
// without internals such as addresses or credentials.
func ToClient(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &Error{Severity: SeverityFatal, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
	}
	return Fatal(CodeConnectionFailure, "multigres could not complete the connection to the upstream server").
		WithHint("Check that PostgreSQL is running and reachable from multigres; the multigres log has the cause.")
}
