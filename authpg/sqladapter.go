package authpg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// SQLDB adapts a *sql.DB (opened with the "pgx" driver of
// github.com/jackc/pgx/v5/stdlib, or any Postgres driver) to DB, so New
// accepts it. Only what a Store needs is supported: Exec, Query, QueryRow
// and transactions with savepoints; CopyFrom, SendBatch, Prepare and large
// objects return ErrUnsupported.
func SQLDB(db *sql.DB) DB { return &sqlDB{db: db} }

// ErrUnsupported is returned by the SQLDB adapter for pgx-only features.
var ErrUnsupported = errors.New("authpg: not supported through the database/sql adapter")

type sqlExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type sqlDB struct{ db *sql.DB }

var (
	_ DB     = (*sqlDB)(nil)
	_ pgx.Tx = (*sqlTx)(nil)
)

func (d *sqlDB) Exec(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error) {
	return sqlExec(ctx, d.db, q, args)
}
func (d *sqlDB) Query(ctx context.Context, q string, args ...any) (pgx.Rows, error) {
	return sqlQuery(ctx, d.db, q, args)
}
func (d *sqlDB) QueryRow(ctx context.Context, q string, args ...any) pgx.Row {
	return sqlQueryRow(ctx, d.db, q, args)
}
func (d *sqlDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &sqlTx{tx: tx}, nil
}

func sqlExec(ctx context.Context, e sqlExecer, q string, args []any) (pgconn.CommandTag, error) {
	res, err := e.ExecContext(ctx, q, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		n = 0
	}
	// Only RowsAffected is meaningful on this tag.
	return pgconn.NewCommandTag(fmt.Sprintf("EXEC %d", n)), nil
}

func sqlQuery(ctx context.Context, e sqlExecer, q string, args []any) (pgx.Rows, error) {
	rows, err := e.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return &sqlRows{rows: rows}, nil
}

func sqlQueryRow(ctx context.Context, e sqlExecer, q string, args []any) pgx.Row {
	rows, err := sqlQuery(ctx, e, q, args)
	return &sqlRow{rows: rows, err: err}
}

// sqlTx is a database/sql transaction, or a savepoint inside one.
type sqlTx struct {
	// The embedded nil interface supplies any method pgx adds to Tx later;
	// calling one panics, which beats failing to compile.
	pgx.Tx
	tx     *sql.Tx
	sp     string // savepoint name when nested
	seq    *atomic.Int64
	closed bool
}

func (t *sqlTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if t.closed {
		return nil, pgx.ErrTxClosed
	}
	if t.seq == nil {
		t.seq = new(atomic.Int64)
	}
	name := fmt.Sprintf("authpg_sp_%d", t.seq.Add(1))
	if _, err := t.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	return &sqlTx{tx: t.tx, sp: name, seq: t.seq}, nil
}

func (t *sqlTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	if t.sp != "" {
		_, err := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+t.sp)
		return err
	}
	return t.tx.Commit()
}

func (t *sqlTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	if t.sp != "" {
		_, err := t.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+t.sp)
		return err
	}
	return t.tx.Rollback()
}

func (t *sqlTx) Exec(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error) {
	return sqlExec(ctx, t.tx, q, args)
}
func (t *sqlTx) Query(ctx context.Context, q string, args ...any) (pgx.Rows, error) {
	return sqlQuery(ctx, t.tx, q, args)
}
func (t *sqlTx) QueryRow(ctx context.Context, q string, args ...any) pgx.Row {
	return sqlQueryRow(ctx, t.tx, q, args)
}
func (t *sqlTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, ErrUnsupported
}
func (t *sqlTx) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	return errBatch{}
}
func (t *sqlTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (t *sqlTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, ErrUnsupported
}
func (t *sqlTx) Conn() *pgx.Conn { return nil }

type errBatch struct{ pgx.BatchResults }

func (errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, ErrUnsupported }
func (errBatch) Query() (pgx.Rows, error)         { return nil, ErrUnsupported }
func (errBatch) QueryRow() pgx.Row                { return &sqlRow{err: ErrUnsupported} }
func (errBatch) Close() error                     { return nil }

type sqlRows struct {
	pgx.Rows // nil; supplies methods pgx may add (see sqlTx)
	rows     *sql.Rows
	err      error
}

func (r *sqlRows) Close() { _ = r.rows.Close() }

// TypeMap is pgx's default map; values are decoded by database/sql here.
func (r *sqlRows) TypeMap() *pgtype.Map { return pgtype.NewMap() }
func (r *sqlRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}
func (r *sqlRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *sqlRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *sqlRows) Next() bool                                   { return r.rows.Next() }
func (r *sqlRows) Scan(dest ...any) error {
	if err := r.rows.Scan(dest...); err != nil {
		r.err = err
		return err
	}
	return nil
}
func (r *sqlRows) Values() ([]any, error) {
	cols, err := r.rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, nil
}
func (r *sqlRows) RawValues() [][]byte { return nil }
func (r *sqlRows) Conn() *pgx.Conn     { return nil }

type sqlRow struct {
	rows pgx.Rows
	err  error
}

// Scan behaves like pgx's: pgx.ErrNoRows when there is no row.
func (r *sqlRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
