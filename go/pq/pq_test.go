package pq_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	libpq "github.com/lib/pq"

	pgentra "github.com/pgentra/pgentra/go"
	"github.com/pgentra/pgentra/go/internal/harness"
	"github.com/pgentra/pgentra/go/pq"
)

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var u string
	if err := db.QueryRowContext(ctx, "select current_user").Scan(&u); err != nil {
		t.Fatalf("select current_user: %v", err)
	}
	return u
}

func TestOpenDBQueries(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	db := sql.OpenDB(pq.NewConnector(c))
	defer db.Close()
	if u := currentUser(t, db); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
	if _, ok := db.Driver().(*libpq.Driver); !ok {
		t.Errorf("Driver() is %T", db.Driver())
	}
}

// After a forced rotation (the server accepts only the new token) and Invalidate, a new
// pooled connection logs in with the new token.
func TestSurvivesRotation(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	db := sql.OpenDB(pq.NewConnector(c))
	defer db.Close()
	if u := currentUser(t, db); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
	oldDSN, err := c.ConnectionString(pgentra.Libpq)
	if err != nil {
		t.Fatal(err)
	}

	h.Rotate(t)
	c.Invalidate()
	// No connection may survive from before: close idle ones and force new ones.
	db.SetMaxIdleConns(0)
	db.SetConnMaxLifetime(time.Millisecond)
	time.Sleep(5 * time.Millisecond)

	if u := currentUser(t, db); u != "pgentra-app" {
		t.Fatalf("after rotation: current_user = %q", u)
	}
	newDSN, err := c.ConnectionString(pgentra.Libpq)
	if err != nil {
		t.Fatal(err)
	}
	if newDSN == oldDSN {
		t.Fatal("the connection string did not change after rotation and Invalidate")
	}
	// The old token is really refused now: the new connection above used the new one.
	old, err := sql.Open("postgres", oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	err = old.Ping()
	var pe *libpq.Error
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("login with the rotated-out token: %v, want SQLSTATE 28P01", err)
	}
}

// A token the cache still holds is refused (the emulator's rotation revokes it): the next
// connection drops it (InvalidateIf) and reconnects once, with exactly one new identity
// request, and without the application calling Invalidate.
func TestRecoversFromARefusedCachedToken(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	db := sql.OpenDB(pq.NewConnector(c))
	defer db.Close()
	if u := currentUser(t, db); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
	h.Rotate(t)
	db.SetMaxIdleConns(0)
	db.SetConnMaxLifetime(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	before := h.IdentityRequests(t)
	if u := currentUser(t, db); u != "pgentra-app" {
		t.Fatalf("after the refusal: current_user = %q", u)
	}
	if n := h.IdentityRequests(t) - before; n != 1 {
		t.Fatalf("%d identity requests to recover, want 1", n)
	}
}

// Connections as a role the token is not for fail, and keep failing without an identity
// request each: the first refusal renews the token once, and the core keeps the renewed
// token when it is refused too (issue #17, item 3).
func TestAWrongUserCostsAtMostTwoRequests(t *testing.T) {
	h := harness.Require(t)
	c, err := pgentra.New(pgentra.Options{ConnectionString: h.DSN() + " user=no_such_role", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := sql.OpenDB(pq.NewConnector(c))
	defer db.Close()
	before := h.IdentityRequests(t)
	for i := 0; i < 10; i++ {
		err := db.Ping()
		var pe *libpq.Error
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Fatalf("connect %d as a role that does not exist: %v, want SQLSTATE 28P01", i, err)
		}
	}
	if n := h.IdentityRequests(t) - before; n > 2 {
		t.Fatalf("10 failed connections made %d identity requests, want at most 2", n)
	}
}

// Connect honours its context and reports pgentra's errors as *pgentra.Error.
func TestConnectErrors(t *testing.T) {
	h := harness.Require(t)
	c, err := pgentra.New(pgentra.Options{
		ConnectionString: "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable",
		Credential:       pgentra.CredentialManagedIdentity,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := sql.OpenDB(pq.NewConnector(c))
	defer db.Close()
	before := h.IdentityRequests(t)
	err = db.Ping()
	if !errors.Is(err, pgentra.ErrTLSPolicy) {
		t.Fatalf("Ping: %v, want a TLS policy error", err)
	}
	// Refused before any identity request: a token that cannot leave is never fetched.
	if _, err := c.ConnectionStringContext(context.Background(), pgentra.Libpq); !errors.Is(err, pgentra.ErrTLSPolicy) {
		t.Fatalf("ConnectionStringContext: %v, want a TLS policy error", err)
	}
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	if _, err := c.ConnectionStringContext(ctx, pgentra.Libpq); !errors.Is(err, pgentra.ErrTLSPolicy) {
		t.Fatalf("ConnectionStringContext with a deadline: %v, want a TLS policy error", err)
	}
	if n := h.IdentityRequests(t) - before; n != 0 {
		t.Fatalf("%d identity requests for connections the TLS policy refuses, want 0", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pq.NewConnector(c).Connect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with a cancelled context: %v", err)
	}
}
