package pgentra

/*
#include <stdint.h>
#include "pgentra.h"
int pgentra_go_token_start(struct pgentra_connector *c, uintptr_t handle);
*/
import "C"

import (
	"context"
	"runtime/cgo"
)

// tokenResult is what pgentra_token_start's callback delivers.
type tokenResult struct {
	serial uint64
	token  string
	err    error
}

//export pgentraGoTokenDone
func pgentraGoTokenDone(h C.uintptr_t, status C.int, serial C.uint64_t, token, message, code *C.char) {
	handle := cgo.Handle(h)
	ch := handle.Value().(chan tokenResult)
	handle.Delete()
	if status != C.PGENTRA_OK {
		e := &Error{Kind: Kind(status)}
		if message != nil {
			e.Message = C.GoString(message)
		}
		if code != nil {
			e.ServiceCode = C.GoString(code)
		}
		ch <- tokenResult{err: e}
		return
	}
	ch <- tokenResult{serial: uint64(serial), token: C.GoString(token)} // pgentra wipes its copy after
}

// tokenAsync starts a token request that holds no OS thread while it waits: the core calls
// back from its own runtime when the request ends. A cancelled ctx returns at once; the request
// goes on in the core and fills its cache (the buffered channel takes the late result).
func (c *Connector) tokenAsync(ctx context.Context) (string, error) {
	p, err := c.acquire()
	if err != nil {
		return "", err
	}
	ch := make(chan tokenResult, 1)
	h := cgo.NewHandle(ch)
	rc := C.pgentra_go_token_start(p, C.uintptr_t(h))
	c.release()
	if rc != C.PGENTRA_OK {
		h.Delete()
		return "", &Error{Kind: Kind(rc), Message: "pgentra_token_start failed"}
	}
	// A result delivered at once (a cached token, or an error such as secret mode) wins over
	// a context that ends at the same moment.
	select {
	case r := <-ch:
		return c.keep(r)
	default:
	}
	select {
	case r := <-ch:
		return c.keep(r)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// keep returns the delivered token (reusing the Go copy of the same serial) or error.
func (c *Connector) keep(r tokenResult) (string, error) {
	if r.err != nil {
		return "", r.err
	}
	if held := c.last.Load(); held != nil && held.serial == r.serial {
		return held.token, nil
	}
	c.last.Store(&tokenCopy{serial: r.serial, token: r.token})
	return r.token, nil
}
