// Package pgentra gives Microsoft Entra ID tokens for Azure Database for PostgreSQL to Go
// programs: configuration discovery (Service Connector's AZURE_POSTGRESQL_* variables and the
// Azure SDK variables), the Entra credential chain, a refresh-ahead token cache and the
// connection string in libpq, URI, ADO.NET, JDBC or JSON form, all from pgentra's Rust core
// through its C ABI (libpgentra) with cgo.
//
//	c, err := pgentra.FromEnv("")        // AZURE_POSTGRESQL_* (or a custom prefix)
//	if err != nil { ... }
//	defer c.Close()
//	dsn, err := c.ConnectionString(pgentra.Libpq) // current token as the password
//
// For connection pools whose every new connection needs a current token, see the
// subpackages github.com/pgentra/pgentra/go/pq (database/sql with lib/pq) and
// github.com/pgentra/pgentra/go/pgxhook (pgx v5 / pgxpool). This package itself depends on
// nothing but the standard library and libpgentra.
//
// # Linking
//
// The package links libpgentra.so from ../target/release (relative to this directory) and
// records that directory as an rpath, so tests and programs run without LD_LIBRARY_PATH.
// Build the library first with `cargo build --release -p pgentra-capi`. To link a library
// elsewhere, add flags through the environment, e.g.
// CGO_LDFLAGS="-L/opt/pgentra/lib -Wl,-rpath,/opt/pgentra/lib".
//
// # Threads and blocking
//
// A Connector is safe for concurrent use by any number of goroutines; share one per process.
// Token, ConnectionString and User may block on an identity request (at most the connector's
// timeout, 30 s by default; a fresh cached token takes no lock and no system call).
package pgentra

/*
#cgo CFLAGS: -I${SRCDIR}/../crates/pgentra-capi/include
#cgo LDFLAGS: -L${SRCDIR}/../target/release -Wl,-rpath,${SRCDIR}/../target/release -lpgentra
#include <stdlib.h>
#include "pgentra.h"
*/
import "C"

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Format selects the form of ConnectionString's result. The values are those of the C API's
// pgentra_format.
type Format uint32

const (
	// Libpq: `host=... port=... dbname=... user=... password=... sslmode=...` (lib/pq, pgx, libpq).
	Libpq Format = C.PGENTRA_FORMAT_LIBPQ
	// URI: `postgresql://user:password@host:port/dbname?sslmode=...`.
	URI Format = C.PGENTRA_FORMAT_URI
	// ADO: ADO.NET / Npgsql `Server=...;Port=...;Database=...;User Id=...;Password=...;Ssl Mode=...;`.
	ADO Format = C.PGENTRA_FORMAT_ADO
	// JDBC: `jdbc:postgresql://host:port/dbname?sslmode=...&user=...&password=...`.
	JDBC Format = C.PGENTRA_FORMAT_JDBC
	// JSON: an object with host, port, dbname, user, password and sslmode.
	JSON Format = C.PGENTRA_FORMAT_JSON
	// Shell: `export PGHOST='...' PGPORT='...' ...`, every value single-quoted for POSIX shells.
	Shell Format = C.PGENTRA_FORMAT_SHELL
	// PDO: PHP PDO's `pgsql:` DSN with user and password. A value holding ';' cannot be
	// carried: ConnectionString returns an *Error of kind config.
	PDO Format = C.PGENTRA_FORMAT_PDO
)

// String returns the format's name as the CLI spells it ("libpq", "uri", "ado", ...).
func (f Format) String() string {
	switch f {
	case Libpq:
		return "libpq"
	case URI:
		return "uri"
	case ADO:
		return "ado"
	case JDBC:
		return "jdbc"
	case JSON:
		return "json"
	case Shell:
		return "shell"
	case PDO:
		return "pdo"
	default:
		return "format(" + strconv.FormatUint(uint64(f), 10) + ")"
	}
}

// Credential forces one credential (Options.Credential). The values are those of the C
// API's pgentra_credential.
type Credential uint32

const (
	// CredentialAuto forces nothing: PGENTRA_CREDENTIAL if set, else the credential chain.
	CredentialAuto Credential = C.PGENTRA_CREDENTIAL_AUTO
	// CredentialPassword: the configured password (secret mode); no identity request at all.
	CredentialPassword Credential = C.PGENTRA_CREDENTIAL_PASSWORD
	// CredentialClientSecret: a service principal with a client secret.
	CredentialClientSecret Credential = C.PGENTRA_CREDENTIAL_CLIENT_SECRET
	// CredentialClientCertificate: a service principal with a certificate
	// (AZURE_CLIENT_CERTIFICATE_PATH, PEM).
	CredentialClientCertificate Credential = C.PGENTRA_CREDENTIAL_CLIENT_CERTIFICATE
	// CredentialWorkloadIdentity: workload identity (AZURE_FEDERATED_TOKEN_FILE).
	CredentialWorkloadIdentity Credential = C.PGENTRA_CREDENTIAL_WORKLOAD_IDENTITY
	// CredentialManagedIdentity: managed identity (App Service / Functions / Container Apps
	// endpoint, Azure Arc, IMDS).
	CredentialManagedIdentity Credential = C.PGENTRA_CREDENTIAL_MANAGED_IDENTITY
	// CredentialAzureCLI: the Azure CLI (`az account get-access-token`).
	CredentialAzureCLI Credential = C.PGENTRA_CREDENTIAL_AZURE_CLI
	// CredentialAzureDeveloperCLI: the Azure Developer CLI (`azd auth token`).
	CredentialAzureDeveloperCLI Credential = C.PGENTRA_CREDENTIAL_AZURE_DEVELOPER_CLI
)

// Options are values passed by code to New. Every field that is set (non-zero) wins over the
// environment; zero fields fall back to it.
type Options struct {
	// Prefix of the Service Connector variables; "": PGENTRA_PREFIX, else AZURE_POSTGRESQL.
	Prefix string
	// ConnectionString in libpq, URI, ADO.NET or JDBC form (detected); "": from the
	// environment (<prefix>_CONNECTIONSTRING).
	ConnectionString string
	// ClientID of a user-assigned managed identity or a service principal.
	ClientID string
	// TenantID of a service principal.
	TenantID string
	// ClientSecret of a service principal.
	ClientSecret string
	// Scope of the token, ending in /.default; "": from the host's cloud (or PGENTRA_SCOPE).
	Scope string
	// Credential forces one credential; CredentialAuto (zero) forces nothing.
	Credential Credential
	// AllowInsecure lets a token travel with an sslmode that does not guarantee TLS (local
	// test servers only). nil: PGENTRA_ALLOW_INSECURE decides.
	AllowInsecure *bool
	// AllowUnverifiedTLS keeps sslmode=require for Azure servers instead of raising it to
	// verify-full; nil means PGENTRA_ALLOW_UNVERIFIED_TLS decides.
	AllowUnverifiedTLS *bool
	// Timeout is the total deadline of one token acquisition, retries included (rounded up
	// to whole milliseconds); 0: PGENTRA_TIMEOUT or 30 seconds.
	Timeout time.Duration
}

// Connector is a connection to one Azure Database for PostgreSQL server's configuration and
// token cache. Create one with FromEnv or New, share it among goroutines, and Close it when
// done. A finalizer closes a Connector that becomes unreachable without Close, as a safety
// net only: the token cache and its wiped memory are released at an unpredictable time then.
type Connector struct {
	mu       sync.Mutex
	ptr      *C.pgentra_connector
	inflight int  // calls using ptr right now (possibly in background goroutines)
	closed   bool // Close was called; ptr is freed when inflight drops to 0
	// The Go copy of the core's current token: Token returns it without a copy while the
	// core reports the same serial (pgentra_token_if_changed).
	last atomic.Pointer[tokenCopy]
}

type tokenCopy struct {
	serial uint64
	token  string
}

// String describes the connector without any of its state: never the token it holds.
func (c *Connector) String() string { return "pgentra.Connector" }

// GoString is String, for %#v.
func (c *Connector) GoString() string { return "&pgentra.Connector{}" }

// Version returns the version of the linked libpgentra, e.g. "0.1.0".
func Version() string {
	return C.GoString(C.pgentra_version())
}

// FromEnv creates a connector from the process environment: Service Connector's
// <prefix>_* variables and the Azure SDK variables. prefix "" means PGENTRA_PREFIX, else
// AZURE_POSTGRESQL. No network request is made here.
func FromEnv(prefix string) (*Connector, error) {
	var cprefix *C.char
	if prefix != "" {
		if err := checkNUL("prefix", prefix); err != nil {
			return nil, err
		}
		cprefix = C.CString(prefix)
		defer C.free(unsafe.Pointer(cprefix))
	}
	return create(func(out **C.pgentra_connector) C.int {
		return C.pgentra_connector_from_env(cprefix, out)
	})
}

// New creates a connector from opts; the fields that are set win over the environment.
// No network request is made here.
func New(opts Options) (*Connector, error) {
	var o C.pgentra_options
	C.pgentra_options_init(&o)

	var allocated []cstr
	defer func() {
		for _, s := range allocated {
			wipeFree(s)
		}
	}()
	fields := []struct {
		name  string
		value string
		dst   **C.char
	}{
		{"Options.Prefix", opts.Prefix, &o.prefix},
		{"Options.ConnectionString", opts.ConnectionString, &o.connection_string},
		{"Options.ClientID", opts.ClientID, &o.client_id},
		{"Options.TenantID", opts.TenantID, &o.tenant_id},
		{"Options.ClientSecret", opts.ClientSecret, &o.client_secret},
		{"Options.Scope", opts.Scope, &o.scope},
	}
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		if err := checkNUL(f.name, f.value); err != nil {
			return nil, err
		}
		p := C.CString(f.value)
		allocated = append(allocated, cstr{p, len(f.value)})
		*f.dst = p
	}
	o.credential = C.uint32_t(opts.Credential)
	if opts.AllowInsecure != nil {
		if *opts.AllowInsecure {
			o.allow_insecure = 1
		} else {
			o.allow_insecure = 0
		}
	}
	if opts.AllowUnverifiedTLS != nil {
		if *opts.AllowUnverifiedTLS {
			o.allow_unverified_tls = 1
		} else {
			o.allow_unverified_tls = 0
		}
	}
	switch {
	case opts.Timeout < 0:
		return nil, &Error{Kind: KindInvalidArgument, Message: "Options.Timeout is negative"}
	case opts.Timeout > 0:
		ms := (opts.Timeout + time.Millisecond - 1) / time.Millisecond
		if ms > math.MaxUint32 {
			ms = math.MaxUint32
		}
		o.timeout_ms = C.uint32_t(ms)
	}
	return create(func(out **C.pgentra_connector) C.int {
		return C.pgentra_connector_new(&o, out)
	})
}

func create(f func(out **C.pgentra_connector) C.int) (*Connector, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p *C.pgentra_connector
	if rc := f(&p); rc != C.PGENTRA_OK {
		return nil, lastError(rc)
	}
	c := &Connector{ptr: p}
	runtime.SetFinalizer(c, (*Connector).Close)
	return c, nil
}

// Close releases the connector and its token cache (wiping the token). It is safe to call
// more than once and from any goroutine; it never blocks on a token request. Calls still in
// flight (for instance a Token whose context was cancelled) finish first: the native
// connector is released when the last of them returns. Methods called after Close return
// ErrClosed. Close always returns nil.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.last.Store(nil) // drop the Go copy of the token
	runtime.SetFinalizer(c, nil)
	if c.inflight == 0 {
		c.free()
	}
	return nil
}

// free releases the native connector; c.mu must be held.
func (c *Connector) free() {
	if c.ptr != nil {
		C.pgentra_connector_free(c.ptr)
		c.ptr = nil
	}
}

// acquire returns the native pointer for one call and keeps it alive until release.
func (c *Connector) acquire() (*C.pgentra_connector, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ptr == nil {
		return nil, ErrClosed
	}
	c.inflight++
	return c.ptr, nil
}

func (c *Connector) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if c.closed && c.inflight == 0 {
		c.free()
	}
}

// Token returns the current access token: acquired, or refreshed ahead of expiry, when
// needed. In secret mode (a password is configured) it fails with a KindConfig error, as no
// token is ever acquired; use ConnectionString, which works in both modes.
//
// The native call blocks (up to the connector's timeout). When ctx can be cancelled, the call
// runs in its own goroutine and Token returns ctx.Err() as soon as ctx is done; the native
// call itself cannot be interrupted and completes in the background, and the token it
// acquires, if any, is cached for the next caller.
func (c *Connector) Token(ctx context.Context) (string, error) {
	// Fast path: the core's fresh token is the one we hold. One native call that cannot fail,
	// so no OS-thread lock, no closure and no allocation.
	if held := c.last.Load(); held != nil {
		if p, err := c.acquire(); err == nil {
			fresh := uint64(C.pgentra_fresh_serial(p))
			c.release()
			if fresh == held.serial {
				return held.token, nil
			}
		}
	}
	if ctx != nil && ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		// Cancellable: wait on a channel, holding no OS thread (the core calls back).
		return c.tokenAsync(ctx)
	}
	return c.run(ctx, c.tokenNative)
}

// tokenNative asks the core for its current token only if it is not the one held in c.last:
// a cached read is then one native call and no copy. The caller holds the OS thread.
func (c *Connector) tokenNative(p *C.pgentra_connector) (string, error) {
	held := c.last.Load()
	var known uint64
	if held != nil {
		known = held.serial
	}
	var serial C.uint64_t
	var out *C.char
	if rc := C.pgentra_token_if_changed(p, C.uint64_t(known), &serial, &out); rc != C.PGENTRA_OK {
		return "", lastError(rc)
	}
	if out == nil {
		return held.token, nil
	}
	s := C.GoString(out)
	C.pgentra_string_free(out) // wipes, then frees
	c.last.Store(&tokenCopy{serial: uint64(serial), token: s})
	return s, nil
}

// ConnectionString returns the connection string in format with the configured password or
// a current token. In secret mode no network request is made. It may block on a token request;
// see ConnectionStringContext to bound the wait.
func (c *Connector) ConnectionString(format Format) (string, error) {
	return c.ConnectionStringContext(context.Background(), format)
}

// ConnectionStringContext is ConnectionString honouring ctx like Token does: it waits for a
// current token as Token(ctx) does (no OS thread per waiter; ctx.Err() as soon as ctx is done,
// while the request goes on and fills the cache), then renders from the cache without waiting.
func (c *Connector) ConnectionStringContext(ctx context.Context, format Format) (string, error) {
	if ctx != nil && ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		// Refused settings (a TLS policy error) before any identity request: rendered
		// without a token, they carry the same check.
		if _, err := c.SettingsString(format, ""); err != nil {
			return "", err
		}
		if _, err := c.Token(ctx); err != nil {
			var e *Error
			// KindConfig: a configured password (no token at all) or a configuration error,
			// which the call below reports the same way, without a request.
			if !errors.As(err, &e) || e.Kind != KindConfig {
				return "", err
			}
		}
		ctx = context.Background()
	}
	return c.stringCall(ctx, func(p *C.pgentra_connector, out **C.char) C.int {
		return C.pgentra_connection_string(p, C.uint32_t(format), out)
	})
}

// ConnectionStringWith is ConnectionStringContext after the caller's own values, given as a
// libpq keyword/value string (e.g. the host, port and sslmode of a driver's own configuration).
// pgentra merges them and checks the result as it will leave: a weaker sslmode never replaces
// a stricter one, and an Azure server name gets sslmode=verify-full with a CA bundle. A
// password among them is the caller's: then no token is attached.
func (c *Connector) ConnectionStringWith(ctx context.Context, format Format, overrides string) (string, error) {
	if err := checkNUL("overrides", overrides); err != nil {
		return "", err
	}
	return c.stringCall(ctx, func(p *C.pgentra_connector, out **C.char) C.int {
		o := C.CString(overrides)
		defer wipeFree(cstr{o, len(overrides)})
		return C.pgentra_connection_string_with(p, C.uint32_t(format), o, out)
	})
}

// SettingsString is ConnectionStringWith without a password or token, and without waiting for
// one: the parameters a driver's configuration keeps when every connection gets its password
// separately (pgx's BeforeConnect). The TLS policy is applied the same way.
func (c *Connector) SettingsString(format Format, overrides string) (string, error) {
	if err := checkNUL("overrides", overrides); err != nil {
		return "", err
	}
	return c.stringCall(context.Background(), func(p *C.pgentra_connector, out **C.char) C.int {
		o := C.CString(overrides)
		defer wipeFree(cstr{o, len(overrides)})
		return C.pgentra_settings_string(p, C.uint32_t(format), o, out)
	})
}

// User returns the database user: explicit, else configured, else derived from the token's
// claims (which may acquire a token).
func (c *Connector) User() (string, error) {
	return c.UserContext(context.Background())
}

// UserContext is User honouring ctx like Token does.
func (c *Connector) UserContext(ctx context.Context) (string, error) {
	return c.stringCall(ctx, func(p *C.pgentra_connector, out **C.char) C.int {
		return C.pgentra_user(p, out)
	})
}

// InvalidateIf drops the cached token only if it is rejected (the token the server refused,
// SQLSTATE 28P01), so that many connections refused together cause one new identity request.
// It reports whether the token was dropped. Prefer it to Invalidate in a retry path.
func (c *Connector) InvalidateIf(rejected string) bool {
	p, err := c.acquire()
	if err != nil {
		return false
	}
	defer c.release()
	if checkNUL("rejected", rejected) != nil {
		return false
	}
	r := C.CString(rejected)
	defer wipeFree(cstr{r, len(rejected)})
	c.last.Store(nil) // forget the Go copy: the next Token asks the core
	return C.pgentra_invalidate_if(p, r) == 1
}

// ConnectFailed tells the connector that a connect with token (the password it handed out)
// failed, and reports whether to connect once more, with a current token: pgentra's rule, the
// same in every language. sqlstate is the server's SQLSTATE from the driver's error ("" when
// there is none); usedPassword, when given (one value), is whether the failed connection sent
// the password (libpq's PQconnectionUsedPassword). A SQLSTATE other than 28P01, or none with
// usedPassword false, is not a refusal of the token: nothing is dropped. A pure-Go driver
// (pgx, lib/pq) reports every refusal with its SQLSTATE, so it passes usedPassword false
// for an error without one. Otherwise the token is dropped unless another connection already
// replaced it (many refusals at once cause one identity request), and the answer is true when
// the next token will be another one; false when the connector keeps it (fetched right after
// another refusal and refused again: the role is at fault, not the token), in secret mode, and
// after Close. It makes no network request.
func (c *Connector) ConnectFailed(token, sqlstate string, usedPassword ...bool) bool {
	p, err := c.acquire()
	if err != nil {
		return false
	}
	defer c.release()
	if token == "" || checkNUL("token", token) != nil || checkNUL("sqlstate", sqlstate) != nil {
		return false
	}
	used := C.int(-1)
	if len(usedPassword) > 0 {
		used = 0
		if usedPassword[0] {
			used = 1
		}
	}
	t := C.CString(token)
	defer wipeFree(cstr{t, len(token)})
	var s *C.char
	if sqlstate != "" {
		s = C.CString(sqlstate)
		defer C.free(unsafe.Pointer(s))
	}
	var retry C.int
	if C.pgentra_connect_failed(p, t, s, used, &retry) != C.PGENTRA_OK || retry != 1 {
		return false
	}
	c.last.Store(nil) // forget the Go copy: the next Token asks the core
	return true
}

// TokenRequests is the number of token requests this connector has made to the identity
// service (0 in secret mode and after Close).
func (c *Connector) TokenRequests() uint64 {
	p, err := c.acquire()
	if err != nil {
		return 0
	}
	defer c.release()
	var n C.uint64_t
	if C.pgentra_token_requests(p, &n) != C.PGENTRA_OK {
		return 0
	}
	return uint64(n)
}

// Invalidate drops the cached token so that the next call acquires a new one (for instance
// after the server rejected a token). It does nothing after Close.
func (c *Connector) Invalidate() {
	p, err := c.acquire()
	if err != nil {
		return
	}
	defer c.release()
	C.pgentra_invalidate(p)
}

// stringCall runs one string-returning native call, in the background when ctx can be
// cancelled.
func (c *Connector) stringCall(ctx context.Context, f func(*C.pgentra_connector, **C.char) C.int) (string, error) {
	return c.run(ctx, func(p *C.pgentra_connector) (string, error) { return callString(p, f) })
}

// run makes one native call g on the OS thread it locks (the C API's error message is
// thread-local), in the background when ctx can be cancelled.
func (c *Connector) run(ctx context.Context, g func(*C.pgentra_connector) (string, error)) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, err := c.acquire()
	if err != nil {
		return "", err
	}
	if ctx.Done() == nil { // never cancelled: no goroutine needed
		defer c.release()
		return locked(p, g)
	}
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1) // buffered: the goroutine never blocks after an abandoned wait
	go func() {
		defer c.release() // keeps c (hence the native connector) alive until the call ends
		s, err := locked(p, g)
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func locked(p *C.pgentra_connector, g func(*C.pgentra_connector) (string, error)) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return g(p)
}

// callString makes the native call and reads its error (the caller holds the OS thread: the
// error message is thread-local in the C API), then copies and wipes the returned string.
func callString(p *C.pgentra_connector, f func(*C.pgentra_connector, **C.char) C.int) (string, error) {
	var out *C.char
	if rc := f(p, &out); rc != C.PGENTRA_OK {
		return "", lastError(rc)
	}
	s := C.GoString(out)
	C.pgentra_string_free(out) // wipes, then frees
	return s, nil
}

// lastError builds the *Error of a failed call; the caller holds the OS thread of that call.
func lastError(rc C.int) error {
	e := &Error{Kind: Kind(rc)}
	if m := C.pgentra_last_error_message(); m != nil {
		e.Message = C.GoString(m)
	}
	if code := C.pgentra_last_error_code(); code != nil {
		e.ServiceCode = C.GoString(code)
	}
	return e
}

type cstr struct {
	p *C.char
	n int
}

// wipeFree zeroes a C string made by C.CString (it may hold a secret), then frees it.
func wipeFree(s cstr) {
	clear(unsafe.Slice((*byte)(unsafe.Pointer(s.p)), s.n))
	C.free(unsafe.Pointer(s.p))
}

func checkNUL(name, value string) error {
	if strings.IndexByte(value, 0) >= 0 {
		return &Error{Kind: KindInvalidArgument, Message: name + " contains a NUL byte"}
	}
	return nil
}
