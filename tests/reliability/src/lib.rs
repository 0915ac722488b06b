//! The suite is in tests/reliability.rs; it shares the end-to-end helpers (pgentra-e2e).
