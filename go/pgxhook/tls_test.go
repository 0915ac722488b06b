package pgxhook_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	pgentra "github.com/pgentra/pgentra/go"
	"github.com/pgentra/pgentra/go/internal/harness"
	"github.com/pgentra/pgentra/go/pgxhook"
)

// fakeServer declines TLS and asks for a cleartext password, recording whether one came.
type fakeServer struct {
	port   int
	mu     sync.Mutex
	events []string
}

func startFake(t *testing.T) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeServer{port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go f.session(conn)
		}
	}()
	return f
}

func (f *fakeServer) note(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeServer) got(e string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.events {
		if x == e {
			return true
		}
	}
	return false
}

func (f *fakeServer) session(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	f.note("connection")
	read := func() ([]byte, error) {
		var n [4]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return nil, err
		}
		body := make([]byte, binary.BigEndian.Uint32(n[:])-4)
		_, err := io.ReadFull(c, body)
		return body, err
	}
	body, err := read()
	if err != nil {
		return
	}
	if code := binary.BigEndian.Uint32(body[:4]); code == 80877103 || code == 80877104 {
		_, _ = c.Write([]byte("N"))
		if _, err := read(); err != nil {
			return
		}
	}
	f.note("startup")
	_, _ = c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
	var tag [1]byte
	if _, err := io.ReadFull(c, tag[:]); err == nil && tag[0] == 'p' {
		f.note("password")
	}
}

// The user's own pgx configuration with sslmode=prefer (pgx's default) or disable, pointed at a
// server that refuses TLS: the hook must not hand it the token.
func TestBeforeConnectOnTheUsersOwnConfigNeverSendsTheTokenWithoutTLS(t *testing.T) {
	h := harness.Require(t)
	fake := startFake(t)
	c, err := pgentra.New(pgentra.Options{ConnectionString: fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres sslmode=require", fake.port), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = h
	for _, mode := range []string{"prefer", "disable", "allow"} {
		cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=pgentra-app sslmode=%s", fake.port, mode))
		if err != nil {
			t.Fatal(err)
		}
		cfg.BeforeConnect = pgxhook.BeforeConnect(c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err == nil {
			err = pool.Ping(ctx)
			pool.Close()
		}
		cancel()
		if err == nil {
			t.Fatalf("sslmode=%s: connected to a server without TLS", mode)
		}
	}
	if fake.got("password") {
		t.Fatalf("the token reached a server without TLS: %v", fake.events)
	}
}

// An Azure server name gets verify-full; the harness's certificate carries the name, so the
// hook logs in verified; a name the certificate lacks is refused during the handshake.
func TestAzureNamesAreVerified(t *testing.T) {
	h := harness.Require(t)
	azure, wrong := os.Getenv("PGENTRA_TEST_AZURE_HOST"), os.Getenv("PGENTRA_TEST_WRONG_HOST")
	if azure == "" || wrong == "" {
		t.Fatal("PGENTRA_TEST_AZURE_HOST / PGENTRA_TEST_WRONG_HOST are not set: run under the harness")
	}
	c, err := pgentra.New(pgentra.Options{ConnectionString: fmt.Sprintf("host=%s port=%s dbname=postgres sslmode=require", azure, h.Port), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cfg, err := pgxhook.PoolConfig(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.TLSConfig == nil || cfg.ConnConfig.TLSConfig.InsecureSkipVerify || cfg.ConnConfig.TLSConfig.ServerName != azure {
		t.Fatalf("PoolConfig is not verify-full for %s: %+v", azure, cfg.ConnConfig.TLSConfig)
	}
	tok, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.ConnString(), tok) || cfg.ConnConfig.Password != "" {
		t.Fatal("PoolConfig keeps the token in its configuration")
	}
	pool := newPool(t, cfg)
	if u := currentUser(t, pool); u != "pgentra-app" {
		t.Fatalf("current_user = %q", u)
	}
	// The user's own config (require) to a wrong name: raised to verify-full, refused.
	own, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=postgres user=pgentra-app sslmode=require", wrong, h.Port))
	if err != nil {
		t.Fatal(err)
	}
	if err := pgxhook.BeforeConnect(c)(ctx, own); err != nil {
		t.Fatal(err)
	}
	if own.TLSConfig == nil || own.TLSConfig.InsecureSkipVerify || own.TLSConfig.ServerName != wrong {
		t.Fatalf("not raised to verify-full: %+v", own.TLSConfig)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if conn, err := pgx.ConnectConfig(cctx, own); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a server whose certificate does not carry the name")
	}
}
