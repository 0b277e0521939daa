//! Raw STOMP over a byte stream (plain TCP): [`serve_tcp`] accepts
//! connections and [`run_connection`] drives one of them — socket bytes to
//! the [`StompClient`], its output back in one vectored write, hub and
//! queue deliveries when woken, heart-beat and CONNECT timers, and graceful
//! shutdown through the [`Registry`]. Protocol rules live in the session,
//! routing in the broker.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use switchboard_transport::buffer_pool::poll_read_pooled;
use switchboard_transport::Registry;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Sleep;

use crate::broker::Broker;
use crate::client::StompClient;

/// Reads per wake-up before the output is written.
const READS_PER_WAKE: usize = 16;
/// Chunks handed to one vectored write.
const MAX_IOSLICES: usize = 64;

/// Accepts STOMP connections on `listener` until the registry is
/// triggered; each runs as its own task ([`run_connection`]).
///
/// The accept loop holds a registry slot of its own while it runs, so
/// [`Registry::wait_idle`] also waits for it (it stops at once on trigger).
///
/// ```no_run
/// use switchboard_hub::{Hub, HubConfig};
/// use switchboard_stomp::{serve_tcp, Broker, StompConfig};
/// use switchboard_transport::Registry;
///
/// # async fn run() -> std::io::Result<()> {
/// let broker = Broker::new(Hub::new(HubConfig::default()), StompConfig::default());
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:61613").await?;
/// serve_tcp(listener, broker, Registry::new()).await
/// # }
/// ```
pub async fn serve_tcp(
    listener: TcpListener,
    broker: Broker,
    registry: Registry,
) -> io::Result<()> {
    let guard = registry.register();
    loop {
        let accepted = poll_fn(|cx| {
            if guard.poll_shutdown(cx) {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => return Ok(()),
            Some(Ok((stream, peer))) => {
                tracing::trace!(%peer, "stomp connection");
                let _ = stream.set_nodelay(true);
                tokio::spawn(run_connection(stream, broker.clone(), registry.clone()));
            }
            Some(Err(e)) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "stomp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs one STOMP connection over `io` to its end: the peer disconnects or
/// breaks a rule, a timer fires, or the registry shuts down (the client
/// then gets an ERROR `server shutting down`).
pub async fn run_connection<IO>(mut io: IO, broker: Broker, registry: Registry)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let guard = registry.register();
    let mut client = StompClient::new(&broker, Instant::now());
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut out: Vec<Bytes> = Vec::new();
    let mut shutting_down = false;
    let mut eof = false;
    loop {
        poll_fn(|cx| {
            let mut progress = false;
            if !shutting_down && guard.poll_shutdown(cx) {
                shutting_down = true;
                client.shutdown();
                progress = true;
            }
            if client.poll_deliveries(cx) {
                progress = true; // SENDs stored: receipts, or room to read again
            }
            for _ in 0..READS_PER_WAKE {
                if client.is_closed() || client.has_output() || !client.wants_input() {
                    break; // write what we have before reading more
                }
                let read = poll_read_pooled(&mut io, cx, |data| {
                    client.receive(Instant::now(), data);
                });
                match read {
                    Poll::Pending => break,
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        eof = true;
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(_)) => progress = true,
                }
            }
            client.poll_deliveries(cx);
            if let Some(deadline) = client.poll_timeout() {
                let deadline = tokio::time::Instant::from_std(deadline);
                let sleep =
                    timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    client.handle_timeout(Instant::now());
                    progress = true;
                }
            }
            if progress || client.has_output() || client.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        client.take_output(Instant::now(), &mut out);
        // A peer that stops reading blocks the write: meanwhile its mailbox
        // fills, and once it overflows (slow consumer) the connection ends
        // here; nothing more could reach that peer, not even an ERROR.
        let written = if client.is_closed() {
            // The last frames (ERROR, RECEIPT of a DISCONNECT): write them.
            write_chunks(&mut io, &mut out).await.is_ok()
        } else {
            let overflowed = poll_fn(|cx| {
                client.poll_overflow(cx);
                if client.is_closed() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            tokio::select! {
                r = write_chunks(&mut io, &mut out) => r.is_ok(),
                () = overflowed => {
                    tracing::debug!("stomp: closing slow consumer (its socket stopped taking data)");
                    false
                }
            }
        };
        if !written || eof {
            return; // dropping the client releases its queue messages
        }
        if client.is_closed() {
            let _ = io.shutdown().await;
            return;
        }
    }
}

/// Writes every chunk with as few vectored writes as the socket allows.
async fn write_chunks<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    chunks: &mut Vec<Bytes>,
) -> io::Result<()> {
    chunks.retain(|c| !c.is_empty());
    let mut first = 0;
    while first < chunks.len() {
        let mut slices = [IoSlice::new(&[]); MAX_IOSLICES];
        let n = chunks[first..].len().min(MAX_IOSLICES);
        for (slot, chunk) in slices.iter_mut().zip(&chunks[first..first + n]) {
            *slot = IoSlice::new(chunk);
        }
        let mut written = io.write_vectored(&slices[..n]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let len = chunks[first].len();
            if written >= len {
                written -= len;
                first += 1;
            } else {
                chunks[first].advance(written);
                written = 0;
            }
        }
    }
    chunks.clear();
    io.flush().await
}
