//! The upstream server: connecting (TCP, then TLS with libpq's sslmode semantics) and logging
//! in with a current token.

use super::*;

pub(super) struct Upstream {
    pub(super) hosts: Vec<String>,
    pub(super) port: u16,
    pub(super) sslmode: SslMode,
    pub(super) dbname: Option<String>,
    pub(super) connect_timeout: Duration,
    pub(super) tls: Arc<rustls::ClientConfig>,
}

pub(super) enum LoginError {
    /// Our own failure: (SQLSTATE, message for the client and the log).
    Local(&'static str, String),
    /// The server's ErrorResponse, to relay.
    Server { raw: Vec<u8>, sqlstate: String, message: String },
}

pub(super) fn local(code: &'static str, msg: impl Into<String>) -> LoginError {
    LoginError::Local(code, msg.into())
}

pub(super) async fn login_upstream(
    shared: &Shared,
    version: u32,
    database: Option<&str>,
    passthrough: &[(String, String)],
    info: &mut SessionInfo,
) -> Result<(UpStream, Vec<u8>), LoginError> {
    let mut retried = false;
    loop {
        let params = shared
            .connector
            .params_async()
            .await
            .map_err(|e| local("08001", format!("cannot get a token for the server: {}", e.message())))?;
        let user = params.user.clone().ok_or_else(|| local("28000", "no database user"))?;
        info.user = Some(user.clone());
        let password = params.password.clone();
        drop(params);
        let mut up = connect_upstream(&shared.upstream).await?;
        let startup = startup_message(version, &user, database, passthrough);
        up.write_all(&startup).await.map_err(|e| local("08006", format!("writing the startup message: {e}")))?;
        up.flush().await.map_err(|e| local("08006", format!("writing the startup message: {e}")))?;
        match authenticate(&mut up, &user, password.as_ref(), shared.password_mode).await {
            Ok(first) => return Ok((up, first)),
            // The core decides whether the server refused the token we hold (SQLSTATE only, never
            // the message) and drops it unless another session already did; then log in once
            // more with a fresh one. A token the core keeps (refused again right after a
            // refusal: the role, not the token, is at fault) is not retried.
            Err(LoginError::Server { ref sqlstate, .. })
                if !retried
                    && password.as_ref().is_some_and(|t| {
                        shared.connector.connect_failed(t.expose(), pgentra::Failure::Sqlstate(sqlstate))
                    }) =>
            {
                retried = true;
                info.token_retry = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// TCP to the first host that answers, then SSLRequest and the TLS handshake (unless
/// sslmode=disable). A server that declines TLS is an error when sslmode requires it.
pub(super) async fn connect_upstream(u: &Upstream) -> Result<UpStream, LoginError> {
    let mut last = String::new();
    for host in &u.hosts {
        let tcp = match timeout(u.connect_timeout, TcpStream::connect((host.as_str(), u.port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = format!("cannot connect to {host}:{}: {e}", u.port);
                continue;
            }
            Err(_) => {
                last = format!("cannot connect to {host}:{}: timed out after {} s", u.port, u.connect_timeout.as_secs());
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let addr = tcp.peer_addr().map_err(|e| local("08001", format!("{host}:{}: {e}", u.port)))?;
        if u.sslmode == SslMode::Disable {
            return Ok(UpStream::Plain(tcp, addr));
        }
        let name = ServerName::try_from(host.clone()).map_err(|_| local("08001", format!("'{host}' is not a valid TLS server name")))?;
        return match timeout(u.connect_timeout, tls_handshake(u, tcp, name.clone())).await {
            Err(_) => Err(local("08001", format!("TLS with {host}:{}: timed out", u.port))),
            Ok(Err(Negotiation::Declined(tcp))) => {
                if u.sslmode.guarantees_tls() {
                    Err(local(
                        "08001",
                        format!("the server at {host}:{} does not accept TLS, and sslmode={} requires it", u.port, u.sslmode.as_str()),
                    ))
                } else {
                    Ok(UpStream::Plain(tcp, addr))
                }
            }
            Ok(Err(Negotiation::Failed(m))) => Err(local("08001", format!("TLS with {host}:{}: {m}", u.port))),
            Ok(Ok(tls)) => Ok(UpStream::Tls(Box::new(tls), addr, name)),
        };
    }
    Err(local("08001", last))
}

pub(super) enum Negotiation {
    Declined(TcpStream),
    Failed(String),
}

pub(super) async fn tls_handshake(
    u: &Upstream,
    mut tcp: TcpStream,
    name: ServerName<'static>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Negotiation> {
    tcp.write_all(&ssl_request()).await.map_err(|e| Negotiation::Failed(e.to_string()))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(|e| Negotiation::Failed(format!("no answer to SSLRequest: {e}")))?;
    match answer[0] {
        // Nothing else may have been read: bytes sent after 'S' stay in the socket and go to
        // the TLS handshake, which rejects them (CVE-2021-23222).
        b'S' => tokio_rustls::TlsConnector::from(u.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| Negotiation::Failed(e.to_string())),
        b'N' => Err(Negotiation::Declined(tcp)),
        other => Err(Negotiation::Failed(format!("unexpected answer '{}' to SSLRequest (is it PostgreSQL?)", other.escape_ascii()))),
    }
}

/// The upstream connection: TLS, or plaintext when sslmode allows it.
pub(super) enum UpStream {
    Plain(TcpStream, SocketAddr),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>, SocketAddr, ServerName<'static>),
}

impl UpStream {
    pub(super) fn cancel_target(&self) -> Option<CancelTarget> {
        Some(match self {
            UpStream::Plain(_, a) => CancelTarget { addr: *a, tls_name: None },
            UpStream::Tls(_, a, n) => CancelTarget { addr: *a, tls_name: Some(n.clone()) },
        })
    }
}

impl AsyncRead for UpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            UpStream::Tls(s, _, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpStream::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            UpStream::Tls(s, _, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s, _) => Pin::new(s).poll_flush(cx),
            UpStream::Tls(s, _, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            UpStream::Tls(s, _, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
