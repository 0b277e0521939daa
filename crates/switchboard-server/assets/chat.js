// Switchboard chat page.
//
// The page talks to the server through a small "transport" interface so that
// further protocols (Socket.IO, SockJS, STOMP) can be added as options of the
// same <select> and chat in the same rooms:
//
//   const t = factory.create({ name, token })  // name = nickname; token = the page's
//                                             // ?token= (a JWT, docs/auth.md), or null
//   t.onStatus(fn)    fn({ state, detail })  state: connecting | open | reconnecting | closed
//   t.onMessage(fn)   fn({ topic, seq, from, data, ts, binary })
//   t.onPresence(fn)  fn({ topic, count, members })          full snapshot, or
//                     fn({ topic, event, name, count })      join / leave event
//   t.onNotice(fn)    fn(text)                               optional, informational
//   t.connect()                    opens and keeps the connection (reconnects itself)
//   t.subscribe(topic, { since })  -> Promise; re-subscribed after every reconnect with
//                                     since = last seq seen, so missed messages are replayed
//   t.unsubscribe(topic)           -> Promise
//   t.publish(topic, data)         -> Promise
//   t.close()                      closes for good (no reconnect)
//   t.presenceUnavailable          optional: a short text (e.g. 'n/a over STOMP') when the
//                                  protocol cannot tell who is in the room; the members
//                                  list then shows that text instead of names
//   t.senderUnavailable            optional: shown as the sender of messages that come
//                                  without one (e.g. 'sender n/a over STOMP')
//
// Transports register themselves with Switchboard.registerTransport(id, { label, create }).
(() => {
  'use strict';

  // ---------------------------------------------------------------- registry
  const transports = new Map();
  function registerTransport(id, factory) {
    transports.set(id, factory);
    const select = document.getElementById('protocol');
    if (select && !select.querySelector(`option[value="${CSS.escape(id)}"]`)) {
      const opt = document.createElement('option');
      opt.value = id;
      opt.textContent = factory.label;
      select.appendChild(opt);
    }
  }

  // ------------------------------------------------------------ small utils
  class Emitter {
    constructor() { this.handlers = new Map(); }
    on(type, fn) {
      if (!this.handlers.has(type)) this.handlers.set(type, new Set());
      this.handlers.get(type).add(fn);
      return () => this.handlers.get(type).delete(fn);
    }
    emit(type, value) {
      for (const fn of this.handlers.get(type) || []) {
        try { fn(value); } catch (err) { console.error(err); }
      }
    }
  }

  // Exponential backoff with "equal jitter": half of the delay is fixed, half random.
  class Backoff {
    constructor({ base = 500, factor = 2, max = 15000 } = {}) {
      Object.assign(this, { base, factor, max, attempt: 0 });
    }
    next() {
      const ceiling = Math.min(this.max, this.base * this.factor ** this.attempt);
      this.attempt += 1;
      return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    }
    reset() { this.attempt = 0; }
  }

  function wsBaseUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}`;
  }

  // ------------------------------------------- raw WebSocket /ws JSON envelope
  class WebSocketEnvelopeTransport {
    constructor({ name, token = null, url = wsBaseUrl(), requestTimeout = 10000, heartbeat = 25000 } = {}) {
      this.name = name;
      this.token = token;
      this.url = url;
      this.requestTimeout = requestTimeout;
      this.heartbeatEvery = heartbeat;
      this.events = new Emitter();
      this.backoff = new Backoff();
      this.ws = null;
      this.nextId = 1;
      this.pending = new Map();          // id -> { resolve, reject, timer }
      this.topics = new Map();           // topic -> { lastSeq: number | null }
      this.closedForGood = false;
      this.reconnectTimer = null;
      this.heartbeatTimer = null;
      this.everConnected = false;
      this.state = 'idle';
      this.onOnline = () => { if (this.reconnectTimer) this.reconnectNow(); };
      window.addEventListener('online', this.onOnline);
    }

    onStatus(fn) { return this.events.on('status', fn); }
    onMessage(fn) { return this.events.on('message', fn); }
    onPresence(fn) { return this.events.on('presence', fn); }
    onNotice(fn) { return this.events.on('notice', fn); }

    setState(state, detail = '') {
      this.state = state;
      this.events.emit('status', { state, detail });
    }

    connect() {
      this.closedForGood = false;
      if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
      this.open();
    }

    open() {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.setState(this.everConnected ? 'reconnecting' : 'connecting');
      const query = new URLSearchParams();
      if (this.name) query.set('name', this.name);
      if (this.token) query.set('token', this.token);
      const qs = query.size ? `?${query}` : '';
      let ws;
      try {
        ws = this.openSocket(qs);
      } catch (err) {
        this.scheduleReconnect(String(err));
        return;
      }
      this.ws = ws;
      ws.onopen = () => this.handleOpen(ws);
      ws.onmessage = (ev) => this.handleFrame(ev);
      ws.onclose = (ev) => this.handleClose(ws, ev);
      ws.onerror = () => { /* a close event always follows */ };
    }

    // The socket carrying the envelope: a WebSocket here; anything with the same
    // readyState / onopen / onmessage / onclose / send / close shape works
    // (the SockJS transport, chat-sockjs.js, opens a SockJS instead).
    openSocket(qs) {
      return new WebSocket(`${this.url}/ws${qs}`);
    }

    // Detail shown next to "open" in the status.
    openDetail() { return ''; }

    async handleOpen(ws) {
      if (ws !== this.ws) return;
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.backoff.reset();
      this.setState('open', this.openDetail(ws));
      this.startHeartbeat();
      // (Re-)subscribe everything we were subscribed to; after a reconnect ask
      // for what was published since the last message we saw.
      for (const [topic, info] of this.topics) {
        this.sendSubscribe(topic, info.lastSeq, reconnect).catch((err) => {
          this.events.emit('notice', `could not subscribe to ${topic}: ${err.message}`);
        });
      }
    }

    handleClose(ws, ev) {
      if (ws !== this.ws) return;
      this.ws = null;
      this.stopHeartbeat();
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new Error('connection closed'));
      }
      this.pending.clear();
      if (this.closedForGood) {
        this.setState('closed');
        return;
      }
      const why = ev.code === 1013 ? 'server says: slow consumer' : `code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''}`;
      this.scheduleReconnect(why);
    }

    scheduleReconnect(why) {
      const delay = this.backoff.next();
      this.setState('reconnecting', `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    }

    reconnectNow() {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.open();
    }

    startHeartbeat() {
      this.stopHeartbeat();
      this.heartbeatTimer = setInterval(() => {
        // An application-level ping: a dead connection shows up as a timeout.
        this.request({ op: 'ping' }).catch(() => {
          if (this.ws) this.ws.close(4000, 'heartbeat timeout');
        });
      }, this.heartbeatEvery);
    }

    stopHeartbeat() {
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
    }

    handleFrame(ev) {
      if (typeof ev.data !== 'string') return; // the envelope is JSON text only
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!msg || typeof msg !== 'object') return;

      if ((msg.type === 'ok' || msg.type === 'error' || msg.type === 'pong') && msg.id != null && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.type === 'error') {
          const err = new Error(msg.message || msg.code);
          err.code = msg.code;
          p.reject(err);
        } else {
          p.resolve(msg);
        }
        return;
      }

      switch (msg.type) {
        case 'message': {
          const info = this.topics.get(msg.topic);
          if (info && typeof msg.seq === 'number' && (info.lastSeq == null || msg.seq > info.lastSeq)) {
            info.lastSeq = msg.seq;
          }
          this.events.emit('message', {
            topic: msg.topic, seq: msg.seq, from: msg.from, data: msg.data, ts: msg.ts, binary: !!msg.binary,
          });
          break;
        }
        case 'presence':
          this.events.emit('presence', {
            topic: msg.topic, event: msg.event, name: msg.name, count: msg.count,
          });
          break;
        case 'error':
          this.events.emit('notice', `server error: ${msg.code}${msg.message ? ` (${msg.message})` : ''}`);
          break;
        default:
          break;
      }
    }

    request(body) {
      return new Promise((resolve, reject) => {
        const ws = this.ws;
        if (!ws || ws.readyState !== WebSocket.OPEN) {
          reject(new Error('not connected'));
          return;
        }
        const id = this.nextId++;
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`${body.op}: no reply`));
        }, this.requestTimeout);
        this.pending.set(id, { resolve, reject, timer });
        ws.send(JSON.stringify({ ...body, id }));
      });
    }

    async sendSubscribe(topic, since, isReconnect) {
      const body = { op: 'subscribe', topic };
      const known = this.topics.get(topic);
      if (since != null) {
        body.since = since;
        // The numbering `since` belongs to: another one (the server restarted,
        // the topic was recreated) is answered recovered: false.
        if (known && known.epoch != null) body.epoch = known.epoch;
      }
      const reply = await this.request(body);
      const info = this.topics.get(topic);
      if (info && info.lastSeq == null && typeof reply.seq === 'number' && since == null) {
        info.lastSeq = reply.seq;
      }
      if (info && typeof reply.epoch === 'number') {
        // A new numbering: its messages up to reply.seq were replayed or are gone.
        if (info.epoch != null && info.epoch !== reply.epoch) info.lastSeq = reply.seq;
        info.epoch = reply.epoch;
      }
      if (isReconnect && since != null && reply.recovered === false) {
        this.events.emit('notice', 'Some messages were missed while disconnected (no longer in history).');
      }
      if (reply.presence) {
        this.events.emit('presence', {
          topic, count: reply.presence.count, members: reply.presence.members || [],
        });
      }
      return reply;
    }

    // since: undefined = only live messages; a number = also the retained ones after it.
    subscribe(topic, { since } = {}) {
      const info = { lastSeq: since ?? null };
      this.topics.set(topic, info);
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        return this.sendSubscribe(topic, since, false);
      }
      return Promise.resolve(null); // subscribed on open
    }

    unsubscribe(topic) {
      this.topics.delete(topic);
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        return this.request({ op: 'unsubscribe', topic });
      }
      return Promise.resolve(null);
    }

    publish(topic, data) {
      return this.request({ op: 'publish', topic, data });
    }

    presence(topic) {
      return this.request({ op: 'presence', topic }).then((reply) => {
        const p = reply.presence || { count: 0, members: [] };
        this.events.emit('presence', { topic, count: p.count, members: p.members || [] });
        return reply;
      });
    }

    close() {
      this.closedForGood = true;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.stopHeartbeat();
      window.removeEventListener('online', this.onOnline);
      if (this.ws) this.ws.close(1000, 'bye');
      else this.setState('closed');
    }
  }

  registerTransport('websocket', {
    label: 'WebSocket',
    create: (opts) => new WebSocketEnvelopeTransport(opts),
  });

  // --------------------------------------------------------------------- UI
  const $ = (id) => document.getElementById(id);
  const el = {
    protocol: $('protocol'), status: $('status'), joinForm: $('join-form'), nick: $('nick'),
    room: $('room'), join: $('join'), currentRoom: $('current-room'), messages: $('messages'),
    sendForm: $('send-form'), message: $('message'), send: $('send'),
    members: $('members'), memberCount: $('member-count'),
  };

  const app = {
    transport: null,
    protocol: null,
    nick: null,
    room: null,
    seen: new Set(),            // seqs already rendered in the current room (dedupe)
    members: new Map(),         // name -> number of connections under that name
    memberCount: 0,
    presenceNote: null,         // text shown instead of members when the protocol has no presence
    resyncTimer: null,
  };

  function randomNick() {
    const adjectives = ['brisk', 'calm', 'eager', 'jolly', 'lucky', 'mellow', 'nimble', 'quiet', 'sunny', 'witty'];
    const animals = ['otter', 'heron', 'lynx', 'panda', 'fox', 'koala', 'wren', 'yak', 'gecko', 'seal'];
    const pick = (a) => a[Math.floor(Math.random() * a.length)];
    return `${pick(adjectives)}-${pick(animals)}-${Math.floor(Math.random() * 100)}`;
  }

  function setStatus({ state, detail }) {
    el.status.dataset.state = state;
    el.status.textContent = detail ? `${state} – ${detail}` : state;
    el.status.title = detail || state;
    const open = state === 'open';
    el.message.disabled = !open;
    el.send.disabled = !open;
  }

  function scrolledToBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
  }

  function appendItem(li) {
    const stick = scrolledToBottom();
    el.messages.appendChild(li);
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function systemLine(text) {
    const li = document.createElement('li');
    li.className = 'system';
    li.dataset.testid = 'system-message';
    li.textContent = text;
    appendItem(li);
  }

  function messageText(m) {
    if (m.binary) {
      let n = 0;
      if (m.data instanceof ArrayBuffer) n = m.data.byteLength;
      else try { n = atob(m.data).length; } catch { /* not base64 */ }
      return `[binary, ${n} bytes]`;
    }
    if (typeof m.data === 'string') return m.data;
    if (m.data && typeof m.data === 'object' && typeof m.data.text === 'string') return m.data.text;
    return JSON.stringify(m.data);
  }

  function renderMessage(m) {
    if (m.topic !== app.room) return;
    if (typeof m.seq === 'number') {
      if (app.seen.has(m.seq)) return;
      app.seen.add(m.seq);
    }
    const li = document.createElement('li');
    li.className = 'message';
    li.dataset.testid = 'message';
    if (m.seq != null) li.dataset.seq = String(m.seq);
    li.dataset.from = m.from ?? '';
    if (m.from === app.nick) li.classList.add('mine');

    const meta = document.createElement('div');
    meta.className = 'meta';
    const from = document.createElement('span');
    from.className = 'from';
    const t = app.transport;
    from.textContent = m.from ?? ((t && t.senderUnavailable) || 'unknown');
    const time = document.createElement('time');
    const when = typeof m.ts === 'number' ? new Date(m.ts) : new Date();
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(from, time);

    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = messageText(m);   // never innerHTML: no markup injection
    li.append(meta, body);

    // Replayed messages may in principle arrive after newer live ones: keep seq order.
    const next = m.seq == null ? null
      : [...el.messages.querySelectorAll('li.message[data-seq]')].find((x) => Number(x.dataset.seq) > m.seq);
    if (next) el.messages.insertBefore(li, next);
    else appendItem(li);
  }

  function renderMembers() {
    el.members.replaceChildren();
    el.members.classList.toggle('unavailable', !!app.presenceNote);
    if (app.presenceNote) {
      const li = document.createElement('li');
      li.className = 'na';
      li.dataset.testid = 'members-unavailable';
      li.textContent = app.presenceNote;
      el.members.appendChild(li);
      el.memberCount.textContent = 'n/a';
      el.memberCount.title = app.presenceNote;
      return;
    }
    el.memberCount.title = '';
    const names = [...app.members.keys()].sort((a, b) => a.localeCompare(b));
    for (const name of names) {
      const li = document.createElement('li');
      li.dataset.testid = 'member';
      li.dataset.name = name;
      li.textContent = name;
      const n = app.members.get(name);
      if (n > 1) {
        const badge = document.createElement('span');
        badge.className = 'multi';
        badge.textContent = ` ×${n}`;
        li.appendChild(badge);
      }
      if (name === app.nick) li.classList.add('me');
      el.members.appendChild(li);
    }
    el.memberCount.textContent = String(app.memberCount);
  }

  function memberTotal() {
    let n = 0;
    for (const v of app.members.values()) n += v;
    return n;
  }

  function handlePresence(p) {
    if (p.topic !== app.room || app.presenceNote) return;
    if (Array.isArray(p.members)) {
      app.members = new Map();
      for (const name of p.members) app.members.set(name, (app.members.get(name) || 0) + 1);
      app.memberCount = typeof p.count === 'number' ? p.count : memberTotal();
    } else if (p.event === 'join' || p.event === 'leave') {
      const n = app.members.get(p.name) || 0;
      if (p.event === 'join') app.members.set(p.name, n + 1);
      else if (n <= 1) app.members.delete(p.name);
      else app.members.set(p.name, n - 1);
      if (typeof p.count === 'number') app.memberCount = p.count;
      // Our incremental view drifted (e.g. an event raced the snapshot): resync.
      if (typeof p.count === 'number' && memberTotal() !== p.count) scheduleResync();
    }
    renderMembers();
  }

  function scheduleResync() {
    clearTimeout(app.resyncTimer);
    app.resyncTimer = setTimeout(() => {
      const t = app.transport;
      if (t && typeof t.presence === 'function' && app.room) t.presence(app.room).catch(() => {});
    }, 200);
  }

  function updateUrl() {
    const url = new URL(location.href);
    url.searchParams.set('name', app.nick);
    url.searchParams.set('room', app.room);
    url.searchParams.set('protocol', app.protocol);
    history.replaceState(null, '', url);
  }

  function join() {
    const nick = el.nick.value.trim() || randomNick();
    const room = el.room.value.trim() || 'lobby';
    const protocol = el.protocol.value || 'websocket';
    el.nick.value = nick;
    el.room.value = room;

    const needNewTransport = !app.transport || nick !== app.nick || protocol !== app.protocol;
    const oldRoom = app.room;
    if (!needNewTransport && room === oldRoom) return;

    app.nick = nick;
    app.room = room;
    app.protocol = protocol;
    app.seen = new Set();
    app.members = new Map();
    app.memberCount = 0;
    el.messages.replaceChildren();
    el.currentRoom.textContent = room;
    renderMembers();
    updateUrl();
    document.title = `${room} · Switchboard chat`;

    if (needNewTransport) {
      if (app.transport) app.transport.close();
      const factory = transports.get(protocol);
      const t = factory.create({ name: nick, token: new URLSearchParams(location.search).get('token') });
      app.transport = t;
      app.presenceNote = t.presenceUnavailable || null;
      renderMembers();
      // Events of a replaced transport are ignored.
      t.onStatus((s) => { if (app.transport === t) setStatus(s); });
      t.onMessage((m) => { if (app.transport === t) renderMessage(m); });
      t.onPresence((p) => { if (app.transport === t) handlePresence(p); });
      if (t.onNotice) t.onNotice((text) => { if (app.transport === t) systemLine(text); });
      t.subscribe(room, { since: 0 }).catch((err) => systemLine(`join failed: ${err.message}`));
      t.connect();
    } else {
      app.transport.unsubscribe(oldRoom).catch(() => {});
      app.transport.subscribe(room, { since: 0 }).catch((err) => systemLine(`join failed: ${err.message}`));
    }
  }

  async function send() {
    const text = el.message.value;
    if (!text.trim() || !app.transport) return;
    el.message.value = '';
    try {
      await app.transport.publish(app.room, text);
    } catch (err) {
      el.message.value = el.message.value || text; // give the text back
      systemLine(`not sent: ${err.message}`);
    }
  }

  function init() {
    const params = new URLSearchParams(location.search);
    el.nick.value = params.get('name') || localStorage.getItem('switchboard.nick') || randomNick();
    el.room.value = params.get('room') || 'lobby';
    const wanted = params.get('protocol');
    if (wanted && transports.has(wanted)) el.protocol.value = wanted;

    el.joinForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      try { localStorage.setItem('switchboard.nick', el.nick.value.trim()); } catch { /* private mode */ }
      join();
    });
    el.protocol.addEventListener('change', () => join());
    el.sendForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      send();
    });
    setStatus({ state: 'idle' });
    join();
  }

  window.Switchboard = { registerTransport, transports, WebSocketEnvelopeTransport, Backoff, Emitter, app };
  // Deferred scripts after this one (other protocols' transports) run before
  // DOMContentLoaded: start once they have registered.
  if (document.readyState === 'complete') init();
  else document.addEventListener('DOMContentLoaded', init);
})();
