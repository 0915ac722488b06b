//! Cancel requests: the map from BackendKeyData to the session's server, and forwarding.

use super::*;

#[derive(Clone)]
pub(super) struct CancelTarget {
    pub(super) addr: SocketAddr,
    /// The TLS server name when the session's upstream used TLS.
    pub(super) tls_name: Option<ServerName<'static>>,
}

pub(super) type CancelKey = (i32, Vec<u8>);

pub(super) async fn forward_cancel(shared: &Shared, pid: i32, secret: Vec<u8>) -> Outcome {
    let target = shared.cancel.lock().unwrap_or_else(|p| p.into_inner()).get(&(pid, secret.clone())).cloned();
    let Some(t) = target else {
        // PostgreSQL ignores unknown keys silently; so does the proxy.
        return outcome("cancel-ignored", format!("no session with backend pid {pid} and that key"));
    };
    let mut packet = Vec::with_capacity(12 + secret.len());
    packet.extend_from_slice(&((12 + secret.len()) as u32).to_be_bytes());
    packet.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&secret);
    let u = &shared.upstream;
    let r = timeout(u.connect_timeout, async {
        let mut tcp = TcpStream::connect(t.addr).await?;
        let _ = tcp.set_nodelay(true);
        let mut sink = Vec::new();
        match &t.tls_name {
            Some(name) => {
                tcp.write_all(&ssl_request()).await?;
                let mut answer = [0u8; 1];
                tcp.read_exact(&mut answer).await?;
                if answer[0] != b'S' {
                    return Err(io::Error::other("the server declined TLS for the cancel request"));
                }
                let mut tls = tokio_rustls::TlsConnector::from(u.tls.clone()).connect(name.clone(), tcp).await?;
                tls.write_all(&packet).await?;
                tls.flush().await?;
                // The server closes after reading it.
                let _ = tls.read_to_end(&mut sink).await;
            }
            None => {
                tcp.write_all(&packet).await?;
                tcp.flush().await?;
                let _ = tcp.read_to_end(&mut sink).await;
            }
        }
        Ok::<(), io::Error>(())
    })
    .await;
    match r {
        Ok(Ok(())) => outcome("cancel-forwarded", format!("backend pid {pid} at {}", t.addr)),
        Ok(Err(e)) => outcome("cancel-failed", format!("backend pid {pid} at {}: {e}", t.addr)),
        Err(_) => outcome("cancel-failed", format!("backend pid {pid} at {}: timed out", t.addr)),
    }
}
