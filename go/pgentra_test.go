package pgentra_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pgentra "github.com/pgentra/pgentra/go"
	"github.com/pgentra/pgentra/go/internal/harness"
)

var allFormats = []pgentra.Format{pgentra.Libpq, pgentra.URI, pgentra.ADO, pgentra.JDBC, pgentra.JSON, pgentra.Shell, pgentra.PDO}

func TestVersion(t *testing.T) {
	if v := pgentra.Version(); v == "" {
		t.Fatal("empty version")
	}
}

type vector struct {
	Name   string `json:"name"`
	Params struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		DBName   string `json:"dbname"`
		User     string `json:"user"`
		Password string `json:"password"`
		SSLMode  string `json:"sslmode"`
	} `json:"params"`
	Rendered map[string]string `json:"rendered"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "tests", "vectors", "render.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}

// The shared conformance vectors: a secret-mode connector configured with the vector's libpq
// rendering gives every format byte for byte.
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			c, err := pgentra.New(pgentra.Options{
				ConnectionString: v.Rendered["libpq"],
				Credential:       pgentra.CredentialPassword,
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer c.Close()
			seen := 0
			for _, f := range allFormats {
				want, ok := v.Rendered[f.String()]
				if !ok {
					continue
				}
				seen++
				got, err := c.ConnectionString(f)
				if want == "" && f == pgentra.PDO {
					// JSON null: these values cannot be written as a PDO DSN.
					if !errors.Is(err, pgentra.ErrConfig) {
						t.Errorf("pdo: want a configuration error, got %q, %v", got, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", f, err)
					continue
				}
				if got != want {
					t.Errorf("%s:\n got %q\nwant %q", f, got, want)
				}
			}
			if seen != len(v.Rendered) {
				t.Errorf("vector has %d renderings, %d formats compared", len(v.Rendered), seen)
			}
			if u, err := c.User(); err != nil || u != v.Params.User {
				t.Errorf("User() = %q, %v; want %q", u, err, v.Params.User)
			}
		})
	}
}

const secretDSN = "host=h port=5432 dbname=d user=u password=p sslmode=require"

func TestConnectionStringFormatsSecretMode(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[pgentra.Format]string{
		pgentra.Libpq: "host=h port=5432 dbname=d user=u password=p sslmode=require",
		pgentra.URI:   "postgresql://u:p@h:5432/d?sslmode=require",
		pgentra.ADO:   "Server=h;Port=5432;Database=d;User Id=u;Password=p;Ssl Mode=Require;",
		pgentra.JDBC:  "jdbc:postgresql://h:5432/d?sslmode=require&user=u&password=p",
		pgentra.JSON:  `{"host":"h","port":5432,"dbname":"d","user":"u","password":"p","sslmode":"require"}`,
	}
	for f, w := range want {
		got, err := c.ConnectionString(f)
		if err != nil || got != w {
			t.Errorf("%s: got %q, %v; want %q", f, got, err, w)
		}
	}
	// Secret mode: no token is ever acquired.
	_, err = c.Token(context.Background())
	if !errors.Is(err, pgentra.ErrConfig) {
		t.Errorf("Token in secret mode: %v, want a configuration error", err)
	}
}

func TestConfigErrorNamesThePort(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: "host=h port=70000"})
	if err == nil {
		// Accepted at creation: then the first use must fail.
		defer c.Close()
		_, err = c.ConnectionString(pgentra.Libpq)
	}
	checkErr(t, err, pgentra.KindConfig, "port")
	if !errors.Is(err, pgentra.ErrConfig) {
		t.Errorf("errors.Is(err, ErrConfig) is false for %v", err)
	}
	if errors.Is(err, pgentra.ErrNetwork) {
		t.Errorf("errors.Is(err, ErrNetwork) is true for %v", err)
	}
	if !strings.Contains(err.Error(), "port") {
		t.Errorf("Error() does not carry the core's message: %q", err.Error())
	}
}

func TestInvalidFormat(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.ConnectionString(pgentra.Format(99))
	checkErr(t, err, pgentra.KindInvalidArgument, "format")
	if !errors.Is(err, pgentra.ErrInvalidArgument) {
		t.Errorf("errors.Is(err, ErrInvalidArgument) is false for %v", err)
	}
}

func TestInvalidCredential(t *testing.T) {
	_, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN, Credential: 42})
	checkErr(t, err, pgentra.KindInvalidArgument, "credential")
}

// A token never travels without TLS: refused before any identity request is made.
func TestTLSPolicy(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{
		ConnectionString: "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable",
		Credential:       pgentra.CredentialManagedIdentity,
	})
	if err == nil {
		defer c.Close()
		_, err = c.ConnectionString(pgentra.Libpq)
	}
	checkErr(t, err, pgentra.KindTLSPolicy, "sslmode")
	if !errors.Is(err, pgentra.ErrTLSPolicy) {
		t.Errorf("errors.Is(err, ErrTLSPolicy) is false for %v", err)
	}
}

func TestFromEnvConfigError(t *testing.T) {
	t.Setenv("PGENTRA_GOTEST_CONNECTIONSTRING", "host=h port=notaport dbname=d user=u password=p")
	c, err := pgentra.FromEnv("PGENTRA_GOTEST")
	if err == nil {
		defer c.Close()
		_, err = c.ConnectionString(pgentra.Libpq)
	}
	checkErr(t, err, pgentra.KindConfig, "port")
}

func TestFromEnvSecretMode(t *testing.T) {
	t.Setenv("PGENTRA_GOTEST_CONNECTIONSTRING", secretDSN)
	c, err := pgentra.FromEnv("PGENTRA_GOTEST")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.ConnectionString(pgentra.Libpq)
	if err != nil || got != secretDSN {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestNULByteRejected(t *testing.T) {
	_, err := pgentra.New(pgentra.Options{ConnectionString: "host=h\x00 port=5432"})
	checkErr(t, err, pgentra.KindInvalidArgument, "Options.ConnectionString")
	_, err = pgentra.FromEnv("A\x00B")
	checkErr(t, err, pgentra.KindInvalidArgument, "prefix")
}

func TestNegativeTimeout(t *testing.T) {
	_, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN, Timeout: -time.Second})
	checkErr(t, err, pgentra.KindInvalidArgument, "Timeout")
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ConnectionString(pgentra.Libpq); !errors.Is(err, pgentra.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Token(context.Background()); !errors.Is(err, pgentra.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	if _, err := c.User(); !errors.Is(err, pgentra.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	c.Invalidate() // no-op, no crash
}

// Connectors dropped without Close are released by their finalizer (no crash, no double free).
func TestFinalizer(t *testing.T) {
	for i := 0; i < 50; i++ {
		c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ConnectionString(pgentra.URI); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c.Close() // closed ones must not be freed a second time by a finalizer
		}
	}
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentUseAndClose(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				ctx, cancel := context.WithCancel(context.Background())
				_, err := c.ConnectionStringContext(ctx, pgentra.JSON)
				cancel()
				if err != nil && !errors.Is(err, pgentra.ErrClosed) && !errors.Is(err, context.Canceled) {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	c.Close()
	wg.Wait()
}

func TestCancelledContext(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Token(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Token with a cancelled context: %v", err)
	}
}

func TestErrorString(t *testing.T) {
	e := &pgentra.Error{Kind: pgentra.KindIdentityService, Message: "denied", ServiceCode: "AADSTS7000215"}
	if s := e.Error(); s != "pgentra: identity service error: denied (AADSTS7000215)" {
		t.Errorf("Error() = %q", s)
	}
	var target *pgentra.Error
	wrapped := fmt.Errorf("connecting: %w", e)
	if !errors.As(wrapped, &target) || target.ServiceCode != "AADSTS7000215" {
		t.Error("errors.As through a wrap")
	}
	if !errors.Is(wrapped, pgentra.ErrIdentityService) || errors.Is(wrapped, pgentra.ErrConfig) {
		t.Error("errors.Is through a wrap")
	}
}

func checkErr(t *testing.T, err error, kind pgentra.Kind, inMessage string) {
	t.Helper()
	var pe *pgentra.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %v (%T), want a *pgentra.Error of kind %v", err, err, kind)
	}
	if pe.Kind != kind {
		t.Errorf("kind %v (%d), want %v; message %q", pe.Kind, int(pe.Kind), kind, pe.Message)
	}
	if !strings.Contains(pe.Message, inMessage) {
		t.Errorf("message %q does not name %q", pe.Message, inMessage)
	}
}

// ---- under the harness ----------------------------------------------------------------

func TestHarnessToken(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := c.Token(ctx)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if strings.Count(tok, ".") != 2 {
		t.Errorf("token is not JWT-shaped (%d bytes)", len(tok))
	}
	// Cached: the same token again, without a context.
	if tok2, err := c.Token(context.Background()); err != nil || tok2 != tok {
		t.Errorf("second Token differs or fails: %v", err)
	}
	user, err := c.User()
	if err != nil || user != "pgentra-app" {
		t.Fatalf("User() = %q, %v", user, err)
	}
	want := map[pgentra.Format]string{
		pgentra.Libpq: fmt.Sprintf("host=%s port=%s dbname=postgres user=pgentra-app password=%s sslmode=require", h.Host, h.Port, tok),
		pgentra.URI:   fmt.Sprintf("postgresql://pgentra-app:%s@%s:%s/postgres?sslmode=require", tok, h.Host, h.Port),
		pgentra.ADO:   fmt.Sprintf("Server=%s;Port=%s;Database=postgres;User Id=pgentra-app;Password=%s;Ssl Mode=Require;", h.Host, h.Port, tok),
		pgentra.JDBC:  fmt.Sprintf("jdbc:postgresql://%s:%s/postgres?sslmode=require&user=pgentra-app&password=%s", h.Host, h.Port, tok),
		pgentra.JSON:  fmt.Sprintf(`{"host":"%s","port":%s,"dbname":"postgres","user":"pgentra-app","password":"%s","sslmode":"require"}`, h.Host, h.Port, tok),
	}
	for f, w := range want {
		got, err := c.ConnectionString(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if got != w {
			t.Errorf("%s: got %q\nwant %q", f, got, w)
		}
	}
}

// Token returns ctx.Err() when the context ends first; the call completes in the background,
// its token is cached, and closing the connector meanwhile is safe.
func TestHarnessTokenContextDeadline(t *testing.T) {
	h := harness.Require(t)
	h.Rotate(t) // nothing cached at the emulator either: the next request really waits
	h.Fault(t, `{"delay_ms": 1500}`)
	c := h.Connector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Token(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Token: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Token returned after %v, not at the deadline", d)
	}
	// The background call finishes and fills the cache.
	tok, err := c.Token(context.Background())
	if err != nil || tok == "" {
		t.Fatalf("Token after the deadline: %v", err)
	}

	// Close while a call is in flight: the native connector is freed when that call returns.
	c2 := h.Connector(t)
	h.Rotate(t)
	h.Fault(t, `{"delay_ms": 500}`)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := c2.Token(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Token: %v", err)
	}
	c2.Close()
	if _, err := c2.Token(context.Background()); !errors.Is(err, pgentra.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	time.Sleep(800 * time.Millisecond) // let the background call end and free the connector
}

func TestHarnessInvalidate(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	tok1, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.Rotate(t)
	if tok, _ := c.Token(context.Background()); tok != tok1 {
		t.Fatal("the cached token changed without Invalidate")
	}
	c.Invalidate()
	tok2, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok2 == tok1 {
		t.Fatal("Invalidate did not lead to a new token after a rotation")
	}
}

// Formatting a connector never shows the token it keeps a copy of (issue #13, item 5).
func TestFormattingShowsNoToken(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, c); strings.Contains(s, tok) || strings.Contains(s, tok[:16]) {
			t.Fatalf("%s shows the token", verb)
		}
	}
}

// Compare-and-invalidate (issue #14, item 8): another token changes nothing; the cached one is
// dropped once, and the next Token makes one new request.
func TestInvalidateIf(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	ctx := context.Background()
	tok, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.InvalidateIf("not-the-token") {
		t.Fatal("InvalidateIf dropped a token it was not given")
	}
	if !c.InvalidateIf(tok) {
		t.Fatal("InvalidateIf did not drop the cached token")
	}
	if c.InvalidateIf(tok) {
		t.Fatal("a second InvalidateIf of the same token dropped something")
	}
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
}

// ConnectFailed is the core's rule (issue #17, item 3): a refusal (28P01) of the cached token
// drops it and says to reconnect, and the next token costs exactly one identity request
// (TokenRequests counts it as the emulator does); any other failure drops nothing.
func TestConnectFailed(t *testing.T) {
	h := harness.Require(t)
	c := h.Connector(t)
	ctx := context.Background()
	t0, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r0, e0 := c.TokenRequests(), h.IdentityRequests(t)
	if r0 < 1 {
		t.Fatalf("TokenRequests = %d after a token", r0)
	}
	for _, f := range []struct {
		state string
		used  []bool
	}{{"3D000", nil}, {"08006", []bool{true}}, {"28000", nil}, {"", []bool{false}}} {
		if c.ConnectFailed(t0, f.state, f.used...) {
			t.Fatalf("ConnectFailed(%q, %v) says retry", f.state, f.used)
		}
	}
	if c.ConnectFailed("", "28P01") {
		t.Fatal("ConnectFailed with no token says retry")
	}
	if c.ConnectFailed("x\x00y", "28P01") {
		t.Fatal("ConnectFailed with a NUL byte says retry")
	}
	if tok, err := c.Token(ctx); err != nil || tok != t0 {
		t.Fatalf("the token changed without a refusal: %v", err)
	}
	h.Revoke(t, t0)
	if !c.ConnectFailed(t0, "28P01") {
		t.Fatal("a refusal of the cached token: no retry")
	}
	if !c.ConnectFailed(t0, "28P01") {
		t.Fatal("a second connection refused with the same token: no retry")
	}
	if n := c.TokenRequests(); n != r0 {
		t.Fatalf("ConnectFailed made %d requests", n-r0)
	}
	t1, err := c.Token(ctx)
	if err != nil || t1 == t0 {
		t.Fatalf("the next token is not a new one: %v", err)
	}
	if n, e := c.TokenRequests()-r0, h.IdentityRequests(t)-e0; n != 1 || e != 1 {
		t.Fatalf("TokenRequests grew by %d and the emulator counted %d requests, want 1 and 1", n, e)
	}
	c.Close()
	if c.ConnectFailed(t1, "28P01") || c.TokenRequests() != 0 {
		t.Fatal("after Close: ConnectFailed says retry or TokenRequests is not 0")
	}
}

func TestConnectFailedSecretMode(t *testing.T) {
	c, err := pgentra.New(pgentra.Options{ConnectionString: secretDSN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ConnectFailed("p", "28P01") || c.ConnectFailed("p", "") || c.TokenRequests() != 0 {
		t.Fatal("secret mode: ConnectFailed says retry or TokenRequests is not 0")
	}
}

// Waiting costs no OS thread and ends when the caller's context does (issue #14, item 7):
// 300 callers (Token and ConnectionStringContext) with 100 ms deadlines on an identity
// endpoint that takes 5 s.
func TestCancelledWaitsHoldNoThreads(t *testing.T) {
	h := harness.Require(t)
	h.Fault(t, `{"delay_ms": 5000}`)
	c := h.Connector(t)
	threads := pprof.Lookup("threadcreate")
	before := threads.Count()
	start := time.Now()
	var wg sync.WaitGroup
	var late, wrong atomic.Int64
	for i := 0; i < 300; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			t0 := time.Now()
			var err error
			if i%2 == 0 {
				_, err = c.Token(ctx)
			} else { // the pq connector's path: the same wait, then rendering from the cache
				_, err = c.ConnectionStringContext(ctx, pgentra.Libpq)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				wrong.Add(1)
			}
			if time.Since(t0) > 600*time.Millisecond {
				late.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if wrong.Load() != 0 || late.Load() != 0 {
		t.Fatalf("%d callers got another error, %d returned late", wrong.Load(), late.Load())
	}
	if grown := threads.Count() - before; grown > 40 {
		t.Fatalf("%d OS threads created for 300 waiting callers", grown)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("300 cancelled callers took %v", d)
	}
	// The request went on in the core: once it ends, the token is there.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
}
