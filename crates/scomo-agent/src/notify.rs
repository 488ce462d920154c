//! Package-0 listeners: UDP datagrams and HTTP POST bodies, each one
//! notification, handed to the agent to verify.

use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest notification accepted (package 0 fits an SMS; vendor bytes are
/// small).
pub const MAX_NOTIFICATION: usize = 2048;

/// A bound listener.
#[derive(Debug)]
pub enum NotifyListener {
    /// `udp://ADDR:PORT`.
    Udp(UdpSocket),
    /// `http://ADDR:PORT`: any path, POST body = the notification.
    Http(TcpListener),
}

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for notifications on {spec}: {reason}")]
pub struct BindError {
    spec: String,
    reason: String,
}

impl NotifyListener {
    /// Binds `udp://ADDR:PORT` or `http://ADDR:PORT` (port 0 picks one).
    pub async fn bind(spec: &str) -> Result<NotifyListener, BindError> {
        let err = |reason: String| BindError {
            spec: spec.to_owned(),
            reason,
        };
        if let Some(addr) = spec.strip_prefix("udp://") {
            let sock = UdpSocket::bind(addr)
                .await
                .map_err(|e| err(e.to_string()))?;
            Ok(NotifyListener::Udp(sock))
        } else if let Some(addr) = spec.strip_prefix("http://") {
            let addr = addr.trim_end_matches('/');
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| err(e.to_string()))?;
            Ok(NotifyListener::Http(l))
        } else {
            Err(err("expected udp://ADDR:PORT or http://ADDR:PORT".into()))
        }
    }

    /// The address as the server should be told (`udp://…` / `http://…`).
    pub fn url(&self) -> String {
        match self {
            NotifyListener::Udp(s) => format!("udp://{}", addr_or_unknown(s.local_addr())),
            NotifyListener::Http(l) => format!("http://{}", addr_or_unknown(l.local_addr())),
        }
    }

    /// Receives notifications until `tx` is closed, forwarding each body.
    pub async fn serve(self, tx: mpsc::Sender<Vec<u8>>) {
        match self {
            NotifyListener::Udp(sock) => {
                let mut buf = vec![0u8; MAX_NOTIFICATION];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            debug!(%from, bytes = n, "package 0 over UDP");
                            let Some(body) = buf.get(..n) else { continue };
                            if tx.send(body.to_vec()).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => warn!("notification socket: {e}"),
                    }
                }
            }
            NotifyListener::Http(listener) => {
                let app = axum::Router::new().fallback(axum::routing::post(
                    move |body: axum::body::Bytes| {
                        let tx = tx.clone();
                        async move {
                            if body.len() > MAX_NOTIFICATION {
                                return axum::http::StatusCode::PAYLOAD_TOO_LARGE;
                            }
                            match tx.send(body.to_vec()).await {
                                Ok(()) => axum::http::StatusCode::ACCEPTED,
                                Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            }
                        }
                    },
                ));
                if let Err(e) = axum::serve(listener, app).await {
                    warn!("notification listener stopped: {e}");
                }
            }
        }
    }
}

fn addr_or_unknown(a: std::io::Result<SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_else(|_| "?".into())
}
