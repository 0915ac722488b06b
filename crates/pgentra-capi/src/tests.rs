//! The boundary, exercised from Rust as C would: raw pointers, NULLs, bad bytes, panics.
//! No test writes the process environment or makes a network request (secret mode only).

use super::*;
use pgentra_status::*;

const SECRET_DSN: &str = "host=h port=5432 dbname=d user=u password=p sslmode=require";
/// A prefix with no variables anywhere, so the environment of the test run cannot interfere.
const PREFIX: &CStr = c"PGENTRA_CAPI_UNIT_TEST_NO_SUCH_PREFIX";

fn last_message() -> Option<String> {
    let p = pgentra_last_error_message();
    if p.is_null() {
        None
    } else {
        Some(unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
    }
}

fn last_code() -> Option<String> {
    let p = pgentra_last_error_code();
    if p.is_null() {
        None
    } else {
        Some(unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
    }
}

fn options() -> pgentra_options {
    let mut o = std::mem::MaybeUninit::<pgentra_options>::uninit();
    pgentra_options_init(o.as_mut_ptr());
    unsafe { o.assume_init() }
}

/// A connector in secret mode (no network ever).
fn secret_connector() -> *mut pgentra_connector {
    let dsn = CString::new(SECRET_DSN).unwrap();
    let mut o = options();
    o.prefix = PREFIX.as_ptr();
    o.connection_string = dsn.as_ptr();
    let mut c = ptr::null_mut();
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_OK as c_int, "{:?}", last_message());
    assert!(!c.is_null());
    assert_eq!(last_message(), None);
    c
}

/// Take a returned string and free it through the C path.
fn take(p: *mut c_char) -> String {
    assert!(!p.is_null());
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    pgentra_string_free(p);
    s
}

/// A non-null pointer value that must be overwritten with NULL on error.
fn poisoned<T>() -> *mut T {
    ptr::NonNull::dangling().as_ptr()
}

#[test]
fn status_numbers_mirror_error_kinds() {
    for kind in ErrorKind::ALL {
        assert_eq!(status_of(kind) as i32, kind as u8 as i32, "{kind:?}");
    }
    assert_eq!(PGENTRA_OK as i32, 0);
    assert_eq!(PGENTRA_ERR_NULL_ARGUMENT as i32, 100);
    assert_eq!(PGENTRA_ERR_INVALID_UTF8 as i32, 101);
    assert_eq!(PGENTRA_ERR_PANIC as i32, 102);
    assert_eq!(PGENTRA_ERR_INVALID_ARGUMENT as i32, 103);
}

#[test]
fn enum_numbers_mirror_the_core() {
    assert_eq!(format_of("t", pgentra_format::Shell as u32).unwrap(), Format::Shell);
    for (n, f) in [Format::Libpq, Format::Uri, Format::Ado, Format::Jdbc, Format::Json, Format::Shell].into_iter().enumerate() {
        assert_eq!(format_of("t", n as u32).unwrap(), f);
        assert_eq!(f as u32, n as u32);
    }
    for n in 1..=7u32 {
        let k = credential_of("t", n).unwrap().unwrap();
        assert_eq!(k as u32, n, "{k:?}");
    }
    assert_eq!(pgentra_credential::AzureDeveloperCli as u32, CredentialKind::AzureDeveloperCli as u32);
    assert_eq!(credential_of("t", 0).unwrap(), None);
    assert_eq!(credential_of("t", 8).unwrap_err().status, PGENTRA_ERR_INVALID_ARGUMENT);
}

#[test]
fn version_is_static_and_matches_the_crate() {
    let v = unsafe { CStr::from_ptr(pgentra_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn null_arguments() {
    let mut c: *mut pgentra_connector = poisoned();
    let mut s: *mut c_char = poisoned();

    assert_eq!(pgentra_connector_from_env(ptr::null(), ptr::null_mut()), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert!(last_message().unwrap().contains("'out'"), "{:?}", last_message());

    assert_eq!(pgentra_connector_new(ptr::null(), &mut c), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert!(c.is_null(), "*out is NULL on error");
    assert!(last_message().unwrap().contains("'opts'"));
    let o = options();
    assert_eq!(pgentra_connector_new(&o, ptr::null_mut()), PGENTRA_ERR_NULL_ARGUMENT as c_int);

    assert_eq!(pgentra_token(ptr::null_mut(), &mut s), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert!(s.is_null());
    assert!(last_message().unwrap().contains("pgentra_token: argument 'c' is NULL"));
    s = poisoned();
    assert_eq!(pgentra_user(ptr::null_mut(), &mut s), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert!(s.is_null());
    s = poisoned();
    assert_eq!(pgentra_connection_string(ptr::null_mut(), 0, &mut s), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert!(s.is_null());

    let c = secret_connector();
    assert_eq!(pgentra_token(c, ptr::null_mut()), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert_eq!(pgentra_connection_string(c, 0, ptr::null_mut()), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    assert_eq!(pgentra_user(c, ptr::null_mut()), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    pgentra_connector_free(c);

    // The void functions accept NULL.
    pgentra_string_free(ptr::null_mut());
    pgentra_connector_free(ptr::null_mut());
    pgentra_invalidate(ptr::null_mut());
    pgentra_options_init(ptr::null_mut());
}

#[test]
fn invalid_utf8_names_the_argument() {
    let bad = c"AZURE_\xff\xfePOSTGRESQL";
    let mut c: *mut pgentra_connector = poisoned();
    assert_eq!(pgentra_connector_from_env(bad.as_ptr(), &mut c), PGENTRA_ERR_INVALID_UTF8 as c_int);
    assert!(c.is_null());
    let m = last_message().unwrap();
    assert!(m.contains("'prefix'") && m.contains("UTF-8"), "{m}");

    let mut o = options();
    o.prefix = PREFIX.as_ptr();
    o.client_secret = bad.as_ptr();
    c = poisoned();
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_ERR_INVALID_UTF8 as c_int);
    assert!(c.is_null());
    assert!(last_message().unwrap().contains("opts->client_secret"));
}

#[test]
fn options_are_validated() {
    let dsn = CString::new(SECRET_DSN).unwrap();
    let mut o = options();
    assert!(o.prefix.is_null() && o.connection_string.is_null() && o.scope.is_null());
    assert_eq!((o.credential, o.allow_insecure, o.timeout_ms), (0, -1, 0));
    o.prefix = PREFIX.as_ptr();
    o.connection_string = dsn.as_ptr();

    let mut c: *mut pgentra_connector = poisoned();
    o.allow_insecure = 2;
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_ERR_INVALID_ARGUMENT as c_int);
    assert!(c.is_null());
    assert!(last_message().unwrap().contains("allow_insecure"));
    o.allow_insecure = -1;
    o.credential = 42;
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_ERR_INVALID_ARGUMENT as c_int);
    assert!(last_message().unwrap().contains("credential"));
    o.credential = pgentra_credential::Password as u32;
    o.timeout_ms = 1500;
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_OK as c_int);
    let cfg = unsafe { &(*c).inner }.config();
    assert_eq!(cfg.credential, CredentialKind::Password);
    assert_eq!(cfg.timeout, Duration::from_millis(1500));
    pgentra_connector_free(c);
}

#[test]
fn configuration_errors_carry_status_and_message() {
    let mut o = options();
    o.prefix = PREFIX.as_ptr();
    let mut c: *mut pgentra_connector = poisoned();
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_ERR_CONFIG as c_int);
    assert!(c.is_null());
    let m = last_message().unwrap();
    assert!(m.contains("PGENTRA_CAPI_UNIT_TEST_NO_SUCH_PREFIX_CONNECTIONSTRING"), "{m}");
    assert_eq!(last_code(), None);

    // A malformed connection string names where it came from and never echoes the secret.
    let dsn = c"host=h password='hunter2";
    o.connection_string = dsn.as_ptr();
    assert_eq!(pgentra_connector_new(&o, &mut c), PGENTRA_ERR_CONFIG as c_int);
    let m = last_message().unwrap();
    assert!(m.contains("connection_string") && !m.contains("hunter2"), "{m}");

    // A successful call clears the last error.
    let v = secret_connector();
    assert_eq!(last_message(), None);
    pgentra_connector_free(v);
}

#[test]
fn secret_mode_renders_every_format_without_network() {
    let c = secret_connector();
    let mut s = ptr::null_mut();
    let expected = [
        SECRET_DSN.to_string(),
        "postgresql://u:p@h:5432/d?sslmode=require".to_string(),
        "Server=h;Port=5432;Database=d;User Id=u;Password=p;Ssl Mode=Require;".to_string(),
        "jdbc:postgresql://h:5432/d?sslmode=require&user=u&password=p".to_string(),
        r#"{"host":"h","port":5432,"dbname":"d","user":"u","password":"p","sslmode":"require"}"#.to_string(),
        "export PGHOST='h' PGPORT='5432' PGDATABASE='d' PGUSER='u' PGPASSWORD='p' PGSSLMODE='require'".to_string(),
    ];
    for (n, want) in expected.iter().enumerate() {
        assert_eq!(pgentra_connection_string(c, n as u32, &mut s), PGENTRA_OK as c_int, "{:?}", last_message());
        assert_eq!(&take(s), want, "format {n}");
    }
    s = poisoned();
    assert_eq!(pgentra_connection_string(c, 7, &mut s), PGENTRA_ERR_INVALID_ARGUMENT as c_int);
    assert!(s.is_null());
    assert!(last_message().unwrap().contains("'format' is 7"));
    s = poisoned();
    assert_eq!(pgentra_connection_string(c, u32::MAX, &mut s), PGENTRA_ERR_INVALID_ARGUMENT as c_int);
    assert!(s.is_null());

    assert_eq!(pgentra_user(c, &mut s), PGENTRA_OK as c_int);
    assert_eq!(take(s), "u");
    s = poisoned();
    assert_eq!(pgentra_token(c, &mut s), PGENTRA_ERR_CONFIG as c_int, "no token in secret mode");
    assert!(s.is_null());
    assert!(last_message().unwrap().contains("password"));
    pgentra_invalidate(c);
    pgentra_connector_free(c);
}

#[test]
fn one_connector_many_threads() {
    let c = secret_connector() as usize;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = ptr::null_mut();
                assert_eq!(pgentra_connection_string(c as *mut pgentra_connector, 0, &mut s), PGENTRA_OK as c_int);
                take(s)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), SECRET_DSN);
    }
    pgentra_connector_free(c as *mut pgentra_connector);
}

#[test]
fn last_error_is_per_thread() {
    let mut c = ptr::null_mut();
    assert_eq!(pgentra_connector_new(ptr::null(), &mut c), PGENTRA_ERR_NULL_ARGUMENT as c_int);
    let other = std::thread::spawn(|| last_message()).join().unwrap();
    assert_eq!(other, None);
    assert!(last_message().is_some());
}

#[test]
fn panics_are_caught_and_reported() {
    let status = ffi_boundary(|| panic!("boom in a test"));
    assert_eq!(status, PGENTRA_ERR_PANIC as c_int);
    let m = last_message().unwrap();
    assert!(m.contains("a Rust panic, caught") && m.contains("boom in a test"), "{m}");

    let status = ffi_boundary(|| -> Result<(), FfiError> { std::panic::panic_any(42u8) });
    assert_eq!(status, PGENTRA_ERR_PANIC as c_int);

    ffi_void(|| panic!("void boom"));
    assert!(last_message().unwrap().contains("void boom"));
    assert_eq!(ffi_value(7, || -> i32 { panic!("value boom") }), 7);
    assert!(last_message().unwrap().contains("value boom"));
}

#[test]
fn service_codes_reach_c() {
    let status = ffi_boundary(|| {
        Err(Error::new(ErrorKind::IdentityService, "the client secret is wrong").with_code("AADSTS7000215").into())
    });
    assert_eq!(status, PGENTRA_ERR_IDENTITY_SERVICE as c_int);
    assert_eq!(last_code().as_deref(), Some("AADSTS7000215"));
    assert_eq!(last_message().as_deref(), Some("the client secret is wrong"));
    assert_eq!(ffi_boundary(|| Ok(())), PGENTRA_OK as c_int);
    assert_eq!(last_code(), None);
}

#[test]
fn returned_strings_are_exact_size_and_nul_free() {
    let p = to_c_string("t", "abc").unwrap();
    assert_eq!(take(p), "abc");
    assert_eq!(to_c_string("t", "a\0b").unwrap_err().status, PGENTRA_ERR_INTERNAL);
    assert_eq!(lossy_cstring("a\0b").to_str().unwrap(), "a?b");
}
