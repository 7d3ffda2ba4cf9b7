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
		ContextSigning:   cfg.ContextSigning,
	})}
}

// newTxGuard is the guard of transaction-mode connections: the tenant
// rules when guard = on, and always the transaction-pooling rules.
func newTxGuard(cfg *config.Config) *sqlGuard {
	return &sqlGuard{g: sqlguard.New(sqlguard.Config{
		ContextVariables: guardProtected(cfg),
		DeniedFunctions:  cfg.GuardDeniedFunctions,
		TransactionMode:  true,
		PoolingOnly:      !cfg.Guard,
		ContextSigning:   cfg.ContextSigning,
	})}
}

func (s *sqlGuard) Check(_ byte, sql []byte) error {
	return guardError(s.g.CheckBytes(sql))
}

// CheckTx is Check that also returns the statement's session effects.
func (s *sqlGuard) CheckTx(_ byte, sql []byte) (*sqlguard.Effects, error) {
	fx, err := s.g.CheckTx(sql)
	return fx, guardError(err)
}

func guardError(err error) error {
	var v *sqlguard.Violation
	if !errors.As(err, &v) {
		return err
	}
	code := wire.CodeInsufficientPrivilege
	switch v.Rule {
	case "unparsable":
		code = wire.CodeSyntaxError
	case "session_set", "session_set_config", "session_advisory_lock", "cursor_with_hold", "sql_prepare", "temp_object",
		"session_setseed", "listen":
		code = wire.CodeFeatureNotSupported
	}
	return &wire.Error{Severity: wire.SeverityError, Code: code, Message: v.Message, Hint: guardHint(v), Rule: v.Rule}
}
