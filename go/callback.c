// The C side of pgentra_token_start's callback: hands the outcome to Go (callback.go).
#include "_cgo_export.h"

void pgentra_go_token_done(void *user_data, int status, uint64_t serial, const char *token,
                           const char *message, const char *service_code) {
    pgentraGoTokenDone((uintptr_t)user_data, status, serial, (char *)token, (char *)message, (char *)service_code);
}

// Start a request whose callback receives `handle` (a cgo.Handle): the integer becomes the
// user_data pointer here, in C, and comes back as an integer in pgentra_go_token_done.
int pgentra_go_token_start(struct pgentra_connector *c, uintptr_t handle) {
    return pgentra_token_start(c, pgentra_go_token_done, (void *)handle);
}
