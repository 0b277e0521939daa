// Socket.IO transport of the chat page: the same rooms through /socket.io/
// and the server's built-in events (docs/socketio-events.md). It registers only
// when the socket.io client library (served from /assets/vendor/, installed
// from npm by lockfile) has loaded. socket.io-client reconnects by itself; on
// every (re)connect this re-subscribes with `since` = the last seq seen.
(() => {
  'use strict';
  if (typeof window.io !== 'function' || !window.Switchboard) return;
  const { Emitter, registerTransport } = window.Switchboard;

  class SocketIoTransport {
    constructor({ name, token = null, requestTimeout = 10000 } = {}) {
      this.name = name;
      this.token = token;
      this.requestTimeout = requestTimeout;
      this.events = new Emitter();
      this.topics = new Map(); // topic -> { lastSeq }
      this.socket = null;
      this.everConnected = false;
    }

    onStatus(fn) { return this.events.on('status', fn); }
    onMessage(fn) { return this.events.on('message', fn); }
    onPresence(fn) { return this.events.on('presence', fn); }
    onNotice(fn) { return this.events.on('notice', fn); }

    setState(state, detail = '') { this.events.emit('status', { state, detail }); }

    connect() {
      if (this.socket) return;
      this.setState('connecting');
      const auth = this.token ? { name: this.name, token: this.token } : { name: this.name };
      const socket = window.io({ auth, reconnectionDelayMax: 15000 });
      this.socket = socket;
      socket.on('connect', () => {
        const reconnect = this.everConnected;
        this.everConnected = true;
        this.setState('open', socket.io.engine.transport.name);
        for (const [topic, info] of this.topics) {
          this.sendSubscribe(topic, info.lastSeq, reconnect).catch((err) => {
            this.events.emit('notice', `could not subscribe to ${topic}: ${err.message}`);
          });
        }
      });
      socket.on('disconnect', (reason) => {
        this.setState('reconnecting', reason);
        // After a server-side disconnect socket.io-client does not retry by itself.
        if (reason === 'io server disconnect') socket.connect();
      });
      socket.on('connect_error', (err) => this.setState('reconnecting', err.message));
      socket.on('message', (m) => {
        const info = this.topics.get(m.topic);
        if (info && typeof m.seq === 'number' && (info.lastSeq == null || m.seq > info.lastSeq)) info.lastSeq = m.seq;
        const binary = m.data instanceof ArrayBuffer;
        this.events.emit('message', { topic: m.topic, seq: m.seq, from: m.from, data: m.data, ts: m.ts, binary });
      });
      socket.on('presence', (p) => {
        this.events.emit('presence', { topic: p.topic, event: p.event, name: p.name, count: p.count });
      });
    }

    async request(event, arg) {
      if (!this.socket || !this.socket.connected) throw new Error('not connected');
      const reply = await this.socket.timeout(this.requestTimeout).emitWithAck(event, arg);
      if (reply && reply.ok === false) {
        const err = new Error(reply.message || reply.code);
        err.code = reply.code;
        throw err;
      }
      return reply;
    }

    async sendSubscribe(topic, since, isReconnect) {
      const known = this.topics.get(topic);
      const arg = since == null ? { topic } : { topic, since };
      // The numbering `since` belongs to: another one (the server restarted,
      // the topic was recreated) is answered recovered: false.
      if (since != null && known && known.epoch != null) arg.epoch = known.epoch;
      const reply = await this.request('subscribe', arg);
      const info = this.topics.get(topic);
      if (info && info.lastSeq == null && since == null) info.lastSeq = reply.seq;
      if (info && typeof reply.epoch === 'number') {
        // A new numbering: its messages up to reply.seq were replayed or are gone.
        if (info.epoch != null && info.epoch !== reply.epoch) info.lastSeq = reply.seq;
        info.epoch = reply.epoch;
      }
      if (isReconnect && since != null && reply.recovered === false) {
        this.events.emit('notice', 'Some messages were missed while disconnected (no longer in history).');
      }
      if (reply.presence) {
        this.events.emit('presence', { topic, count: reply.presence.count, members: reply.presence.members || [] });
      }
      return reply;
    }

    subscribe(topic, { since } = {}) {
      this.topics.set(topic, { lastSeq: since ?? null });
      if (this.socket && this.socket.connected) return this.sendSubscribe(topic, since, false);
      return Promise.resolve(null); // subscribed on connect
    }

    unsubscribe(topic) {
      this.topics.delete(topic);
      if (this.socket && this.socket.connected) return this.request('unsubscribe', topic);
      return Promise.resolve(null);
    }

    publish(topic, data) { return this.request('publish', { topic, data }); }

    presence(topic) {
      return this.request('presence', topic).then((reply) => {
        const p = reply.presence || { count: 0, members: [] };
        this.events.emit('presence', { topic, count: p.count, members: p.members || [] });
        return reply;
      });
    }

    close() {
      if (this.socket) {
        this.socket.close();
        this.socket = null;
      }
      this.setState('closed');
    }
  }

  registerTransport('socketio', { label: 'Socket.IO', create: (opts) => new SocketIoTransport(opts) });
})();
