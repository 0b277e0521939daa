// STOMP transports of the chat page, with @stomp/stompjs 7 (served from
// /assets/vendor/, installed from npm by lockfile), on the server's /stomp
// endpoint (docs/stomp.md):
//
//   'stomp'         STOMP over WebSocket: new Client({ brokerURL: 'ws://HOST/stomp' })
//   'stomp-sockjs'  STOMP over SockJS:    webSocketFactory: () => new SockJS('/stomp')
//
// A room is the destination /topic/<room>, i.e. the hub topic <room> that the
// WebSocket, Socket.IO and SockJS choices use. A chat message is published as
// the same JSON the other choices publish as `data` (a JSON string), with
// content-type application/json, so their pages show it as they show their own.
// Received MESSAGE bodies are the hub payload: text/plain → text,
// application/json → the JSON value, application/octet-stream → binary.
//
// What STOMP cannot do here, and the page says so: there is no presence (the
// members list reads "n/a over STOMP"); a MESSAGE has no sender (others'
// messages read "sender n/a over STOMP"; the page's own are recognised); and
// no history, so messages published while the connection was down are not
// replayed after a reconnect. The display
// name is sent as CONNECT's `login` (the server's default authenticator takes
// it as the name; a server with a user table may refuse it, and then the page
// connects anonymously).
(() => {
  'use strict';
  if (!window.StompJs || typeof window.StompJs.Client !== 'function' || !window.Switchboard) return;
  const { Emitter, registerTransport } = window.Switchboard;
  const { Client, ReconnectionTimeMode } = window.StompJs;

  function wsBaseUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}`;
  }

  const destinationOf = (topic) => `/topic/${topic}`;
  let receiptSeq = 0;

  class StompTransport {
    // overSockJs: false → a WebSocket to `${url}/stomp` (subprotocols v12.stomp,
    // v11.stomp, v10.stomp, as stompjs offers them); true → new SockJS('/stomp').
    constructor({ name, token = null, overSockJs = false, url = null, requestTimeout = 10000 } = {}) {
      this.name = name;
      this.overSockJs = overSockJs;
      this.url = url || (overSockJs ? location.origin : wsBaseUrl());
      this.requestTimeout = requestTimeout;
      this.presenceUnavailable = 'n/a over STOMP';
      this.senderUnavailable = 'sender n/a over STOMP';
      this.events = new Emitter();
      this.topics = new Map(); // topic -> StompSubscription | null (null: not subscribed on this connection yet)
      this.everConnected = false;
      this.closedForGood = false;
      this.sentLogin = !token && !!name;
      this.ownPending = []; // JSON of what this page published, not yet seen back
      const config = {
        // A token goes in `passcode` (docs/auth.md); otherwise the nickname is the login.
        connectHeaders: token ? { passcode: token } : name ? { login: name } : {},
        reconnectDelay: 500,
        heartbeatIncoming: 10000,
        heartbeatOutgoing: 10000,
        onConnect: (frame) => this.handleConnect(frame),
        onStompError: (frame) => this.handleStompError(frame),
        onWebSocketClose: (ev) => this.handleClose(ev),
        debug: () => {},
      };
      if (ReconnectionTimeMode) {
        config.reconnectTimeMode = ReconnectionTimeMode.EXPONENTIAL;
        config.maxReconnectDelay = 15000;
      }
      if (overSockJs) config.webSocketFactory = () => new window.SockJS(`${this.url}/stomp`);
      else config.brokerURL = `${this.url}/stomp`;
      this.client = new Client(config);
    }

    onStatus(fn) { return this.events.on('status', fn); }
    onMessage(fn) { return this.events.on('message', fn); }
    onPresence(fn) { return this.events.on('presence', fn); }
    onNotice(fn) { return this.events.on('notice', fn); }

    setState(state, detail = '') { this.events.emit('status', { state, detail }); }

    connect() {
      this.closedForGood = false;
      if (this.client.active) return;
      this.setState('connecting');
      this.client.activate();
    }

    async handleConnect(frame) {
      const reconnect = this.everConnected;
      this.everConnected = true;
      for (const topic of this.topics.keys()) this.topics.set(topic, null);
      // "open" once every room is subscribed (the server's RECEIPTs say so), so
      // nothing published after the page shows "open" is missed.
      await Promise.all([...this.topics.keys()].map((topic) => this.sendSubscribe(topic).catch((err) => {
        this.events.emit('notice', `could not subscribe to ${topic}: ${err.message}`);
      })));
      if (!this.client.connected) return;
      const how = this.overSockJs && this.client.webSocket && this.client.webSocket.transport
        ? ` over SockJS (${this.client.webSocket.transport})` : '';
      this.setState('open', `STOMP ${frame.headers.version || ''}${how}`.trim());
      if (reconnect) {
        this.events.emit('notice', 'Reconnected. STOMP has no history here: messages sent while disconnected are not shown.');
      }
    }

    handleStompError(frame) {
      const message = frame.headers.message || 'error';
      this.events.emit('notice', `server error: ${message}${frame.body ? ` (${frame.body.trim()})` : ''}`);
      if (message === 'bad credentials' && this.sentLogin) {
        // The server has a user table that does not know this nickname: carry
        // on anonymously (the next reconnect sends no login).
        this.sentLogin = false;
        this.client.connectHeaders = {};
        this.events.emit('notice', `The server does not accept "${this.name}" as a STOMP login: connecting anonymously.`);
      }
    }

    handleClose(ev) {
      if (this.closedForGood) {
        this.setState('closed');
        return;
      }
      this.setState('reconnecting', `code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''}`);
    }

    // Sends `frame` (a function given extra headers) with a receipt header and
    // resolves when the server's RECEIPT arrives.
    withReceipt(what, send) {
      return new Promise((resolve, reject) => {
        if (!this.client.connected) {
          reject(new Error('not connected'));
          return;
        }
        receiptSeq += 1;
        const receipt = `r-${receiptSeq}`;
        const timer = setTimeout(() => reject(new Error(`${what}: no receipt`)), this.requestTimeout);
        this.client.watchForReceipt(receipt, () => {
          clearTimeout(timer);
          resolve();
        });
        try {
          send({ receipt });
        } catch (err) {
          clearTimeout(timer);
          reject(err);
        }
      });
    }

    sendSubscribe(topic) {
      return this.withReceipt('subscribe', (headers) => {
        const sub = this.client.subscribe(destinationOf(topic), (msg) => this.handleMessage(topic, msg), headers);
        if (this.topics.has(topic)) this.topics.set(topic, sub);
        else sub.unsubscribe(); // left the room meanwhile
      });
    }

    handleMessage(topic, msg) {
      const type = (msg.headers['content-type'] || '').toLowerCase();
      let data = msg.body;
      let binary = false;
      if (type.startsWith('application/octet-stream')) {
        const bytes = msg.binaryBody;
        data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        binary = true;
      } else if (type.startsWith('application/json')) {
        try { data = JSON.parse(msg.body); } catch { /* shown as the text it is */ }
      }
      // A STOMP MESSAGE carries only the payload: no sender, sequence number or
      // time (docs/stomp.md), unless a server adds such headers. This page's own
      // messages come back to it and are recognised by their content.
      const h = msg.headers;
      let from = h.from ?? h['x-from'] ?? h['switchboard-from'];
      if (from == null && !binary) {
        const i = this.ownPending.indexOf(JSON.stringify(data));
        if (i >= 0) {
          this.ownPending.splice(i, 1);
          from = this.name;
        }
      }
      const seqText = h.seq ?? h['x-seq'] ?? h['switchboard-seq'];
      const tsText = h.ts ?? h['x-ts'] ?? h['switchboard-ts'];
      const num = (v) => (v != null && /^\d+$/.test(v) ? Number(v) : undefined);
      this.events.emit('message', { topic, seq: num(seqText), from, data, ts: num(tsText), binary });
    }

    subscribe(topic) {
      if (this.topics.has(topic)) return Promise.resolve(null);
      this.topics.set(topic, null);
      if (this.client.connected) return this.sendSubscribe(topic);
      return Promise.resolve(null); // subscribed on connect
    }

    unsubscribe(topic) {
      const sub = this.topics.get(topic);
      this.topics.delete(topic);
      if (sub && this.client.connected) sub.unsubscribe();
      return Promise.resolve(null);
    }

    // The same `data` the other choices publish, as JSON.
    publish(topic, data) {
      const body = JSON.stringify(data);
      return this.withReceipt('publish', (headers) => {
        this.client.publish({
          destination: destinationOf(topic),
          body,
          headers: { ...headers, 'content-type': 'application/json' },
        });
        this.ownPending.push(body);
        if (this.ownPending.length > 100) this.ownPending.shift();
      });
    }

    close() {
      this.closedForGood = true;
      this.client.deactivate().finally(() => this.setState('closed'));
    }
  }

  registerTransport('stomp', {
    label: 'STOMP',
    create: (opts) => new StompTransport({ ...opts, overSockJs: false }),
  });
  if (typeof window.SockJS === 'function') {
    registerTransport('stomp-sockjs', {
      label: 'STOMP over SockJS',
      create: (opts) => new StompTransport({ ...opts, overSockJs: true }),
    });
  }
  window.Switchboard.StompTransport = StompTransport;
})();
