package pgxhook

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	pgentra "github.com/pgentra/pgentra/go"
)

// Neither pgx nor pgxpool offers a hook that can retry a failed login (pgconn stops at SQLSTATE
// 28P01, and pgxpool returns a failed connection's error from Acquire), so the retry lives here:
// Connect for one connection, and Pool for a pool. The hook that sees the refusal (OnPgError,
// set by BeforeConnect) only tells the connector, so that the next connection of any pool gets
// a new token.

// refused reports whether err is a failed login that pgentra says to try once more
// (Connector.ConnectFailed with the server's SQLSTATE: the core drops a refused token unless
// another connection already replaced it, and keeps a token it fetched right after a refusal,
// so a wrong role does not cost an identity request per connection). The token sent is the
// password of the configuration pgx reports in its *pgconn.ConnectError.
func refused(c *pgentra.Connector, err error) bool {
	var ce *pgconn.ConnectError
	if err == nil || !errors.As(err, &ce) || ce.Config == nil || ce.Config.Password == "" {
		return false
	}
	return c.ConnectFailed(ce.Config.Password, sqlstateOf(err), false)
}

// sqlstateOf is the server's SQLSTATE in err, "" when the server sent no error (pgx reports
// every server error as a *pgconn.PgError, so then the server did not judge the password).
func sqlstateOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// watchLogin makes cfg.OnPgError tell c about a server error that arrives while logging in
// (before the backend key data, so PID is still 0), then run the handler cfg had. pgx calls
// OnPgError for the refusal of a login but lets no hook retry it: this is what lets a pool made
// with pgxpool.NewWithConfig recover. Its Acquire that met the refusal fails, and the refused
// token is dropped, so the next connection logs in with a new one.
func watchLogin(c *pgentra.Connector, cfg *pgx.ConnConfig) {
	prev, password := cfg.OnPgError, cfg.Password
	cfg.OnPgError = func(pc *pgconn.PgConn, pe *pgconn.PgError) bool {
		if pc.PID() == 0 && password != "" {
			c.ConnectFailed(password, pe.Code, false)
		}
		return prev == nil || prev(pc, pe)
	}
}

// Connect opens one pgx connection with cfg and BeforeConnect(c) (cfg is not modified). When the
// server refuses the token (pgentra.Connector.ConnectFailed says so), the connection is made once
// more with a current one.
func Connect(ctx context.Context, c *pgentra.Connector, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	once := func() (*pgx.Conn, error) {
		own := cfg.Copy()
		if err := BeforeConnect(c)(ctx, own); err != nil {
			return nil, err
		}
		return pgx.ConnectConfig(ctx, own)
	}
	conn, err := once()
	if refused(c, err) {
		return once()
	}
	return conn, err
}

// Pool is a *pgxpool.Pool whose methods, when the server refuses the token a new connection
// sent (e.g. after the identity was deleted and created again; pgentra.Connector.ConnectFailed
// decides), try once more with a current one. A refusal happens while a connection is
// made, before any statement runs, so the second try never repeats work. The embedded
// *pgxpool.Pool stays available for what Pool does not wrap; its own methods do not retry.
type Pool struct {
	*pgxpool.Pool
	c *pgentra.Connector
}

// NewPool creates a pool from cfg (from PoolConfig, or your own with cfg.BeforeConnect set to
// BeforeConnect(c)) that recovers from a refused token as described at Pool.
func NewPool(ctx context.Context, c *pgentra.Connector, cfg *pgxpool.Config) (*Pool, error) {
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Pool{Pool: p, c: c}, nil
}

// again runs f, and once more when its error is a refused token.
func again[T any](p *Pool, f func() (T, error)) (T, error) {
	v, err := f()
	if refused(p.c, err) {
		return f()
	}
	return v, err
}

// Acquire returns a connection from the pool (see pgxpool.Pool.Acquire).
func (p *Pool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	return again(p, func() (*pgxpool.Conn, error) { return p.Pool.Acquire(ctx) })
}

// AcquireFunc acquires a connection, calls f with it and releases it.
func (p *Pool) AcquireFunc(ctx context.Context, f func(*pgxpool.Conn) error) error {
	conn, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return f(conn)
}

// Exec acquires a connection, executes sql and releases the connection.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return again(p, func() (pgconn.CommandTag, error) { return p.Pool.Exec(ctx, sql, args...) })
}

// Query acquires a connection and runs sql; the connection is released when the rows are closed.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return again(p, func() (pgx.Rows, error) { return p.Pool.Query(ctx, sql, args...) })
}

// QueryRow acquires a connection and runs sql; the connection is released by Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	conn, err := p.Acquire(ctx)
	if err != nil {
		return errRow{err}
	}
	return &releasingRow{row: conn.QueryRow(ctx, sql, args...), conn: conn}
}

// SendBatch acquires a connection and sends b; the connection is released when the results are
// closed.
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	conn, err := p.Acquire(ctx)
	if err != nil {
		return errBatch{err}
	}
	return &releasingBatch{BatchResults: conn.SendBatch(ctx, b), conn: conn}
}

// Begin starts a transaction on a new or idle connection (see pgxpool.Pool.Begin).
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	return again(p, func() (pgx.Tx, error) { return p.Pool.Begin(ctx) })
}

// BeginTx starts a transaction with txOptions (see pgxpool.Pool.BeginTx).
func (p *Pool) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	return again(p, func() (pgx.Tx, error) { return p.Pool.BeginTx(ctx, txOptions) })
}

// CopyFrom acquires a connection and runs COPY FROM (see pgxpool.Pool.CopyFrom). A CopyFromSource
// that can be read once is not read by a try that failed to connect.
func (p *Pool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	return again(p, func() (int64, error) { return p.Pool.CopyFrom(ctx, tableName, columnNames, rowSrc) })
}

// Ping acquires a connection and pings the server.
func (p *Pool) Ping(ctx context.Context) error {
	_, err := again(p, func() (struct{}, error) { return struct{}{}, p.Pool.Ping(ctx) })
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type releasingRow struct {
	row  pgx.Row
	conn *pgxpool.Conn
}

func (r *releasingRow) Scan(dest ...any) error {
	defer r.conn.Release()
	return r.row.Scan(dest...)
}

type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return errRows(b), b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (errBatch) Tx() pgx.Tx                         { return nil }
func (b errBatch) Close() error                     { return b.err }

type errRows struct{ err error }

func (errRows) Close()                                       {}
func (r errRows) Err() error                                 { return r.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (r errRows) Scan(...any) error                          { return r.err }
func (r errRows) Values() ([]any, error)                     { return nil, r.err }
func (errRows) RawValues() [][]byte                          { return nil }
func (errRows) TypeMap() *pgtype.Map                         { return nil }
func (errRows) Conn() *pgx.Conn                              { return nil }

type releasingBatch struct {
	pgx.BatchResults
	conn *pgxpool.Conn
}

func (b *releasingBatch) Close() error {
	defer b.conn.Release()
	return b.BatchResults.Close()
}
