package pgxhook_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	pgentra "github.com/pgentra/pgentra/go"
	"github.com/pgentra/pgentra/go/internal/harness"
	"github.com/pgentra/pgentra/go/pgxhook"
)

func currentUser(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var u string
	if err := pool.QueryRow(ctx, "select current_user").Scan(&u); err != nil {
		t.Fatalf("select current_user: %v", err)
	}
	return u
}

func newPool(t *testing.T, cfg *pgxpool.Config) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// plainPool is pgxpool.NewWithConfig on PoolConfig(c), logged in as pgentra-app; with the
// configuration and the token the connector holds.
func plainPool(t *testing.T, c *pgentra.Connector) (*pgxpool.Pool, *pgxpool.Config, string) {
	t.Helper()
	cfg, err := pgxhook.PoolConfig(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, cfg)
	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pool, cfg, tok
}

func TestPoolConfigQueriesAndSurvivesRotation(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	ctx := context.Background()
	pool, cfg, oldTok := plainPool(t, c)

	h.Rotate(t)
	c.Invalidate()
	pool.Reset() // closes every connection: the next query needs a new login

	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("after rotation: current_user = %q", u)
	}
	newTok, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newTok == oldTok {
		t.Fatal("no new token after rotation and Invalidate")
	}
	// The configuration parsed before the rotation still holds the old token: without the
	// hook, a login is refused. This proves the hook is what carries the new token.
	noHook := cfg.ConnConfig.Copy()
	conn, err := pgx.ConnectConfig(ctx, noHook)
	if err == nil {
		conn.Close(ctx)
		t.Fatal("the rotated-out token was accepted")
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("login with the rotated-out token: %v, want SQLSTATE 28P01", err)
	}
}

// BeforeConnect on a configuration of one's own: the user is set there, the password (none
// in the configuration) comes from the hook.
func TestBeforeConnectOwnConfig(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	cfg, err := pgxpool.ParseConfig("host=" + h.Host + " port=" + h.Port + " dbname=postgres user=pgentra-app sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BeforeConnect = pgxhook.BeforeConnect(c)
	cfg.MaxConnLifetime = time.Minute
	pool := newPool(t, cfg)
	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
}

// The hook fills an empty user and reports pgentra's errors.
func TestBeforeConnectUnit(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: "host=h port=5432 dbname=d user=u password='p w' sslmode=require"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := &pgx.ConnConfig{}
	if err := pgxhook.BeforeConnect(c)(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != "u" || cfg.Password != "p w" {
		t.Fatalf("user %q password %q", cfg.User, cfg.Password)
	}
	cfg = &pgx.ConnConfig{}
	cfg.User = "someone"
	if err := pgxhook.BeforeConnect(c)(context.Background(), cfg); err != nil || cfg.User != "someone" {
		t.Fatalf("a set user was replaced: %q, %v", cfg.User, err)
	}

	bad, err := pgentra.New(pgentra.Options{
		ConnectionString: "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable",
		Credential:       pgentra.CredentialManagedIdentity,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := pgxhook.BeforeConnect(bad)(context.Background(), &pgx.ConnConfig{}); !errors.Is(err, pgentra.ErrTLSPolicy) {
		t.Fatalf("hook error: %v", err)
	}
	if _, err := pgxhook.PoolConfig(context.Background(), bad); !errors.Is(err, pgentra.ErrTLSPolicy) {
		t.Fatalf("PoolConfig error: %v", err)
	}
}

// recoveringPool is pgxhook.NewPool on PoolConfig(c), closed at the end of the test.
func recoveringPool(t *testing.T, c *pgentra.Connector) (*pgxhook.Pool, *pgxpool.Config) {
	t.Helper()
	cfg, err := pgxhook.PoolConfig(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxhook.NewPool(context.Background(), c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, cfg
}

// A token the cache still holds is refused (revoked through the emulator): a pool made with
// NewPool, and Connect, drop it (InvalidateIf) and connect once more, with exactly one new
// identity request each, and without the application calling Invalidate.
func TestRecoversFromARefusedCachedToken(t *testing.T) {
	h := harness.Require(t)
	ctx := context.Background()
	c := h.Connector(t)
	pool, cfg := recoveringPool(t, c)
	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
	held, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Revoke(t, held)
	pool.Reset() // the next query needs a new login
	before := h.IdentityRequests(t)
	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("after the refusal: current_user = %q", u)
	}
	if n := h.IdentityRequests(t) - before; n != 1 {
		t.Fatalf("the pool: %d identity requests to recover, want 1", n)
	}

	// One connection, with a connector of its own (the core keeps a token fetched right after a
	// refusal for a few seconds: see REFUSAL_HOLD).
	c2 := h.Connector(t)
	conn, err := pgxhook.Connect(ctx, c2, cfg.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	held, err = c2.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Revoke(t, held)
	before = h.IdentityRequests(t)
	conn, err = pgxhook.Connect(ctx, c2, cfg.ConnConfig)
	if err != nil {
		t.Fatalf("Connect after the refusal: %v", err)
	}
	defer conn.Close(ctx)
	var u string
	if err := conn.QueryRow(ctx, "select current_user").Scan(&u); err != nil || u != "pgentra-app" {
		t.Fatalf("current_user = %q, %v", u, err)
	}
	if n := h.IdentityRequests(t) - before; n != 1 {
		t.Fatalf("Connect: %d identity requests to recover, want 1", n)
	}
}

// A pool made by pgxpool.NewWithConfig on PoolConfig (not NewPool): pgx lets no hook retry a
// refused login, so the Acquire that meets the refusal fails with SQLSTATE 28P01, but the hook
// (OnPgError -> ConnectFailed) drops the token, and the next query logs in with a new one, for
// one identity request.
func TestPlainPoolRecoversOnTheNextConnection(t *testing.T) {
	h := harness.Require(t)
	ctx := context.Background()
	c := h.Connector(t)
	pool, _, held := plainPool(t, c)
	h.Revoke(t, held)
	pool.Reset()
	before, r0 := h.IdentityRequests(t), c.TokenRequests()
	var pe *pgconn.PgError
	if err := pool.Ping(ctx); !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("the first connection after the revocation: %v, want SQLSTATE 28P01", err)
	}
	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("the next connection: current_user = %q", u)
	}
	if n, r := h.IdentityRequests(t)-before, c.TokenRequests()-r0; n != 1 || r != 1 {
		t.Fatalf("%d identity requests (TokenRequests: %d) to recover, want 1", n, r)
	}
}

// Connections as a role the token is not for fail with SQLSTATE 28P01, and keep failing
// without an identity request each (issue #17, item 3).
func TestAWrongUserCostsAtMostTwoRequests(t *testing.T) {
	h := harness.Require(t)
	ctx := context.Background()
	c, err := pgentra.New(pgentra.Options{ConnectionString: h.DSN() + " user=no_such_role", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool, _ := recoveringPool(t, c)
	before := h.IdentityRequests(t)
	for i := 0; i < 10; i++ {
		err := pool.Ping(ctx)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Fatalf("connect %d as a role that does not exist: %v, want SQLSTATE 28P01", i, err)
		}
	}
	if n := h.IdentityRequests(t) - before; n > 2 {
		t.Fatalf("10 failed connections made %d identity requests, want at most 2", n)
	}
}
