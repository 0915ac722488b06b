//! A string that never shows itself: tokens, client secrets and passwords live here.

use std::fmt;
use std::sync::Arc;
use zeroize::Zeroize;

/// A secret string. `Debug` and `Display` print `***`; the bytes are zeroed when the last
/// reference is dropped. Cloning is cheap (a reference count), so handing a cached token out
/// allocates nothing.
#[derive(Clone)]
pub struct Secret(Arc<SecretBox>);

struct SecretBox(String);

impl Drop for SecretBox {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::new(SecretBox(value.into())))
    }
    /// The secret itself. Call this only where the value is handed to its destination.
    pub fn expose(&self) -> &str {
        &self.0 .0
    }
    /// Whether both are the same allocation (the same cached token), without comparing bytes.
    /// Bindings use it to reuse the string they built for a token.
    #[inline]
    pub fn ptr_eq(&self, other: &Secret) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    pub fn is_empty(&self) -> bool {
        self.0 .0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Constant-time enough for equality of configuration values; never used for auth.
        self.expose() == other.expose()
    }
}
impl Eq for Secret {}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}
impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2-token");
    }
}
