//! The body of a receiving HTTP response (`xhr`, `xhr_streaming`,
//! `eventsource`, `htmlfile`, `jsonp`): the prelude and what the session
//! gave at attach, then whatever [`Session::poll_output`] gives each time
//! hyper asks for more, until [`Flow::End`]. Dropped before the end (the
//! client went away), it aborts the session.
//!
//! [`Session::poll_output`]: switchboard_sockjs::Session::poll_output

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use switchboard_sockjs::{Attached, Flow, ReceiverId};

use super::conn::{now, SockJsConn};

/// The response body for a receiver that just attached.
pub(crate) fn body(conn: SockJsConn, prelude: Bytes, attached: Attached) -> Body {
    if attached.flow == Flow::End {
        return Body::from(concat(prelude, attached.data));
    }
    let mut pending: VecDeque<Bytes> = VecDeque::with_capacity(attached.data.len() + 1);
    if !prelude.is_empty() {
        pending.push_back(prelude);
    }
    pending.extend(attached.data);
    Body::new(ReceiverBody {
        conn,
        id: attached.id,
        pending,
        done: false,
    })
}

/// The bytes of a response that is complete at once.
fn concat(prelude: Bytes, data: Vec<Bytes>) -> Bytes {
    if data.is_empty() {
        return prelude;
    }
    if prelude.is_empty() && data.len() == 1 {
        return data.into_iter().next().expect("one chunk");
    }
    let mut out = Vec::with_capacity(prelude.len() + data.iter().map(Bytes::len).sum::<usize>());
    out.extend_from_slice(&prelude);
    for d in &data {
        out.extend_from_slice(d);
    }
    Bytes::from(out)
}

/// A streaming or parked polling response attached to a session.
struct ReceiverBody {
    conn: SockJsConn,
    id: ReceiverId,
    /// Chunks taken from the session, not yet given to hyper.
    pending: VecDeque<Bytes>,
    /// The session let go of this receiver: end after `pending`.
    done: bool,
}

impl hyper::body::Body for ReceiverBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let inner = &this.conn.inner;
            let mut st = inner.state.lock();
            if st.session.is_attached(this.id) && !st.session.has_output() {
                st.park(this.id, cx.waker());
                return Poll::Pending;
            }
            let mut out = Vec::new();
            if st.session.poll_output(now(), this.id, &mut out) == Flow::End {
                this.done = true;
                if st.receiver.as_ref().is_some_and(|(id, _)| *id == this.id) {
                    st.receiver = None;
                }
            }
            // Delivered by the session task: this runs inside hyper's poll.
            st.after_input_deferred(inner);
            this.pending.extend(out);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for ReceiverBody {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let inner = &self.conn.inner;
        let mut st = inner.state.lock();
        if st.receiver.as_ref().is_some_and(|(id, _)| *id == self.id) {
            st.receiver = None;
        }
        st.session.abort(now(), self.id);
        st.after_input_deferred(inner);
    }
}
