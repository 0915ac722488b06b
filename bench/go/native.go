package main

// Breakdown rows: the same libpgentra calls made directly through cgo from this program, to
// show where the wrapper's time goes (cgo floor, the C call that copies the token out, the Go
// copy of it). Not part of the comparison itself.

/*
#cgo CFLAGS: -I${SRCDIR}/../../crates/pgentra-capi/include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -Wl,-rpath,${SRCDIR}/../../target/release -lpgentra
#include <stdlib.h>
#include "pgentra.h"

static int bench_token_free(pgentra_connector *c) {
	char *s = NULL;
	int rc = pgentra_token(c, &s);
	if (rc == PGENTRA_OK) pgentra_string_free(s);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"testing"
	"unsafe"
)

type native struct{ p *C.pgentra_connector }

func newNative(cs, clientID string) (*native, error) {
	var o C.pgentra_options
	C.pgentra_options_init(&o)
	ccs, cid := C.CString(cs), C.CString(clientID)
	defer C.free(unsafe.Pointer(ccs))
	defer C.free(unsafe.Pointer(cid))
	o.connection_string, o.client_id = ccs, cid
	o.credential = C.PGENTRA_CREDENTIAL_MANAGED_IDENTITY
	var p *C.pgentra_connector
	if rc := C.pgentra_connector_new(&o, &p); rc != C.PGENTRA_OK {
		return nil, fmt.Errorf("pgentra_connector_new: status %d: %s", int(rc), C.GoString(C.pgentra_last_error_message()))
	}
	n := &native{p}
	if rc := C.bench_token_free(p); rc != C.PGENTRA_OK { // warm its cache
		return nil, fmt.Errorf("pgentra_token: status %d: %s", int(rc), C.GoString(C.pgentra_last_error_message()))
	}
	return n, nil
}

func (n *native) close() { C.pgentra_connector_free(n.p) }

// cgoFloor: one cgo call that does nothing but return a static pointer.
func cgoFloor(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = C.pgentra_version()
	}
}

// tokenC: pgentra_token + pgentra_string_free in one cgo call (no Go string made).
func (n *native) tokenC(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if C.bench_token_free(n.p) != C.PGENTRA_OK {
			b.Fatal("pgentra_token failed")
		}
	}
}

// tokenGo: pgentra_token, C.GoString, pgentra_string_free: what the wrapper did on every call
// before it kept a copy keyed by the token's serial (it still does this when the token changed).
func (n *native) tokenGo(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var s *C.char
		if C.pgentra_token(n.p, &s) != C.PGENTRA_OK {
			b.Fatal("pgentra_token failed")
		}
		_ = C.GoString(s)
		C.pgentra_string_free(s)
	}
}
