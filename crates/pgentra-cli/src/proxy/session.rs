//! One client session: startup, local password, upstream login, relay, and its log line.

use super::*;

#[derive(Default)]
pub(super) struct SessionInfo {
    pub(super) client_user: Option<String>,
    pub(super) user: Option<String>,
    pub(super) database: Option<String>,
    pub(super) application_name: Option<String>,
    pub(super) token_retry: bool,
    pub(super) cancel: bool,
    pub(super) cancel_key: Option<CancelKey>,
}

pub(super) struct Outcome {
    pub(super) word: &'static str,
    pub(super) detail: Option<String>,
}

pub(super) fn outcome(word: &'static str, detail: impl Into<String>) -> Outcome {
    Outcome { word, detail: Some(detail.into()) }
}

/// Whether a new connection is served, decided when it is accepted.
pub(super) enum Admission {
    /// A --max-sessions slot, held until the session ends.
    Admitted { _slot: OwnedSemaphorePermit },
    /// Every slot is taken (the limit is the value): a cancel request is still forwarded, a
    /// login is refused with 53300 (too_many_connections), as PostgreSQL does.
    OverLimit(usize),
    /// Refused before anything is read from the client (a Unix-socket peer that is not allowed).
    Refused { sqlstate: &'static str, message: String, detail: String },
}

pub(super) async fn session<S>(shared: &Shared, stream: S, peer: String, admission: Admission)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = Instant::now();
    let mut client = Counted { inner: stream, read: 0, written: 0 };
    let mut info = SessionInfo::default();
    let mut hard = shared.hard_stop.clone();
    let over_limit = match &admission {
        Admission::OverLimit(max) => Some(*max),
        _ => None,
    };
    let result = tokio::select! {
        o = async {
            match &admission {
                Admission::Refused { sqlstate, message, detail } => {
                    refuse(&mut client, sqlstate, message).await;
                    outcome("refused", detail.clone())
                }
                _ => run_session(shared, &mut client, &mut info, over_limit).await,
            }
        } => o,
        _ = async {
            if hard.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await
            }
        } => outcome("terminated", "the drain timeout ended the session at shutdown"),
    };
    if let Some(k) = info.cancel_key.take() {
        shared.cancel.lock().unwrap_or_else(|p| p.into_inner()).remove(&k);
    }
    let mut line = format!("pgentra proxy: session client={}", field(&peer));
    if info.cancel {
        line.push_str(" kind=cancel");
    }
    for (k, v) in [
        ("client_user", &info.client_user),
        ("user", &info.user),
        ("database", &info.database),
        ("application_name", &info.application_name),
    ] {
        if let Some(v) = v {
            line.push_str(&format!(" {k}={}", field(v)));
        }
    }
    line.push_str(&format!(
        " duration_ms={} bytes_from_client={} bytes_to_client={} token_retry={} outcome={}",
        started.elapsed().as_millis(),
        client.read,
        client.written,
        info.token_retry,
        result.word
    ));
    if let Some(d) = &result.detail {
        line.push_str(&format!(" detail={}", field(d)));
    }
    log!("{line}");
    // The --max-sessions slot, if any, is free again.
    drop(admission);
}

/// A log value: bare when it is plain, else quoted with escapes (logfmt-like).
pub(super) fn field(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\') {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

pub(super) async fn run_session<S>(shared: &Shared, client: &mut Counted<S>, info: &mut SessionInfo, over_limit: Option<usize>) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // 1. The client's startup packet (and the local password, if one is configured).
    let wait = if over_limit.is_some() { OVER_LIMIT_STARTUP_TIMEOUT } else { STARTUP_TIMEOUT };
    let startup = match timeout(wait, read_startup(&mut *client)).await {
        Err(_) => {
            refuse(client, "08P01", "timeout waiting for the startup packet").await;
            return outcome("refused", "timeout waiting for the startup packet");
        }
        Ok(Err(StartupError::Closed)) => return outcome("client-closed", "closed before sending a startup packet"),
        Ok(Err(StartupError::Io(e))) => return outcome("client-error", e.to_string()),
        Ok(Err(StartupError::Bad(m))) => {
            refuse(client, "08P01", &m).await;
            return outcome("refused", m);
        }
        Ok(Ok(s)) => s,
    };
    let (version, params) = match startup {
        Startup::Cancel { pid, secret } => {
            info.cancel = true;
            return forward_cancel(shared, pid, secret).await;
        }
        Startup::Login { version, params } => (version, params),
    };
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    info.client_user = get("user");
    info.application_name = get("application_name");
    let database = get("database").or_else(|| shared.upstream.dbname.clone());
    info.database = database.clone();
    if let Some(max) = over_limit {
        refuse(client, "53300", &format!("sorry, too many clients already (pgentra proxy: --max-sessions {max})")).await;
        return outcome("refused", format!("--max-sessions {max} reached"));
    }
    let passthrough: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "user" && k != "database").collect();

    if let Some(expected) = &shared.local_password {
        match timeout(STARTUP_TIMEOUT, local_password(client, expected)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                let who = info.client_user.clone().unwrap_or_default();
                refuse(client, "28P01", &format!("password authentication failed for user \"{who}\" (pgentra proxy: wrong local password)")).await;
                return outcome("refused", "wrong local password");
            }
            Ok(Err(e)) => return outcome("client-closed", format!("at the local password request: {e}")),
            Err(_) => {
                refuse(client, "08P01", "timeout waiting for the password").await;
                return outcome("refused", "timeout waiting for the local password");
            }
        }
    }

    // 2. Log in upstream with a current token; once more with a fresh one if it is refused.
    let login = timeout(LOGIN_TIMEOUT, login_upstream(shared, version, database.as_deref(), &passthrough, info)).await;
    let (mut up, first_bytes) = match login {
        Err(_) => {
            refuse(client, "08001", "pgentra proxy: timeout logging in to the server").await;
            return outcome("upstream-error", "timeout logging in to the server");
        }
        Ok(Err(LoginError::Local(code, msg))) => {
            refuse(client, code, &format!("pgentra proxy: {msg}")).await;
            return outcome("upstream-error", msg);
        }
        Ok(Err(LoginError::Server { raw, sqlstate, message })) => {
            // The server's own ErrorResponse (e.g. 28P01, 3D000), relayed as it is.
            let _ = client.write_all(&raw).await;
            let _ = client.flush().await;
            return outcome("upstream-refused", format!("{sqlstate}: {message}"));
        }
        Ok(Ok(x)) => x,
    };

    // 3. AuthenticationOk and the server's startup replies (ParameterStatus, BackendKeyData,
    //    ReadyForQuery) went to `first_bytes` / are read here and forwarded verbatim; the
    //    BackendKeyData is remembered for cancel requests.
    if let Err(e) = client.write_all(&first_bytes).await {
        return outcome("client-error", e.to_string());
    }
    let mut pending: Vec<u8> = Vec::new();
    let target = up.cancel_target();
    loop {
        let raw = match timeout(LOGIN_TIMEOUT, read_message(&mut up, MAX_LOGIN_MESSAGE)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                let _ = client.write_all(&pending).await;
                return outcome("upstream-error", format!("reading the server's startup replies: {e}"));
            }
            Err(_) => {
                let _ = client.write_all(&pending).await;
                return outcome("upstream-error", "timeout waiting for ReadyForQuery");
            }
        };
        let tag = raw[0];
        if tag == b'K' && raw.len() >= 13 {
            let pid = i32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]);
            let key = (pid, raw[9..].to_vec());
            if let Some(t) = &target {
                shared.cancel.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), t.clone());
            }
            info.cancel_key = Some(key);
        }
        pending.extend_from_slice(&raw);
        if tag == b'E' {
            let (sqlstate, message) = error_fields(&raw[5..]);
            let _ = client.write_all(&pending).await;
            let _ = client.flush().await;
            return outcome("upstream-refused", format!("{sqlstate}: {message}"));
        }
        if tag == b'Z' {
            break;
        }
    }
    if let Err(e) = client.write_all(&pending).await {
        return outcome("client-error", e.to_string());
    }
    if let Err(e) = client.flush().await {
        return outcome("client-error", e.to_string());
    }

    // 4. Relay both ways until either side closes.
    match tokio::io::copy_bidirectional_with_sizes(client, &mut up, RELAY_BUFFER, RELAY_BUFFER).await {
        Ok(_) => Outcome { word: "ok", detail: None },
        // A server that closes without TLS close_notify (PostgreSQL after Terminate).
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Outcome { word: "ok", detail: None },
        Err(e) => outcome("relay-error", e.to_string()),
    }
}

/// The client's stream, counting bytes each way for the session log.
pub(super) struct Counted<S> {
    pub(super) inner: S,
    pub(super) read: u64,
    pub(super) written: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.written += *n as u64;
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
