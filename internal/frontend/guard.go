package frontend

import (
	"errors"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// sqlGuard adapts sqlguard.Guard to the Guard seam and maps its verdicts
// to the errors a client sees: 42501 insufficient_privilege, or 42601 for
// a statement the guard could not parse.
type sqlGuard struct {
	g *sqlguard.Guard
}

var _ Guard = (*sqlGuard)(nil)

func newSQLGuard(cfg *config.Config) *sqlGuard {
	return &sqlGuard{g: sqlguard.New(sqlguard.Config{
		ContextVariables: guardProtected(cfg),
		DeniedFunctions:  cfg.GuardDeniedFunctions,
	})}
}

func (s *sqlGuard) Check(_ byte, sql []byte) error {
	err := s.g.CheckBytes(sql)
	var v *sqlguard.Violation
	if !errors.As(err, &v) {
		return err
	}
	code := wire.CodeInsufficientPrivilege
	if v.Rule == "unparsable" {
		code = wire.CodeSyntaxError
	}
	return &wire.Error{Severity: wire.SeverityError, Code: code, Message: v.Message, Hint: guardHint(v), Rule: v.Rule}
}
