//! The HTTP/1.1 accept loop of the `switchboard` binary and its graceful stop:
//! stop accepting, finish HTTP exchanges, send every WebSocket a close 1001 and
//! wait (bounded) for the connections to end.

use crate::app::Switchboard;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use switchboard_transport::Shutdown;
use tokio::net::TcpListener;

/// How long live connections get to close after the stop signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `sb` on `listener` until `signal` completes, then shuts down gracefully.
pub async fn serve(
    listener: TcpListener,
    sb: Switchboard,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    accept_loop(listener, sb.router(), sb.shutdown(), signal).await;
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
    let service = TowerToHyperService::new(router);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
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
                let conn = builder.serve_connection(TokioIo::new(stream), service.clone()).with_upgrades();
                let guard = shutdown.register();
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    let stop = std::future::poll_fn(|cx| {
                        if guard.poll_shutdown(cx) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
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
                });
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
