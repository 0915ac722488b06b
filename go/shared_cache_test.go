package pgentra_test

// The shared token cache (issue #16) through the Go wrapper (the C ABI), with sharing ON as in
// production: worker processes (this test binary started again, as a process manager starts
// workers) share one identity request. The harness keeps sharing off for the rest of this
// suite (PGENTRA_SHARED_CACHE=0); these tests turn it on for their own processes only, with a
// fresh private cache folder under $PGENTRA_TEST_DIR, and count requests at the emulator.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"
	pgentra "github.com/pgentra/pgentra/go"
	"github.com/pgentra/pgentra/go/internal/harness"
)

const sharedWorkers = 8

// TestMain runs this binary as a shared-cache worker when the tests below start it so.
func TestMain(m *testing.M) {
	if os.Getenv("SHARED_TEST_WORKER") == "1" {
		os.Exit(sharedWorker())
	}
	os.Exit(m.Run())
}

// workerReport is what a worker prints: its token (or error) and its connector's requests.
type workerReport struct {
	PID         int    `json:"pid"`
	Token       string `json:"token"`
	Requests    uint64 `json:"requests"`
	User        string `json:"user"`
	Error       string `json:"error"`
	Kind        int    `json:"kind"`
	ServiceCode string `json:"service_code"`
	Message     string `json:"message"`
}

func sharedWorker() int {
	c, err := pgentra.New(pgentra.Options{
		ConnectionString: os.Getenv("SHARED_TEST_LIBPQ"),
		Credential:       pgentra.CredentialManagedIdentity,
		Timeout:          10 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if os.Getenv("SHARED_TEST_GATE") == "1" {
		fmt.Println("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "gate:", err)
			return 1
		}
	}
	r := workerReport{PID: os.Getpid()}
	r.Token, err = c.Token(context.Background())
	var pe *pgentra.Error
	switch {
	case errors.As(err, &pe):
		r.Error, r.Kind, r.ServiceCode, r.Message = fmt.Sprintf("%T", err), int(pe.Kind), pe.ServiceCode, pe.Message
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r.Requests = c.TokenRequests()
	if err == nil && os.Getenv("SHARED_TEST_LOGIN") == "1" {
		if r.User, err = currentUser(c); err != nil {
			fmt.Fprintln(os.Stderr, "login:", err)
			return 1
		}
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	return 0
}

// currentUser logs in to PostgreSQL (lib/pq) with the connector's token.
func currentUser(c *pgentra.Connector) (string, error) {
	s, err := c.ConnectionString(pgentra.Libpq)
	if err != nil {
		return "", err
	}
	db, err := sql.Open("postgres", s)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var user string
	err = db.QueryRow("select current_user").Scan(&user)
	return user, err
}

// sharedFolder is a fresh private cache folder for one test, removed at its end; the emulator
// is reset at both ends.
func sharedFolder(t *testing.T, h harness.Env) string {
	t.Helper()
	dir := filepath.Join(os.Getenv("PGENTRA_TEST_DIR"), "go-shared-"+t.Name())
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.Reset(t)
	t.Cleanup(func() {
		h.Reset(t)
		os.RemoveAll(dir)
	})
	return dir
}

type worker struct {
	cmd *exec.Cmd
	out *bufio.Reader
	in  io.WriteCloser
}

// startWorker starts this binary as a worker with sharing set to `switchValue` through dir.
func startWorker(t *testing.T, h harness.Env, dir, switchValue string, extra ...string) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SHARED_TEST_WORKER=1", "SHARED_TEST_LIBPQ="+h.DSN(),
		"PGENTRA_SHARED_CACHE="+switchValue, "PGENTRA_CACHE_DIR="+dir)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &worker{cmd: cmd, out: bufio.NewReader(out), in: in}
}

func (w *worker) line(t *testing.T) string {
	t.Helper()
	s, err := w.out.ReadString('\n')
	if err != nil {
		t.Fatalf("worker %d: %v", w.cmd.Process.Pid, err)
	}
	return strings.TrimSpace(s)
}

func (w *worker) report(t *testing.T) workerReport {
	t.Helper()
	var r workerReport
	if err := json.Unmarshal([]byte(w.line(t)), &r); err != nil {
		t.Fatal(err)
	}
	w.in.Close()
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	return r
}

// loginIf is the variable that makes a worker log in to PostgreSQL with its token.
func loginIf(yes bool) string {
	if yes {
		return "SHARED_TEST_LOGIN=1"
	}
	return "SHARED_TEST_LOGIN=0"
}

// freshProcess runs one worker to its end: a later deploy, a worker started later.
func freshProcess(t *testing.T, h harness.Env, dir, switchValue string) workerReport {
	t.Helper()
	return startWorker(t, h, dir, switchValue).report(t)
}

func TestSharedCacheColdWorkersMakeOneRequestAndALaterProcessNone(t *testing.T) {
	h := harness.Require(t)
	dir := sharedFolder(t, h)
	h.Fault(t, `[{"delay_ms": 300}]`) // the first request is slow: the others ask while it runs
	ws := make([]*worker, sharedWorkers)
	for i := range ws {
		ws[i] = startWorker(t, h, dir, "1", "SHARED_TEST_GATE=1", loginIf(i == 0))
	}
	for _, w := range ws {
		if got := w.line(t); got != "ready" {
			t.Fatalf("a worker said %q", got)
		}
	}
	for _, w := range ws {
		io.WriteString(w.in, "go\n") // every worker is ready: all ask now
	}
	tokens, pids, sum := map[string]bool{}, map[int]bool{}, uint64(0)
	var users []string
	for _, w := range ws {
		r := w.report(t)
		if r.Error != "" {
			t.Fatalf("a worker failed: %s", r.Message)
		}
		tokens[r.Token], pids[r.PID] = true, true
		sum += r.Requests
		if r.User != "" {
			users = append(users, r.User)
		}
	}
	if n := h.IdentityRequests(t); n != 1 {
		t.Fatalf("%d workers made %d identity requests", sharedWorkers, n)
	}
	if len(tokens) != 1 || len(pids) != sharedWorkers || sum != 1 {
		t.Fatalf("%d tokens, %d processes, %d requests by the connectors", len(tokens), len(pids), sum)
	}
	if len(users) != 1 || users[0] != "pgentra-app" {
		t.Fatalf("logins: %v", users)
	}
	// A warm cache costs nothing.
	later := freshProcess(t, h, dir, "1")
	if !tokens[later.Token] || later.Requests != 0 || h.IdentityRequests(t) != 1 {
		t.Fatalf("a later process: %d requests by it, %d in all", later.Requests, h.IdentityRequests(t))
	}
}

func TestSharedCacheWorkersStartedAfterTheParentFetchedMakeNoRequest(t *testing.T) {
	h := harness.Require(t)
	dir := sharedFolder(t, h)
	// The parent warms with sharing on (its own connector), then starts its workers.
	t.Setenv("PGENTRA_SHARED_CACHE", "1")
	t.Setenv("PGENTRA_CACHE_DIR", dir)
	tok, err := h.Connector(t).Token(context.Background())
	if err != nil || h.IdentityRequests(t) != 1 {
		t.Fatalf("the parent's token: %v", err)
	}
	ws := make([]*worker, sharedWorkers)
	for i := range ws {
		ws[i] = startWorker(t, h, dir, "1", loginIf(i == 0))
	}
	for i, w := range ws {
		r := w.report(t)
		if r.Token != tok || r.Requests != 0 || (i == 0 && r.User != "pgentra-app") {
			t.Fatalf("worker %d: same token %v, %d requests, user %q (%s)", i, r.Token == tok, r.Requests, r.User, r.Message)
		}
	}
	if n := h.IdentityRequests(t); n != 1 {
		t.Fatalf("%d workers made %d identity requests", sharedWorkers, n-1)
	}
}

func TestSharedCacheSwitchingOffIsHonouredPerProcess(t *testing.T) {
	h := harness.Require(t)
	dir := sharedFolder(t, h)
	warm := freshProcess(t, h, dir, "1")
	if warm.Requests != 1 {
		t.Fatalf("warm: %+v", warm.Requests)
	}
	for _, spelling := range []string{"0", "false", "no", "OFF"} {
		if r := freshProcess(t, h, dir, spelling); r.Requests != 1 {
			t.Errorf("PGENTRA_SHARED_CACHE=%s: %d requests (%s)", spelling, r.Requests, r.Message)
		}
	}
	if n := h.IdentityRequests(t); n != 5 {
		t.Fatalf("%d identity requests, want 5: each switched-off process asks for itself", n)
	}
	if on := freshProcess(t, h, dir, "1"); on.Token != warm.Token || on.Requests != 0 || h.IdentityRequests(t) != 5 {
		t.Fatalf("sharing on again: %d requests (%s)", on.Requests, on.Message)
	}
}

func TestSharedCacheAFailureIsTheNextProcessAnswerWithTheSameKind(t *testing.T) {
	h := harness.Require(t)
	dir := sharedFolder(t, h)
	// Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
	h.Fault(t, `[{"status": 429, "retry_after": 30}]`)
	first := freshProcess(t, h, dir, "1")
	if first.Kind != int(pgentra.KindIdentityService) || h.IdentityRequests(t) != 1 {
		t.Fatalf("first: kind %d (%s)", first.Kind, first.Message)
	}
	second := freshProcess(t, h, dir, "1")
	if h.IdentityRequests(t) != 1 {
		t.Fatal("the second process asked instead of answering from the shared failure")
	}
	if second.Error != first.Error || second.Kind != first.Kind || second.ServiceCode != first.ServiceCode {
		t.Fatalf("second: %+v, first: %+v", second, first)
	}
	if !strings.Contains(second.Message, "another process's request") {
		t.Fatalf("second: %s", second.Message)
	}
	if off := freshProcess(t, h, dir, "0"); off.Requests != 1 || h.IdentityRequests(t) != 2 {
		t.Fatalf("switched off: %d requests (%s)", off.Requests, off.Message)
	}
}
