//! The HTTP/1.1 accept loop of the `switchboard` binary and its graceful stop:
//! stop accepting, finish HTTP exchanges, send every WebSocket a close 1001 and
//! wait (bounded) for the connections to end. Plain TCP or TLS
//! ([`serve_tls`], [`accept_loop_tls`]): one connection path, generic over
//! the socket type; each connection is served by `http1::serve_connection`
//! (streaming responses written there, the rest by hyper).

use crate::app::Switchboard;
use crate::http1::serve_connection;
use crate::tls::TlsAcceptor;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchboard_transport::Shutdown;
use tokio::net::TcpListener;

/// How long live connections get to close after the stop signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `sb` on `listener` until `signal` completes, then shuts down gracefully.
/// Plain TCP, whatever `[tls]` says: for TLS use [`serve_tls`] with
/// `tls::acceptor(&config.tls)` (as the `switchboard` binary does).
pub async fn serve(
    listener: TcpListener,
    sb: Switchboard,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, sb, None, signal).await
}

/// [`serve`] over TLS: every connection is HTTPS (WebSockets are `wss://`).
/// `tls` comes from [`crate::tls::acceptor`] / [`crate::tls::server_config`]
/// or from a rustls `ServerConfig` of the caller's
/// (`TlsAcceptor::from(Arc::new(config))`; give it ALPN `http/1.1`, the
/// only protocol served).
///
/// ```no_run
/// use std::path::Path;
/// use std::sync::Arc;
/// use switchboard_server::{serve, tls, Config, Switchboard};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = tls::server_config(Path::new("cert.pem"), Path::new("key.pem"))?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
/// let sb = Switchboard::new(Config::default());
/// serve::serve_tls(listener, sb, tls::TlsAcceptor::from(Arc::new(config)), serve::stop_signal()).await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve_tls(
    listener: TcpListener,
    sb: Switchboard,
    tls: TlsAcceptor,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, sb, Some(tls), signal).await
}

async fn serve_with(
    listener: TcpListener,
    sb: Switchboard,
    tls: Option<TlsAcceptor>,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    accept_loop_with(listener, sb.router(), tls, sb.shutdown(), signal).await;
    tracing::info!(connections = sb.shutdown().live(), "shutting down");
    sb.shutdown().trigger();
    let left = sb.shutdown().wait_idle(DRAIN_TIMEOUT).await;
    if left > 0 {
        tracing::warn!(left, "connections still open after the drain timeout");
    }
    Ok(())
}

/// Serves `router` on `listener` (HTTP/1.1 with upgrades) until `signal`
/// completes; every connection registers with `shutdown`, which closes them
/// (the caller triggers and drains it). Used for the main listener and for
/// extra ones, e.g. the Web-STOMP layout (`[stomp] web_stomp_listen`).
pub async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    shutdown: &Shutdown,
    signal: impl Future<Output = ()>,
) {
    accept_loop_with(listener, router, None, shutdown, signal).await;
}

/// [`accept_loop`] over TLS. Each connection's handshake runs in its own
/// task within [`crate::tls::HANDSHAKE_TIMEOUT`], so a slow or silent
/// client holds up nobody; a failed handshake is logged at debug level. A
/// plain HTTP request gets a 400 saying the port speaks HTTPS.
pub async fn accept_loop_tls(
    listener: TcpListener,
    router: axum::Router,
    tls: TlsAcceptor,
    shutdown: &Shutdown,
    signal: impl Future<Output = ()>,
) {
    accept_loop_with(listener, router, Some(tls), shutdown, signal).await;
}

async fn accept_loop_with(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    shutdown: &Shutdown,
    signal: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(crate::http1::HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let guard = shutdown.register();
                match &tls {
                    // The upgrade paths recognise a plain `TcpStream` and
                    // drive it directly: hand it to hyper as it is.
                    None => {
                        let (builder, router) = (builder.clone(), router.clone());
                        tokio::spawn(async move {
                            serve_connection(&builder, stream, router, guard).await;
                        });
                    }
                    Some(acceptor) => {
                        let (acceptor, builder, router) = (acceptor.clone(), builder.clone(), router.clone());
                        tokio::spawn(async move {
                            if let Some(stream) = crate::tls::handshake_http(&acceptor, stream, &guard).await {
                                serve_connection(&builder, stream, router, guard).await;
                            }
                        });
                    }
                }
            }
            () = &mut signal => break,
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_http_connection_task_is_small() {
        // The state of every HTTP connection's task (an idle keep-alive
        // connection, an open SockJS stream): no hyper connection in it
        // (~600 bytes, boxed for the exchanges that use one) and no
        // request or router future (boxed while they run). 792 bytes when
        // hyper served every connection, 1,344 before that.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let registry = Shutdown::new();
        let builder = http1::Builder::new();
        let task = serve_connection(&builder, stream, axum::Router::new(), registry.register());
        let n = std::mem::size_of_val(&task);
        assert!(n <= 512, "an HTTP connection's task takes {n} bytes");
    }
}
