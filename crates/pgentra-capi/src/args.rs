//! Arguments from C: out-parameters, the connector pointer, strings (checked for UTF-8, never
//! assumed), enums given as integers (validated, never transmuted), options.

use super::*;

/// Null-check an out-parameter and clear `*out`, so that `*out` is NULL on every error path.
pub(crate) fn out_param<'a, T>(function: &str, argument: &str, out: *mut *mut T) -> Result<&'a mut *mut T, FfiError> {
    if out.is_null() {
        return Err(FfiError::null(function, argument));
    }
    // SAFETY: non-null; the caller promises it points to a writable `T *`.
    let slot = unsafe { &mut *out };
    *slot = ptr::null_mut();
    Ok(slot)
}

/// Null-check a value out-parameter and set `*out` to its default (0), so that it is 0 on every
/// error path.
pub(crate) fn value_out<'a, T: Default>(function: &str, argument: &str, out: *mut T) -> Result<&'a mut T, FfiError> {
    if out.is_null() {
        return Err(FfiError::null(function, argument));
    }
    // SAFETY: non-null; the caller promises it points to a writable `T`.
    let slot = unsafe { &mut *out };
    *slot = T::default();
    Ok(slot)
}

/// The connector behind a pointer from C.
pub(crate) fn connector_ref<'a>(function: &str, c: *const pgentra_connector) -> Result<&'a Connector, FfiError> {
    if c.is_null() {
        return Err(FfiError::null(function, "c"));
    }
    // SAFETY: non-null; the caller promises it came from pgentra_connector_* and was not freed.
    Ok(unsafe { &(*c).inner })
}

/// An optional UTF-8 string from C: NULL is `None`.
pub(crate) fn opt_str<'a>(function: &str, argument: &str, p: *const c_char) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null; the caller promises a NUL-terminated string that outlives this call.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|e| {
        FfiError::new(
            pgentra_status::PGENTRA_ERR_INVALID_UTF8,
            format!("{function}: argument '{argument}' is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })
}

/// Copy `s` into a new C string owned by the caller (freed with pgentra_string_free). The copy
/// is allocated at its final size, so no reallocation leaves a stray copy of a secret behind.
pub(crate) fn to_c_string(function: &str, s: &str) -> Result<*mut c_char, FfiError> {
    if s.as_bytes().contains(&0) {
        return Err(FfiError::new(
            pgentra_status::PGENTRA_ERR_INTERNAL,
            format!("{function}: the result contains a NUL byte and cannot be returned as a C string"),
        ));
    }
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    // Cannot fail: checked for NUL above; the push of the terminator fits the capacity.
    let c = CString::new(v).map_err(|_| FfiError::new(pgentra_status::PGENTRA_ERR_INTERNAL, "NUL byte"))?;
    Ok(c.into_raw())
}

pub(crate) fn format_of(function: &str, format: u32) -> Result<Format, FfiError> {
    Ok(match format {
        0 => Format::Libpq,
        1 => Format::Uri,
        2 => Format::Ado,
        3 => Format::Jdbc,
        4 => Format::Json,
        5 => Format::Shell,
        6 => Format::Pdo,
        n => {
            return Err(FfiError::invalid(
                function,
                format!("argument 'format' is {n}, not a pgentra_format (0 LIBPQ, 1 URI, 2 ADO, 3 JDBC, 4 JSON, 5 SHELL)"),
            ))
        }
    })
}

pub(crate) fn credential_of(function: &str, credential: u32) -> Result<Option<CredentialKind>, FfiError> {
    Ok(Some(match credential {
        0 => return Ok(None),
        1 => CredentialKind::Password,
        2 => CredentialKind::ClientSecret,
        3 => CredentialKind::ClientCertificate,
        4 => CredentialKind::WorkloadIdentity,
        5 => CredentialKind::ManagedIdentity,
        6 => CredentialKind::AzureCli,
        7 => CredentialKind::AzureDeveloperCli,
        n => {
            return Err(FfiError::invalid(
                function,
                format!("opts->credential is {n}, not a pgentra_credential (0 AUTO to 7 AZURE_DEVELOPER_CLI)"),
            ))
        }
    }))
}

pub(crate) fn options_of(function: &str, o: &pgentra_options) -> Result<Options, FfiError> {
    let s = |name: &str, p: *const c_char| opt_str(function, name, p).map(|v| v.map(str::to_string));
    let size = std::mem::size_of::<pgentra_options>();
    if o.struct_size as usize != size {
        return Err(FfiError::invalid(
            function,
            format!("opts->struct_size is {}, but this library's pgentra_options has {size} bytes; initialise the options with pgentra_options_init() and build against the matching pgentra.h", o.struct_size),
        ));
    }
    let tri = |name: &str, v: i32| match v {
        -1 => Ok(None),
        0 => Ok(Some(false)),
        1 => Ok(Some(true)),
        n => Err(FfiError::invalid(function, format!("opts->{name} is {n}; use -1 (unset), 0 or 1"))),
    };
    let allow_insecure = tri("allow_insecure", o.allow_insecure)?;
    let allow_unverified_tls = tri("allow_unverified_tls", o.allow_unverified_tls)?;
    Ok(Options {
        prefix: s("opts->prefix", o.prefix)?,
        connection_string: s("opts->connection_string", o.connection_string)?,
        client_id: s("opts->client_id", o.client_id)?,
        tenant_id: s("opts->tenant_id", o.tenant_id)?,
        client_secret: opt_str(function, "opts->client_secret", o.client_secret)?.map(pgentra_core::Secret::new),
        scope: s("opts->scope", o.scope)?,
        credential: credential_of(function, o.credential)?,
        allow_insecure,
        allow_unverified_tls,
        timeout: match o.timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        },
        ..Default::default()
    })
}

pub(crate) fn init_logging_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(pgentra_core::init_logging);
}

pub(crate) fn hand_out(slot: &mut *mut pgentra_connector, inner: Connector) {
    *slot = Box::into_raw(Box::new(pgentra_connector { inner }));
}
