package frontend

import (
	"errors"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// sqlGuard is the guard of one pool mode, behind the one guard seam
// (clientConn.guardMessage): it turns sqlguard's verdicts into the errors
// a client sees (guardError).
type sqlGuard struct {
	g *sqlguard.Guard
}

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

// Check returns the statement's verdict and its session effects (which
// transaction pooling tracks; session mode ignores them).
func (s *sqlGuard) Check(sql []byte) (*sqlguard.Effects, error) {
	fx, err := s.g.CheckTx(sql)
	return fx, guardError(err)
}

// guardError turns a guard verdict into the client's error. The SQLSTATE,
// hint and rule are the verdict's own (sqlguard decides them); other
// errors pass through.
func guardError(err error) error {
	var v *sqlguard.Violation
	if !errors.As(err, &v) {
		return err
	}
	return &wire.Error{Severity: wire.SeverityError, Code: v.Code, Message: v.Message, Hint: v.Hint, Rule: string(v.Rule)}
}
