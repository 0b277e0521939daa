// SockJS transport of the chat page: the /ws JSON envelope over SockJS, through
// the server's /sockjs/chat service (docs/ws-envelope.md). Same requests, events,
// presence, history and `since` catch-up as the WebSocket choice: it is that
// transport with a SockJS instead of a WebSocket underneath. sockjs-client (served
// from /assets/vendor/, installed from npm by lockfile) picks a WebSocket, or an
// HTTP streaming or polling fallback when WebSockets are blocked. It registers
// only when sockjs-client has loaded.
(() => {
  'use strict';
  if (typeof window.SockJS !== 'function' || !window.Switchboard) return;
  const { WebSocketEnvelopeTransport, registerTransport } = window.Switchboard;

  class SockJsEnvelopeTransport extends WebSocketEnvelopeTransport {
    // url: the HTTP(S) origin; the service is `${url}/sockjs/chat`.
    constructor({ url = location.origin, ...opts } = {}) {
      super({ ...opts, url });
    }

    // `?name=` stays on every request sockjs-client makes (docs/ws-envelope.md).
    openSocket(qs) {
      return new window.SockJS(`${this.url}/sockjs/chat${qs}`);
    }

    openDetail(sock) { return sock.transport || ''; }
  }

  registerTransport('sockjs', { label: 'SockJS', create: (opts) => new SockJsEnvelopeTransport(opts) });
  window.Switchboard.SockJsEnvelopeTransport = SockJsEnvelopeTransport;
})();
