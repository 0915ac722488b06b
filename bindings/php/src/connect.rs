//! `pg_connect` and `new PDO` with a current token, and one reconnect when the server may have
//! refused the token the cache still holds. The decision is the core's
//! (`Connector::connect_failed`); this file only calls PHP's own functions and says what PHP
//! could tell about a failure.
//!
//! What PHP can tell: nothing but text. ext/pgsql's `pg_connect` returns false with a warning
//! (libpq's message), and PDO throws a `PDOException` whose SQLSTATE is `08006` for every
//! failed connect, a code pdo_pgsql writes itself, not the server's. Neither exposes the
//! failed connection, so libpq's `PQconnectionUsedPassword` is out of reach too. Messages are
//! never matched (servers localize them): a failed connect is `Failure::Unknown`, which the
//! core treats as a possible refusal, bounded by its REFUSAL_HOLD (see `pgentra::recovery`).

use ext_php_rs::convert::IntoZval;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::{ClassEntry, ExecutorGlobals, Function};
use pgentra::{ConnParams, ErrorKind, Failure, Format};

fn ext_error(message: String) -> pgentra::Error {
    pgentra::Error::new(ErrorKind::Config, message)
}

/// The token we put in `p`, if any (secret mode: none, and nothing is retried).
fn our_token(c: &pgentra::Connector, p: &ConnParams) -> Option<String> {
    if c.is_password_mode() {
        return None;
    }
    p.password.as_ref().map(|s| s.expose().to_string())
}

/// A PHP connect with `token` failed: whether to connect again once (PHP tells nothing more).
pub fn failed(c: &pgentra::Connector, token: &str) -> bool {
    c.connect_failed(token, Failure::Unknown)
}

/// Call `name(args)` with warnings silenced (the `@` operator's effect), returning its value
/// and the message of the last error it raised, if any.
fn call_quiet(name: &str, args: Vec<&dyn ext_php_rs::convert::IntoZvalDyn>) -> pgentra::Result<(Zval, Option<String>)> {
    let f = Function::try_from_function(name)
        .ok_or_else(|| ext_error(format!("{name}() is not available: load PHP's pgsql extension (Debian: php8.2-pgsql)")))?;
    if let Some(clear) = Function::try_from_function("error_clear_last") {
        let _ = clear.try_call(vec![]);
    }
    let saved = {
        let mut eg = ExecutorGlobals::get_mut();
        std::mem::replace(&mut eg.error_reporting, 0)
    };
    let out = f.try_call(args);
    ExecutorGlobals::get_mut().error_reporting = saved;
    let value = out.map_err(|e| pgentra::Error::new(ErrorKind::Internal, format!("{name}(): {e}")))?;
    let last = Function::try_from_function("error_get_last")
        .and_then(|g| g.try_call(vec![]).ok())
        .and_then(|z| z.array().and_then(|a| a.get("message")).and_then(|m| m.str().map(str::to_string)));
    Ok((value, last))
}

/// `pg_connect($conninfo, $flags)` with a current token; one reconnect after a possible
/// refusal. Throws `PgEntra\DatabaseException` with pgsql's message when the connect fails.
pub fn pg_connect(c: &pgentra::Connector, flags: i64) -> pgentra::Result<Zval> {
    let mut retried = false;
    loop {
        let p = c.params()?;
        let conninfo = p.render(Format::Libpq);
        let (value, message) = call_quiet("pg_connect", vec![&conninfo, &flags])?;
        if value.object().is_some() {
            return Ok(value);
        }
        if !retried {
            if let Some(t) = our_token(c, &p) {
                if failed(c, &t) {
                    retried = true;
                    continue;
                }
            }
        }
        let message = message.unwrap_or_else(|| "pg_connect() failed".into());
        return Err(pgentra::Error::new(ErrorKind::Database, message.trim_start_matches("pg_connect(): ").to_string()));
    }
}

/// `new PDO($dsn, $user, $password, $options)` with a current token (user and password as
/// constructor arguments, so any value works); one reconnect after a possible refusal. A
/// failure is PDO's own `PDOException`, as PDO users expect.
pub fn pdo(c: &pgentra::Connector, options: Option<&ZendHashTable>) -> PhpResult<Zval> {
    let ce = ClassEntry::try_find("PDO")
        .ok_or_else(|| crate::throwable(&ext_error("class PDO is not available: load PHP's pdo_pgsql extension (Debian: php8.2-pgsql)".into())))?;
    let mut retried = false;
    loop {
        let p = crate::guard(|| c.params())?;
        let mut bare = p.clone();
        bare.user = None;
        bare.password = None;
        let dsn = bare.render(Format::Pdo);
        let user = p.user.clone();
        let password = p.password.as_ref().map(|s| s.expose().to_string());
        let mut opts = Zval::new();
        match options {
            Some(o) => opts.set_hashtable(o.to_owned()),
            None => opts.set_hashtable(ZendHashTable::new()),
        }
        let obj: ext_php_rs::boxed::ZBox<ZendObject> = ZendObject::new(ce);
        match obj.try_call_method("__construct", vec![&dsn, &user, &password, &opts]) {
            Ok(_) if ExecutorGlobals::get().exception.is_null() => {
                return obj.into_zval(false).map_err(|e| PhpException::from_message(e.to_string()));
            }
            _ => {}
        }
        let Some(ex) = ExecutorGlobals::take_exception() else {
            return Err(PhpException::from_message("new PDO() failed".into()));
        };
        if !retried {
            if let Some(t) = our_token(c, &p) {
                // PDO's "08006" is its own code for any failed connect: not the server's.
                if failed(c, &t) {
                    retried = true;
                    continue;
                }
            }
        }
        let zv = ex.into_zval(false).map_err(|e| PhpException::from_message(e.to_string()))?;
        return Err(PhpException::from_message(String::new()).with_object(zv));
    }
}
