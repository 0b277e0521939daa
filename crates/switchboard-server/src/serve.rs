//! The HTTP/1.1 accept loop of the `switchboard` binary and its graceful stop:
//! stop accepting, finish HTTP exchanges, send every WebSocket a close 1001 and
//! wait (bounded) for the connections to end. Plain TCP or TLS
//! ([`serve_tls`], [`accept_loop_tls`]): one connection path, generic over
//! the socket type.

use crate::app::Switchboard;
use crate::tls::TlsAcceptor;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchboard_transport::{ConnectionGuard, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite};
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

type Service = TowerToHyperService<axum::Router>;

async fn accept_loop_with(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    shutdown: &Shutdown,
    signal: impl Future<Output = ()>,
) {
    let service = TowerToHyperService::new(router);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
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
                        tokio::spawn(serve_connection(builder.clone(), stream, service.clone(), guard));
                    }
                    Some(acceptor) => {
                        let (acceptor, builder, service) = (acceptor.clone(), builder.clone(), service.clone());
                        tokio::spawn(async move {
                            if let Some(stream) = crate::tls::handshake_http(&acceptor, stream, &guard).await {
                                serve_connection(builder, stream, service, guard).await;
                            }
                        });
                    }
                }
            }
            () = &mut signal => break,
        }
    }
}

/// One HTTP/1.1 connection (with upgrades) over `io` until it ends; on
/// shutdown the exchange in progress finishes, then it closes.
async fn serve_connection<IO>(
    builder: Arc<http1::Builder>,
    io: IO,
    service: Service,
    guard: ConnectionGuard,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Made here and pinned where it is made: a connection made outside
    // and moved in would take two slots of this future's state, ~600
    // bytes each (the task of every HTTP connection was 1,344 bytes,
    // now 792).
    let mut conn = std::pin::pin!(builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());
    let stop = std::future::poll_fn(|cx| {
        if guard.poll_shutdown(cx) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop => {
            // Finish the exchange in progress, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection ended with an error");
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
    async fn an_http_connection_task_holds_one_connection() {
        // The state of every HTTP connection's task (an idle keep-alive
        // connection, an open SockJS stream, a parked Engine.IO poll):
        // hyper's connection once (~600 bytes), not once captured and once
        // pinned (1,344 bytes before).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let registry = Shutdown::new();
        let builder = Arc::new(http1::Builder::new());
        let task = serve_connection(
            builder,
            stream,
            Service::new(axum::Router::new()),
            registry.register(),
        );
        let n = std::mem::size_of_val(&task);
        assert!(n <= 800, "an HTTP connection's task takes {n} bytes");
    }
}
