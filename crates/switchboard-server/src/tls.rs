//! TLS on rustls (the `ring` provider): `https://` and `wss://` on the HTTP
//! listeners, `stomp+ssl` on the STOMP TCP listener (`[tls]`,
//! docs/configuration.md).
//!
//! The handshake runs in each connection's own task, never in the accept
//! loop, and is bounded by [`HANDSHAKE_TIMEOUT`]: a slow or silent client
//! delays nobody else. A failed handshake is logged at debug level and
//! otherwise forgotten.
//!
//! Library users serve TLS with [`crate::serve::serve_tls`] (or
//! [`crate::serve::accept_loop_tls`]) and an acceptor from
//! [`acceptor`] / [`server_config`], or from a rustls `ServerConfig` of
//! their own: `TlsAcceptor::from(Arc::new(config))`.

use crate::config::{ConfigError, TlsSettings};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchboard_transport::{ConnectionGuard, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

pub use tokio_rustls::rustls;
pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

/// How long a client gets to complete the TLS handshake (from the accept).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocol the HTTP listeners offer: the server speaks HTTP/1.1 only.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A rustls server configuration for HTTP/1.1 (ALPN `http/1.1`) from a PEM
/// certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1), with the `ring` provider and its safe default protocol versions
/// (TLS 1.2 and 1.3).
///
/// Errors name the file and what is wrong with it: unreadable, no
/// certificate or key in it, invalid PEM, or a key that does not match the
/// certificate.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, ConfigError> {
    let certs = read(cert_file, "tls.cert_file")?;
    let certs = CertificateDer::pem_slice_iter(&certs)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError(format!("tls.cert_file {}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(ConfigError(format!(
            "tls.cert_file {}: no PEM certificate (BEGIN CERTIFICATE) in it",
            cert_file.display()
        )));
    }
    let key = read(key_file, "tls.key_file")?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => ConfigError(format!(
            "tls.key_file {}: no PEM private key in it (expected BEGIN PRIVATE KEY, \
             BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY; encrypted keys are not supported)",
            key_file.display()
        )),
        e => ConfigError(format!("tls.key_file {}: {e}", key_file.display())),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("[tls]: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConfigError(format!(
                "[tls] cert_file {} and key_file {}: {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("{key} {}: {e}", path.display())))
}

/// The acceptor `[tls]` describes (ALPN `http/1.1`), or None without `[tls]`.
pub fn acceptor(settings: &TlsSettings) -> Result<Option<TlsAcceptor>, ConfigError> {
    Ok(match settings.files()? {
        Some((cert, key)) => Some(TlsAcceptor::from(Arc::new(server_config(cert, key)?))),
        None => None,
    })
}

/// The same certificate for a listener that does not speak HTTP (STOMP over
/// TCP): no ALPN, so a client offering e.g. `stomp` is not refused.
pub fn without_alpn(acceptor: &TlsAcceptor) -> TlsAcceptor {
    let mut config = ServerConfig::clone(acceptor.config());
    config.alpn_protocols.clear();
    TlsAcceptor::from(Arc::new(config))
}

/// Runs the server side of the handshake on `stream`, bounded by
/// [`HANDSHAKE_TIMEOUT`] and abandoned when `guard`'s registry shuts down.
/// None when it failed (logged at debug level).
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    guard: &ConnectionGuard,
) -> Option<TlsStream<TcpStream>> {
    bounded(stream, guard, |stream| async move {
        match acceptor.accept(stream).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "tls handshake failed");
                None
            }
        }
    })
    .await
}

/// [`handshake`] for an HTTP listener: a client that starts with a plain
/// HTTP request instead of a TLS record gets a plain-text 400 saying the
/// port wants HTTPS (as Go's and nginx's servers answer), then the
/// connection is closed.
pub async fn handshake_http(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    guard: &ConnectionGuard,
) -> Option<TlsStream<TcpStream>> {
    bounded(stream, guard, |mut stream| async move {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0].is_ascii_uppercase() => {
                tracing::debug!("plain HTTP on a TLS port");
                answer_plain_http(&mut stream).await;
                None
            }
            // A TLS record, or garbage that rustls answers with an alert.
            Ok(1) => match acceptor.accept(stream).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(error = %e, "tls handshake failed");
                    None
                }
            },
            _ => None,
        }
    })
    .await
}

/// Runs `handshake` on `stream` within [`HANDSHAKE_TIMEOUT`], unless the
/// registry shuts down first.
async fn bounded<F, Fut>(
    stream: TcpStream,
    guard: &ConnectionGuard,
    handshake: F,
) -> Option<TlsStream<TcpStream>>
where
    F: FnOnce(TcpStream) -> Fut,
    Fut: std::future::Future<Output = Option<TlsStream<TcpStream>>>,
{
    let peer = stream.peer_addr().ok();
    let span = tracing::debug_span!("tls", ?peer);
    let stop = std::future::poll_fn(|cx| {
        if guard.poll_shutdown(cx) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, tracing::Instrument::instrument(handshake(stream), span.clone())) => {
            r.unwrap_or_else(|_| {
                span.in_scope(|| tracing::debug!("tls handshake timed out"));
                None
            })
        }
        () = stop => None,
    }
}

/// The body of the answer to plain HTTP on a TLS port.
const PLAIN_HTTP_BODY: &str = "This port speaks HTTPS: use https:// or wss://.\n";

/// Writes a 400 saying the port wants HTTPS, ends the write side, and reads
/// what the client sent until it closes (closing with unread input would
/// reset the connection and could discard the answer), all within a second.
async fn answer_plain_http(stream: &mut TcpStream) {
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// STOMP over TLS (`stomp+ssl`, RabbitMQ's port 61614): accepts on
/// `listener` until `registry` is triggered; each connection completes its
/// handshake in its own task, then runs as
/// [`switchboard_stomp::run_connection`]. Give it an acceptor without ALPN
/// ([`without_alpn`]).
pub async fn serve_stomp_tls(
    listener: TcpListener,
    broker: switchboard_stomp::Broker,
    registry: Registry,
    acceptor: TlsAcceptor,
) {
    let guard = registry.register();
    loop {
        let accepted = std::future::poll_fn(|cx| {
            if guard.poll_shutdown(cx) {
                return std::task::Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, _peer))) => {
                let _ = stream.set_nodelay(true);
                let (acceptor, broker, registry) =
                    (acceptor.clone(), broker.clone(), registry.clone());
                tokio::spawn(async move {
                    let guard = registry.register();
                    if let Some(stream) = handshake(&acceptor, stream, &guard).await {
                        // run_connection registers too; the guard is held
                        // until it returns so the count never drops to 0
                        // in between.
                        switchboard_stomp::run_connection(stream, broker, registry).await;
                    }
                    drop(guard);
                });
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "stomp+ssl accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
