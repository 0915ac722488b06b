// Package harness gives the Go tests access to the test harness of pgentra
// (tests/harness/with-harness.sh): a private PostgreSQL with TLS and the local identity
// emulator, both on loopback inside a network namespace.
//
// Tests that need them call Require, which skips the test when the harness variables are not
// set, or fails it when PGENTRA_REQUIRE_HARNESS=1 (go/test.sh sets it).
package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pgentra "github.com/pgentra/pgentra/go"
)

// Env is what the harness exports.
type Env struct {
	Host, Port   string
	EmulatorHTTP string // base URL of the emulator's control API, http://127.0.0.1:PORT
}

// DSN is the connection string the tests configure: no user and no password, so the user
// comes from the token and the password is the token.
func (e Env) DSN() string {
	return fmt.Sprintf("host=%s port=%s dbname=postgres sslmode=require", e.Host, e.Port)
}

// Require returns the harness variables, or skips (fails with PGENTRA_REQUIRE_HARNESS=1) the
// test when they are not all set. It also takes a lock shared by every test package of this
// module for the rest of the test, because `go test ./...` runs packages in parallel and a
// token rotation in one would invalidate the tokens cached by another.
func Require(t testing.TB) Env {
	t.Helper()
	e := Env{
		Host:         os.Getenv("PGENTRA_PG_HOST"),
		Port:         os.Getenv("PGENTRA_PG_PORT"),
		EmulatorHTTP: os.Getenv("PGENTRA_EMULATOR_HTTP"),
	}
	if e.Host == "" || e.Port == "" || e.EmulatorHTTP == "" ||
		os.Getenv("IDENTITY_ENDPOINT") == "" || os.Getenv("IDENTITY_HEADER") == "" {
		msg := "harness not running (PGENTRA_PG_HOST, PGENTRA_PG_PORT, PGENTRA_EMULATOR_HTTP, " +
			"IDENTITY_ENDPOINT, IDENTITY_HEADER): run under tests/harness/with-harness.sh"
		if os.Getenv("PGENTRA_REQUIRE_HARNESS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	mustLoopback(t, e.EmulatorHTTP)
	lock(t)
	return e
}

// Connector returns a connector for the harness's PostgreSQL through the managed identity
// endpoint of the emulator, closed at the end of the test.
func (e Env) Connector(t testing.TB) *pgentra.Connector {
	t.Helper()
	c, err := pgentra.New(pgentra.Options{ConnectionString: e.DSN(), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("pgentra.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Rotate makes the server refuse every token issued so far: the next identity request gets a
// new token, which logs in.
func (e Env) Rotate(t testing.TB) {
	t.Helper()
	e.control(t, http.MethodPost, "/control/rotate")
}

// Revoke makes the server refuse token from now on (the emulator answers PostgreSQL's check of
// it with a refusal, SQLSTATE 28P01), while pgentra's cache still holds it.
func (e Env) Revoke(t testing.TB, token string) {
	t.Helper()
	e.request(t, http.MethodPost, "/control/revoke", token)
}

// IdentityRequests is the emulator's count of managed identity token requests so far.
func (e Env) IdentityRequests(t testing.TB) int {
	t.Helper()
	var s struct {
		MSI int `json:"msi_requests"`
	}
	if err := json.Unmarshal([]byte(e.Stats(t)), &s); err != nil {
		t.Fatal(err)
	}
	return s.MSI
}

// Stats returns the emulator's counters (JSON).
func (e Env) Stats(t testing.TB) string {
	t.Helper()
	return e.control(t, http.MethodGet, "/control/stats")
}

// Reset zeroes the emulator's counters and drops its queued faults.
func (e Env) Reset(t testing.TB) {
	t.Helper()
	e.control(t, http.MethodPost, "/control/reset")
}

// Fault queues a fault (JSON, see the emulator's /control/faults) for the next identity request.
func (e Env) Fault(t testing.TB, jsonFault string) {
	t.Helper()
	e.request(t, http.MethodPost, "/control/faults", jsonFault)
}

func (e Env) control(t testing.TB, method, path string) string {
	return e.request(t, method, path, "")
}

func (e Env) request(t testing.TB, method, path, body string) string {
	t.Helper()
	u := e.EmulatorHTTP + path
	mustLoopback(t, u)
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return string(b)
}

// mustLoopback refuses any URL whose host is not a loopback address: tests never send
// traffic off this machine.
func mustLoopback(t testing.TB, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("bad URL %q: %v", raw, err)
	}
	h := u.Hostname()
	if h == "localhost" {
		return
	}
	ip := net.ParseIP(h)
	if ip == nil || !ip.IsLoopback() {
		t.Fatalf("refusing a non-loopback URL %q", raw)
	}
}

// lock takes an exclusive flock shared by every test process of this module, released when
// the test ends.
func lock(t testing.TB) {
	t.Helper()
	dir := os.Getenv("PGENTRA_TEST_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(filepath.Join(dir, "go-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock: %v", err)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
