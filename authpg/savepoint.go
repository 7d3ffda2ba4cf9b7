package authpg

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// spDB runs each statement on a transaction inside its own savepoint. In
// Postgres a failed statement aborts the whole transaction; without this,
// an expected error such as ErrHandleTaken inside InTenant (or on a
// caller's pgx.Tx) would poison every later call. The price is two extra
// round trips per statement, paid only when the Store is on a transaction.
type spDB struct{ tx pgx.Tx }

var _ DB = (*spDB)(nil)

func (d *spDB) Begin(ctx context.Context) (pgx.Tx, error) { return d.tx.Begin(ctx) }

func (d *spDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	sp, err := d.tx.Begin(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := sp.Exec(ctx, sql, args...)
	if err != nil {
		_ = sp.Rollback(ctx)
		return tag, err
	}
	return tag, sp.Commit(ctx)
}

func (d *spDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	sp, err := d.tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := sp.Query(ctx, sql, args...)
	if err != nil {
		_ = sp.Rollback(ctx)
		return nil, err
	}
	return &spRows{Rows: rows, sp: sp, ctx: ctx}, nil
}

func (d *spDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &spRow{d: d, ctx: ctx, sql: sql, args: args}
}

type spRows struct {
	pgx.Rows
	sp     pgx.Tx
	ctx    context.Context
	closed bool
	err    error
}

func (r *spRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

// Close ends the savepoint: released on success, rolled back on error, so
// the enclosing transaction stays usable.
func (r *spRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	if r.Rows.Err() != nil {
		_ = r.sp.Rollback(r.ctx)
		return
	}
	r.err = r.sp.Commit(r.ctx)
}

func (r *spRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

type spRow struct {
	d    *spDB
	ctx  context.Context
	sql  string
	args []any
}

func (r *spRow) Scan(dest ...any) error {
	rows, err := r.d.Query(r.ctx, r.sql, r.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}
