//! The router, and serving it on a listener until shutdown.
//!
//! ```text
//!   app(state) ─ /dm, /dm/{token}   DM-1 endpoint
//!              ─ /api/v1/...        REST API (bearer token)
//!              ─ /dl/{token}[/dd|/notify]  package downloads (the token is the capability)
//!              ─ /healthz /metrics
//!   run(state, listener, shutdown)
//!      ├─ axum on TCP or TLS (rustls)
//!      ├─ notifier task (package 0)
//!      └─ sweeper task (idle sessions here, abandoned ones anywhere)
//!      on shutdown: stop accepting, finish in-flight requests, close held sessions
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::state::{AppState, StartError};

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::dm::routes())
        .merge(crate::dl::routes())
        .merge(crate::api::routes(state.clone()))
        .fallback(|| async { crate::error::AppError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "node": state.node_id(),
        "sessions": state.sessions().len(),
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

/// Where the server accepts connections.
pub enum Listener {
    /// Plain HTTP.
    Tcp(TcpListener),
    /// HTTPS.
    Tls(TcpListener, TlsAcceptor),
}

impl Listener {
    /// Binds `addr`, with TLS when `tls` is given.
    pub async fn bind(addr: SocketAddr, tls: Option<TlsAcceptor>) -> std::io::Result<Listener> {
        let l = TcpListener::bind(addr).await?;
        Ok(match tls {
            Some(a) => Listener::Tls(l, a),
            None => Listener::Tcp(l),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l.local_addr(),
        }
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> std::io::Result<String> {
        let scheme = match self {
            Listener::Tcp(_) => "http",
            Listener::Tls(..) => "https",
        };
        Ok(format!("{scheme}://{}", self.local_addr()?))
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Listener").field(&self.url().ok()).finish()
    }
}

/// Loads a PEM certificate chain and private key for HTTPS.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::Tls {
            what: "certificate",
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(StartError::Tls {
            what: "certificate",
            path: cert.display().to_string(),
            reason: "no CERTIFICATE block in the file".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| StartError::Tls {
        what: "key",
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| StartError::Tls {
            what: "key",
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, with the
/// notifier and the session sweeper running beside it. On shutdown it stops
/// accepting, lets requests in progress finish, stops the tasks and closes
/// the sessions this node holds (their batches are settled at once).
pub async fn run(
    state: AppState,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if state.public_url().is_none() && !addr.ip().is_unspecified() {
        state.set_public_url(listener.url()?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let notifier = tokio::spawn(crate::notifier::run(
        state.clone(),
        stopped(stop_rx.clone()),
    ));
    let sweeper = tokio::spawn(sweeper(state.clone(), stopped(stop_rx.clone())));
    let worker = tokio::spawn(crate::scomo::worker::run(
        state.clone(),
        stopped(stop_rx.clone()),
    ));
    let campaigns = tokio::spawn(crate::campaign::driver::run(
        state.clone(),
        stopped(stop_rx.clone()),
    ));
    let router = app(state.clone());
    let served = match listener {
        Listener::Tcp(l) => {
            axum::serve(l, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Listener::Tls(l, acceptor) => {
            axum::serve(TlsListener::new(l, acceptor), router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    let _ = stop_tx.send(true);
    let _ = notifier.await;
    let _ = sweeper.await;
    let _ = worker.await;
    let _ = campaigns.await;
    crate::dm::close_all(&state).await;
    info!(node = %state.node_id(), "server stopped");
    served
}

async fn sweeper(state: AppState, stop: impl Future<Output = ()>) {
    let period = (state.config().session_idle_timeout() / 4)
        .clamp(Duration::from_millis(200), Duration::from_secs(30));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(period) => crate::dm::sweep(&state).await,
        }
    }
}

/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS listener for `axum::serve`: handshakes run in their own tasks, so
/// a slow or hostile client cannot hold up others.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        debug!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { rx, local, task }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
