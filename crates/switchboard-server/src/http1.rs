//! One HTTP/1.1 connection of the `switchboard` binary. The loop reads each
//! request head itself (httparse) and chooses who serves the request:
//!
//! * a SockJS streaming receiver (a bodiless `GET` or `POST` whose path
//!   ends in `xhr_streaming`, `eventsource` or `htmlfile`) is written here:
//!   the router's response as a status line, headers and a chunked body,
//!   taken frame by frame. An open stream then holds no HTTP buffer while
//!   it waits; hyper keeps an 8 KiB read and an 8 KiB write buffer for
//!   every connection it serves and has no setting below that.
//! * any other keep-alive request without a body or with a
//!   `Content-Length` one gets one exchange on a hyper connection that sees
//!   that request's bytes and no more, and gives the socket back once its
//!   response is written (so that a stream can follow a `GET /info` or an
//!   `xhr_send` on the same connection, as it does in browsers);
//! * everything else (a chunked body, an upgrade, `Expect`, HTTP/1.0,
//!   `Connection: close`, a head this parser refuses) goes to hyper for the
//!   rest of the connection, with the bytes read so far in front
//!   ([`Prefixed`]); hyper answers what is malformed.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use bytes::{Buf, BytesMut};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use switchboard_transport::{poll_read_into, ConnectionGuard, OneRequestParts, Prefixed};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// How long a client has to send a whole request head, counted from when
/// the connection starts waiting for it (also the idle keep-alive timeout).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A longer head goes to hyper, which answers 431 past its own limit.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes of a next request read while a stream is open; reading stops there
/// (as it does in an exchange, `Prefixed::one_request`).
const MAX_AHEAD: usize = 64 * 1024;
/// Response bytes gathered from ready frames before they are written.
const MAX_WRITE: usize = 64 * 1024;
/// Headers parsed here; a head with more goes to hyper.
const MAX_HEADERS: usize = 64;

/// Serves one connection until it ends. On shutdown an idle connection
/// closes, and a request in progress finishes first.
pub async fn serve_connection<IO>(
    builder: &http1::Builder,
    mut io: IO,
    router: axum::Router,
    guard: ConnectionGuard,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stash = BytesMut::new();
    loop {
        let Some(next) = next_request(&mut io, &mut stash, &guard).await else {
            return;
        };
        match next {
            Next::Stream {
                req,
                head_len,
                keep_alive,
            } => {
                stash.advance(head_len);
                if stash.is_empty() {
                    stash = BytesMut::new();
                }
                match serve_stream(&mut io, &mut stash, &router, req, keep_alive).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = io.shutdown().await;
                        return;
                    }
                    Err(e) => return tracing::debug!(error = %e, "http stream ended"),
                }
            }
            Next::Exchange { head_len, body_len } => {
                // hyper gets this request's bytes and no more: what the
                // client sends next stays here (`Prefixed::one_request`).
                let have = (stash.len() - head_len) as u64;
                let take = head_len + body_len.min(have) as usize;
                let request = stash.split_to(take).freeze();
                let io_in = Prefixed::one_request(
                    request,
                    body_len.saturating_sub(have),
                    std::mem::take(&mut stash),
                    io,
                );
                // Boxed: a hyper connection is ~600 bytes, held only for
                // the exchange, not in every connection's task.
                match Box::pin(exchange(builder, io_in, &router, &guard)).await {
                    Some((back, ahead)) => {
                        io = back;
                        stash = ahead;
                    }
                    None => return,
                }
            }
            Next::Hyper => {
                let io = Prefixed::new(std::mem::take(&mut stash).freeze(), io);
                return Box::pin(serve_hyper(builder, io, router, guard)).await;
            }
        }
    }
}

/// Who serves the request whose head is at the front of the stash.
enum Next {
    Stream {
        /// Boxed, as the router's future below: what a connection's task
        /// holds while the stream is open stays small.
        req: Box<Request<Body>>,
        head_len: usize,
        keep_alive: bool,
    },
    Exchange {
        head_len: usize,
        /// Its `Content-Length` (0 without one).
        body_len: u64,
    },
    Hyper,
}

/// Reads until the stash starts with a whole request head. None: the
/// connection ends (the client closed it, it timed out, or shutdown came
/// while it was idle).
async fn next_request<IO>(
    io: &mut IO,
    stash: &mut BytesMut,
    guard: &ConnectionGuard,
) -> Option<Next>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = tokio::time::sleep(HEADER_READ_TIMEOUT);
    tokio::pin!(deadline);
    // The stash up to here holds no blank line: a head sent in many small
    // pieces is parsed once it can be complete, not once per piece.
    let mut scanned: usize = 0;
    loop {
        if ends_a_head(&stash[scanned.saturating_sub(3)..]) {
            if let Some(next) = classify(stash) {
                return Some(next);
            }
        }
        scanned = stash.len();
        if stash.len() > MAX_HEAD {
            return Some(Next::Hyper);
        }
        let timed_out = poll_fn(|cx| {
            if guard.poll_shutdown(cx) {
                return Poll::Ready(Err(()));
            }
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(true));
            }
            match ready!(poll_read_into(io, stash, cx)) {
                Ok(0) | Err(_) => Poll::Ready(Err(())),
                Ok(_) => Poll::Ready(Ok(false)),
            }
        })
        .await;
        match timed_out {
            Ok(false) => {}
            Ok(true) => {
                if !stash.is_empty() {
                    // A head begun and not finished: say so (hyper did too).
                    let _ = io
                        .write_all(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    let _ = io.shutdown().await;
                }
                return None;
            }
            Err(()) => return None,
        }
    }
}

/// Whether `bytes` hold the blank line that ends a request head (`\n\n`
/// or `\n\r\n`; httparse takes both).
fn ends_a_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// None: the head is not complete yet.
fn classify(stash: &[u8]) -> Option<Next> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(stash) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Next::Hyper),
    };
    let (Some(method), Some(target), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Some(Next::Hyper);
    };
    let mut keep_alive = true;
    let mut plain = method != "CONNECT";
    let mut body_len: Option<u64> = None;
    for h in parsed.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // One length, digits only; anything else is hyper's to refuse.
            match (body_len, content_length(h.value)) {
                (None, Some(n)) => body_len = Some(n),
                _ => plain = false,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            plain = false;
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive &= !has_token(h.value, "close");
            plain &= !has_token(h.value, "upgrade");
        }
    }
    if !plain {
        return Some(Next::Hyper);
    }
    let body_len = body_len.unwrap_or(0);
    if body_len == 0 && (method == "GET" || method == "POST") && is_stream_path(target) {
        return Some(match request(method, target, parsed.headers) {
            Some(req) => Next::Stream {
                req: Box::new(req),
                head_len,
                keep_alive,
            },
            None => Next::Hyper,
        });
    }
    Some(if keep_alive {
        Next::Exchange { head_len, body_len }
    } else {
        Next::Hyper
    })
}

/// A `Content-Length` value: digits only (no sign, no list).
fn content_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Whether the comma-separated header value lists `token`.
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A SockJS streaming receiver's path: `.../<server>/<session>/<transport>`.
fn is_stream_path(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    matches!(last, "xhr_streaming" | "eventsource" | "htmlfile")
}

/// The request as the router takes it; None if a part does not convert
/// (then hyper parses it and answers).
fn request(method: &str, target: &str, headers: &[httparse::Header<'_>]) -> Option<Request<Body>> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for h in headers {
        map.append(
            HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::from_bytes(method.as_bytes()).ok()?;
    *req.uri_mut() = Uri::try_from(target).ok()?;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Some(req)
}

/// Writes the router's answer to `req`. Ok(true): the connection can take
/// the next request.
async fn serve_stream<IO>(
    io: &mut IO,
    stash: &mut BytesMut,
    router: &axum::Router,
    req: Box<Request<Body>>,
    keep_alive: bool,
) -> io::Result<bool>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let resp = match Box::pin(router.clone().oneshot(*req)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    // The head is encoded by a plain function: the response's parts are
    // gone before the first write, not kept in this future's state.
    let (out, body, framing, keep_alive) = encode_head(resp, keep_alive);
    let Some(chunked) = framing else {
        io.write_all(&out).await?;
        io.flush().await?;
        return Ok(keep_alive);
    };
    stream_body(io, stash, body, out, chunked).await?;
    Ok(keep_alive)
}

/// The status line and headers of `resp` (plus `date`, the framing and
/// `connection: close` when the connection ends after it), its body, how
/// the body is framed (None: no body at all, Some(true): chunked) and
/// whether the connection stays open.
fn encode_head(resp: Response<Body>, mut keep_alive: bool) -> (Vec<u8>, Body, Option<bool>, bool) {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut length = None;
    let mut says_close = false;
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONTENT_LENGTH {
            length = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            if length.is_none() {
                continue;
            }
        }
        if name == header::CONNECTION && has_token(value.as_bytes(), "close") {
            says_close = true;
        }
        put_header(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        let date = httpdate::fmt_http_date(SystemTime::now());
        put_header(&mut out, b"date", date.as_bytes());
    }
    if length.is_none() && !bodiless {
        if let Some(n) = body.size_hint().exact() {
            put_header(&mut out, b"content-length", n.to_string().as_bytes());
            length = Some(n);
        }
    }
    let chunked = !bodiless && length.is_none();
    if chunked {
        put_header(&mut out, b"transfer-encoding", b"chunked");
    }
    if !keep_alive && !says_close {
        put_header(&mut out, b"connection", b"close");
    }
    keep_alive &= !says_close;
    out.extend_from_slice(b"\r\n");
    (out, body, (!bodiless).then_some(chunked), keep_alive)
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the body and the socket allow next.
enum Step {
    Write,
    End,
    /// The body failed: the response cannot be completed.
    Failed,
    /// The client closed the connection.
    Gone,
}

/// Writes `out` (the head) and the body behind it: frames that are ready
/// together go out in one write. While no frame is ready the socket is
/// read, to see the client leave (dropping the body then ends the
/// receiver) and to keep a pipelined request for later.
async fn stream_body<IO>(
    io: &mut IO,
    stash: &mut BytesMut,
    mut body: Body,
    mut out: Vec<u8>,
    chunked: bool,
) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let step = poll_fn(|cx| {
            while out.len() < MAX_WRITE {
                match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            put_data(&mut out, &data, chunked);
                        }
                    }
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Step::Failed),
                    Poll::Ready(None) => return Poll::Ready(Step::End),
                    Poll::Pending => break,
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Step::Write);
            }
            while stash.len() < MAX_AHEAD {
                match poll_read_into(io, stash, cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Step::Gone),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        })
        .await;
        match step {
            Step::Write => {
                io.write_all(&out).await?;
                io.flush().await?;
                // Nothing held between writes.
                out = Vec::new();
            }
            Step::End => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                io.write_all(&out).await?;
                return io.flush().await;
            }
            Step::Failed => return Err(io::Error::other("response body failed")),
            Step::Gone => return Err(io::ErrorKind::ConnectionAborted.into()),
        }
    }
}

fn put_data(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        // An empty chunk would end a chunked body.
        return;
    }
    if chunked {
        use std::io::Write;
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// One request on a hyper connection over `io`; once its response is
/// written, the socket and the bytes read past it. None: the connection
/// ends (hyper failed or closed it, the body was not read to its end, or
/// shutdown came).
async fn exchange<IO>(
    builder: &http1::Builder,
    io: Prefixed<IO>,
    router: &axum::Router,
    guard: &ConnectionGuard,
) -> Option<(IO, BytesMut)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut written) = oneshot::channel();
    let state = Arc::new(ExchangeState {
        requests: AtomicU32::new(0),
        close: AtomicBool::new(false),
        written: parking_lot::Mutex::new(Some(tx)),
    });
    let service = ExchangeService {
        router: router.clone(),
        state: state.clone(),
    };
    let mut conn = builder.serve_connection(TokioIo::new(io), service);
    let mut asked = false;
    let mut stopping = false;
    let result = poll_fn(|cx| {
        if !asked {
            let done = Pin::new(&mut written).poll(cx).is_ready();
            let stop = guard.poll_shutdown(cx);
            if done || stop {
                // The head is written: hyper finishes the response, flushes
                // it and stops, without promising the client to close.
                asked = true;
                stopping = stop;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
        conn.poll_without_shutdown(cx)
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection ended with an error");
        return None;
    }
    let parts = conn.into_parts();
    let OneRequestParts {
        mut io,
        unread,
        body_left,
        ahead,
    } = parts.io.into_inner().into_one_request_parts();
    // A body not read to its end (the handler answered without it, and
    // hyper gave up draining it) leaves the connection unusable.
    let reusable = state.requests.load(Ordering::Acquire) == 1
        && !state.close.load(Ordering::Acquire)
        && !stopping
        && body_left == 0
        && unread.is_empty()
        && parts.read_buf.is_empty();
    if !reusable {
        let _ = io.shutdown().await;
        return None;
    }
    Some((io, ahead))
}

struct ExchangeState {
    requests: AtomicU32,
    /// The response said `Connection: close`.
    close: AtomicBool,
    /// Dropped with the first response's body, after hyper wrote its head.
    written: parking_lot::Mutex<Option<oneshot::Sender<()>>>,
}

#[derive(Clone)]
struct ExchangeService {
    router: axum::Router,
    state: Arc<ExchangeState>,
}

impl hyper::service::Service<Request<Incoming>> for ExchangeService {
    type Response = Response<Signalled>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Signalled>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let first = self.state.requests.fetch_add(1, Ordering::AcqRel) == 0;
        let signal = if first {
            self.state.written.lock().take()
        } else {
            None
        };
        let state = self.state.clone();
        let response = self.router.clone().oneshot(req.map(Body::new));
        Box::pin(async move {
            let resp = match response.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if resp
                .headers()
                .get(header::CONNECTION)
                .is_some_and(|v| has_token(v.as_bytes(), "close"))
            {
                state.close.store(true, Ordering::Release);
            }
            Ok(resp.map(|body| Signalled {
                body,
                _signal: signal,
            }))
        })
    }
}

/// A response body that tells [`exchange`] when hyper lets go of it: after
/// the head is encoded (hyper drops an empty body right after writing the
/// head, a streamed one after its last frame or on error).
struct Signalled {
    body: Body,
    _signal: Option<oneshot::Sender<()>>,
}

impl hyper::body::Body for Signalled {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The rest of the connection on hyper (with upgrades), as before this
/// loop existed: on shutdown the exchange in progress finishes, then it
/// closes.
async fn serve_hyper<IO>(
    builder: &http1::Builder,
    io: Prefixed<IO>,
    router: axum::Router,
    guard: ConnectionGuard,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut conn = std::pin::pin!(builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());
    let stop = poll_fn(|cx| {
        if guard.poll_shutdown(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &str) -> &'static str {
        match classify(head.as_bytes()) {
            None => "partial",
            Some(Next::Stream {
                keep_alive: true, ..
            }) => "stream",
            Some(Next::Stream {
                keep_alive: false, ..
            }) => "stream, close",
            Some(Next::Exchange { .. }) => "exchange",
            Some(Next::Hyper) => "hyper",
        }
    }

    #[test]
    fn streaming_receivers_are_served_here() {
        let h = "\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            kind(&format!(
                "POST /sockjs/echo/000/abc/xhr_streaming HTTP/1.1{h}"
            )),
            "stream"
        );
        assert_eq!(
            kind(&format!("GET /s/1/a/eventsource?t=1 HTTP/1.1{h}")),
            "stream"
        );
        assert_eq!(
            kind(&format!("GET /s/1/a/htmlfile?c=cb HTTP/1.1{h}")),
            "stream"
        );
        assert_eq!(
            kind("POST /s/1/a/xhr_streaming HTTP/1.1\r\nConnection: close\r\n\r\n"),
            "stream, close"
        );
    }

    #[test]
    fn other_bodiless_requests_get_one_hyper_exchange() {
        assert_eq!(
            kind("GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n"),
            "exchange"
        );
        assert_eq!(
            kind("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n\r\n"),
            "exchange"
        );
        assert_eq!(
            kind("OPTIONS /s/1/a/xhr_streaming HTTP/1.1\r\n\r\n"),
            "exchange"
        );
    }

    #[test]
    fn requests_with_a_length_get_one_hyper_exchange() {
        assert_eq!(
            kind("POST /s/1/a/xhr_send HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            "exchange"
        );
        assert_eq!(
            kind("POST /socket.io/?EIO=4 HTTP/1.1\r\nContent-Length: 17\r\n\r\n"),
            "exchange"
        );
        // A stream's path with a body is not a stream here.
        assert_eq!(
            kind("POST /s/1/a/xhr_streaming HTTP/1.1\r\nContent-Length: 1\r\n\r\n"),
            "exchange"
        );
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for head in [
            "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET /s/1/a/eventsource HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "POST /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /s/1/a/eventsource HTTP/1.0\r\n\r\n",
            "GET /info HTTP/1.1\r\nConnection: close\r\n\r\n",
            "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            "GET /\x01 HTTP/1.1\r\n\r\n",
            "NOT HTTP AT ALL\r\n\r\n",
        ] {
            assert_eq!(kind(head), "hyper", "{head:?}");
        }
    }

    #[test]
    fn a_head_in_pieces_waits() {
        assert_eq!(
            kind("GET /s/1/a/eventsource HTTP/1.1\r\nHost: x\r\n"),
            "partial"
        );
        assert_eq!(kind("GET /s/1/a/even"), "partial");
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert!(ends_a_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(ends_a_head(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(ends_a_head(b"\n\r\n"));
        assert!(!ends_a_head(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!ends_a_head(b"\r\n"));
        assert!(!ends_a_head(b""));
    }

    #[test]
    fn tokens_and_lengths() {
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"closed", "close"));
        assert_eq!(content_length(b" 0 "), Some(0));
        assert_eq!(content_length(b"017"), Some(17));
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"+5"), None);
        assert_eq!(content_length(b"5, 5"), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
    }
}
