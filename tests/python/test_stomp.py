"""The STOMP broker of the `switchboard` binary against the real `stomp.py`
(PyPI), over plain TCP and over WebSocket (`/stomp`): ack modes, NACK and
redelivery, transactions, receipts, competing consumers on a queue, messages
that wait for a consumer, credentials, and an error for a forbidden frame;
durable queues (`[stomp] data_dir`) across a restart of the server; queues
shared by two nodes on one redis-server (`[redis]`).

Run: SWITCHBOARD_BIN=target/release/switchboard python3 -m unittest -v tests/python/test_stomp.py
(with stomp.py and websocket-client installed, see requirements.txt).
"""

import os
import queue
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import stomp

BIN = os.environ.get("SWITCHBOARD_BIN")
TIMEOUT = 5.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`switchboard serve` on free ports, STOMP over TCP on its own port;
    with `data_dir`, durable queues kept there."""

    def __init__(self, data_dir=None, extra_env=None):
        self.http_port = free_port()
        self.stomp_port = free_port()
        env = dict(os.environ)
        if data_dir is not None:
            env["SWITCHBOARD_STOMP__DATA_DIR"] = str(data_dir)
        env["SWITCHBOARD_STOMP__TCP_LISTEN"] = f"127.0.0.1:{self.stomp_port}"
        env["SWITCHBOARD_STOMP__USERS"] = '[{login = "guest", passcode = "guest"}]'
        env["SWITCHBOARD_STOMP__ALLOW_ANONYMOUS"] = "false"
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.http_port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1):
                    pass
                socket.create_connection(("127.0.0.1", self.stomp_port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"server did not start: {err[-2000:]}")
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr and not self.proc.stderr.closed:
            self.proc.stderr.close()


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.errors = queue.Queue()
        self.receipts = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def next(self, timeout=TIMEOUT):
        return self.messages.get(timeout=timeout)

    def none(self, wait=0.3):
        try:
            frame = self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected MESSAGE {frame.headers} {frame.body!r}")


server = None


def setUpModule():
    global server
    if not BIN:
        raise unittest.SkipTest("SWITCHBOARD_BIN is not set")
    server = Server()


def tearDownModule():
    if server:
        server.stop()


class StompTests:
    """Run over TCP and over WebSocket by the subclasses below."""

    def connection(self, auto_decode=True):
        raise NotImplementedError

    def client(self, login="guest", passcode="guest", auto_decode=True):
        conn = self.connection(auto_decode)
        listener = Listener()
        conn.set_listener("t", listener)
        conn.connect(login, passcode, wait=True)
        self.addCleanup(self.close_quietly, conn)
        return conn, listener

    @staticmethod
    def close_quietly(conn):
        # After an ERROR the server has closed the connection; the client may
        # not know yet.
        try:
            if conn.is_connected():
                conn.disconnect()
        except Exception:
            pass

    def subscribe(self, conn, listener, destination, **headers):
        """SUBSCRIBE and wait for its RECEIPT: the subscription is in place
        before anything is sent to it (no sleep to guess how long it takes)."""
        receipt = f"sub-{headers['id']}"
        conn.subscribe(destination, headers={"receipt": receipt}, **headers)
        self.assertEqual(listener.receipts.get(timeout=TIMEOUT), receipt)

    def dest(self, kind):
        return f"/{kind}/{self.id().rsplit('.', 1)[-1]}-{type(self).__name__}"

    def test_topic_every_subscriber_gets_every_message(self):
        topic = self.dest("topic")
        (a, la), (b, lb) = self.client(), self.client()
        self.subscribe(a, la, topic, id="s1", ack="auto")
        self.subscribe(b, lb, topic, id="s2", ack="auto")
        a.send(topic, "hello ✓", content_type="text/plain")
        for listener in (la, lb):
            frame = listener.next()
            self.assertEqual(frame.body, "hello ✓")
            self.assertEqual(frame.headers["destination"], topic)

    def test_queue_competing_consumers_round_robin(self):
        q = self.dest("queue")
        (a, la), (b, lb), (p, _) = self.client(), self.client(), self.client()
        self.subscribe(a, la, q, id="1", ack="auto")
        self.subscribe(b, lb, q, id="2", ack="auto")
        for i in range(10):
            p.send(q, f"m{i}")
        got = []
        for listener in (la, lb):
            for _ in range(5):
                got.append(listener.next().body)
        self.assertEqual(sorted(got), sorted(f"m{i}" for i in range(10)))
        la.none()
        lb.none()

    def test_messages_wait_for_a_consumer(self):
        q = self.dest("queue")
        p, _ = self.client()
        for i in range(3):
            p.send(q, f"early {i}")
        p.disconnect(receipt="bye")
        c, lc = self.client()
        c.subscribe(q, id="1", ack="auto")
        self.assertEqual([lc.next().body for _ in range(3)], [f"early {i}" for i in range(3)])

    def test_client_individual_ack_and_nack_redelivery(self):
        q = self.dest("queue")
        c, lc = self.client()
        p, _ = self.client()
        self.subscribe(c, lc, q, id="1", ack="client-individual")
        p.send(q, "first")
        p.send(q, "second")
        m1, m2 = lc.next(), lc.next()
        c.ack(m1.headers["ack"])
        c.nack(m2.headers["ack"])
        again = lc.next()
        self.assertEqual(again.body, "second")
        self.assertEqual(again.headers.get("redelivered"), "true")
        c.ack(again.headers["ack"])
        lc.none()

    def test_client_ack_is_cumulative(self):
        q = self.dest("queue")
        c, lc = self.client()
        p, _ = self.client()
        self.subscribe(c, lc, q, id="1", ack="client")
        for i in range(3):
            p.send(q, f"m{i}")
        frames = [lc.next() for _ in range(3)]
        c.ack(frames[-1].headers["ack"])
        c.disconnect(receipt="done")
        # Everything was acknowledged: a new consumer gets nothing again.
        d, ld = self.client()
        d.subscribe(q, id="1", ack="auto")
        ld.none()

    def test_unacked_messages_go_to_the_next_consumer(self):
        q = self.dest("queue")
        c, lc = self.client()
        p, _ = self.client()
        self.subscribe(c, lc, q, id="1", ack="client-individual")
        p.send(q, "keep me")
        self.assertEqual(lc.next().body, "keep me")
        c.disconnect()
        d, ld = self.client()
        d.subscribe(q, id="1", ack="auto")
        frame = ld.next()
        self.assertEqual(frame.body, "keep me")
        self.assertEqual(frame.headers.get("redelivered"), "true")

    def test_transactions_commit_and_abort(self):
        q = self.dest("queue")
        c, lc = self.client()
        p, _ = self.client()
        self.subscribe(c, lc, q, id="1", ack="auto")
        tx = p.begin()
        p.send(q, "in tx", transaction=tx)
        lc.none()
        p.commit(tx)
        self.assertEqual(lc.next().body, "in tx")
        tx = p.begin()
        p.send(q, "aborted", transaction=tx)
        p.abort(tx)
        p.send(q, "after")
        self.assertEqual(lc.next().body, "after")
        lc.none()

    def test_receipts(self):
        q = self.dest("queue")
        c, lc = self.client()
        c.send(q, "x", headers={"receipt": "r-1"})
        self.assertEqual(lc.receipts.get(timeout=TIMEOUT), "r-1")
        c.subscribe(q, id="9", ack="auto", headers={"receipt": "r-2"})
        self.assertEqual(lc.receipts.get(timeout=TIMEOUT), "r-2")
        self.assertEqual(lc.next().body, "x")

    def test_binary_body_intact(self):
        q = self.dest("queue")
        c, lc = self.client(auto_decode=False)
        self.subscribe(c, lc, q, id="1", ack="auto")
        body = bytes(range(256)) * 4
        c.send(q, body, content_type="application/octet-stream")
        frame = lc.next()
        self.assertEqual(frame.body, body)
        self.assertEqual(frame.headers["content-length"], str(len(body)))

    def test_bad_credentials_are_an_error(self):
        conn = self.connection()
        listener = Listener()
        conn.set_listener("t", listener)
        try:
            conn.connect("guest", "wrong", wait=False)
        except Exception:
            pass
        frame = listener.errors.get(timeout=TIMEOUT)
        self.assertIn("credentials", frame.headers.get("message", ""))

    def test_unknown_destination_is_an_error(self):
        c, lc = self.client()
        c.send("/elsewhere/x", "nope")
        frame = lc.errors.get(timeout=TIMEOUT)
        self.assertIn("destination", frame.headers.get("message", ""))


def start_server(data_dir):
    """A second server (besides the module's), on `data_dir`; stopped at
    the end of the test unless stopped before."""
    return Server(data_dir=data_dir)


class DurableQueues(unittest.TestCase):
    """`SWITCHBOARD_STOMP__DATA_DIR`: queue messages survive a restart."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="switchboard-stomp-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start(self):
        srv = start_server(self.dir)
        self.addCleanup(srv.stop)
        return srv

    def client(self, srv):
        conn = stomp.Connection12([("127.0.0.1", srv.stomp_port)], heartbeats=(0, 0))
        listener = Listener()
        conn.set_listener("t", listener)
        conn.connect("guest", "guest", wait=True)
        self.addCleanup(StompTests.close_quietly, conn)
        return conn, listener

    def test_unacknowledged_messages_survive_a_restart(self):
        q = "/queue/durable-jobs"
        srv = self.start()
        p, lp = self.client(srv)
        sent = [f"job {i}" for i in range(5)]
        for i, body in enumerate(sent):
            p.send(q, body, content_type="text/plain", headers={"job-id": str(i)}, receipt=f"r{i}")
        # A RECEIPT means the message is on disk.
        self.assertEqual(sorted(lp.receipts.get(timeout=TIMEOUT) for _ in sent), sorted(f"r{i}" for i in range(5)))
        srv.stop()  # SIGTERM

        srv = self.start()
        c, lc = self.client(srv)
        c.subscribe(q, id="1", ack="client-individual")
        got = [lc.next() for _ in sent]
        self.assertEqual([f.body for f in got], sent)
        self.assertEqual([f.headers["job-id"] for f in got], [str(i) for i in range(5)])
        self.assertTrue(all(f.headers.get("redelivered") == "true" for f in got))
        lc.none()
        # Acknowledge the first three; the other two stay stored.
        for f in got[:3]:
            c.ack(f.headers["ack"])
        c.disconnect(receipt="bye")
        srv.stop()

        srv = self.start()
        c, lc = self.client(srv)
        c.subscribe(q, id="1", ack="auto")
        self.assertEqual([lc.next().body for _ in range(2)], sent[3:])
        lc.none()
        c.disconnect(receipt="bye")
        srv.stop()

        # `auto` deliveries were deleted once written: nothing comes back.
        srv = self.start()
        c, lc = self.client(srv)
        c.subscribe(q, id="1", ack="auto")
        lc.none(wait=0.5)


class RedisServer:
    """A private `redis-server` (no persistence) on a free port."""

    def __init__(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise unittest.SkipTest("redis-server is not installed")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(7) == b"+PONG\r\n":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ClusteredQueues(unittest.TestCase):
    """Two `switchboard serve` nodes on one redis-server (`[redis]`):
    `/queue/` destinations are shared, each message consumed once across
    the nodes; unacknowledged messages of a consumer that leaves, or of a
    node killed with SIGKILL, are redelivered on the other node."""

    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        env = {
            "SWITCHBOARD_REDIS__URL": self.redis.url,
            "SWITCHBOARD_REDIS__PREFIX": "pytest",
            "SWITCHBOARD_STOMP__QUEUE_RECLAIM_MS": "1000",
        }
        self.nodes = [Server(extra_env=env) for _ in range(2)]
        for n in self.nodes:
            self.addCleanup(n.stop)

    def client(self, node):
        conn = stomp.Connection12([("127.0.0.1", node.stomp_port)], heartbeats=(0, 0))
        listener = Listener()
        conn.set_listener("t", listener)
        conn.connect("guest", "guest", wait=True)
        self.addCleanup(StompTests.close_quietly, conn)
        return conn, listener

    def subscribe(self, conn, listener, q, ack):
        conn.subscribe(q, id="1", ack=ack, headers={"receipt": "sub"})
        self.assertEqual(listener.receipts.get(timeout=TIMEOUT), "sub")

    def test_each_message_is_consumed_once_across_the_nodes(self):
        q = "/queue/py-cluster-jobs"
        consumers = [self.client(n) for n in self.nodes]
        for c, lc in consumers:
            self.subscribe(c, lc, q, "client-individual")
        time.sleep(0.3)  # both nodes' readers are waiting on the stream
        p, lp = self.client(self.nodes[0])
        sent = [f"job {i}" for i in range(40)]
        for i, body in enumerate(sent):
            p.send(q, body, content_type="text/plain", receipt=f"r{i}")
        # A RECEIPT means Redis stored the message.
        self.assertEqual(sorted(lp.receipts.get(timeout=TIMEOUT) for _ in sent), sorted(f"r{i}" for i in range(40)))
        got = [[], []]
        deadline = time.time() + 10
        while len(got[0]) + len(got[1]) < len(sent) and time.time() < deadline:
            for i, (c, lc) in enumerate(consumers):
                try:
                    f = lc.messages.get(timeout=0.05)
                except queue.Empty:
                    continue
                c.ack(f.headers["ack"])
                got[i].append(f.body)
        self.assertEqual(sorted(got[0] + got[1]), sorted(sent))
        for _, lc in consumers:
            lc.none()

    def test_unacknowledged_messages_go_to_the_other_node(self):
        q = "/queue/py-cluster-left"
        a, la = self.client(self.nodes[0])
        self.subscribe(a, la, q, "client")
        p, lp = self.client(self.nodes[1])
        p.send(q, "left behind", receipt="r")
        self.assertEqual(lp.receipts.get(timeout=TIMEOUT), "r")
        self.assertEqual(la.next().body, "left behind")
        b, lb = self.client(self.nodes[1])
        self.subscribe(b, lb, q, "client")
        lb.none()
        a.disconnect()  # without acknowledging
        f = lb.next()
        self.assertEqual((f.body, f.headers.get("redelivered")), ("left behind", "true"))
        b.ack(f.headers["ack"])
        lb.none()

    def test_a_killed_nodes_messages_are_redelivered_on_the_other(self):
        q = "/queue/py-cluster-killed"
        a, la = self.client(self.nodes[0])
        self.subscribe(a, la, q, "client-individual")
        p, lp = self.client(self.nodes[1])
        for i in range(3):
            p.send(q, f"m{i}", receipt=f"r{i}")
        for _ in range(3):
            lp.receipts.get(timeout=TIMEOUT)
        self.assertEqual(sorted(la.next().body for _ in range(3)), ["m0", "m1", "m2"])
        b, lb = self.client(self.nodes[1])
        self.subscribe(b, lb, q, "client-individual")
        self.nodes[0].proc.kill()  # SIGKILL: nothing is given back
        # After the reclaim timeout (1 s here) the other node takes them over.
        got = [lb.next(timeout=TIMEOUT) for _ in range(3)]
        self.assertEqual(sorted(f.body for f in got), ["m0", "m1", "m2"])
        self.assertTrue(all(f.headers.get("redelivered") == "true" for f in got))


class Permissions(unittest.TestCase):
    """`[[permissions]]` rules for `/queue` (and `/topic`) destinations, some
    for named users only: a refused SEND or SUBSCRIBE is an ERROR frame."""

    @classmethod
    def setUpClass(cls):
        rules = (
            '[{queue = "orders", users = ["shop"], subscribe = false},'
            ' {queue = "orders", publish = false},'
            ' {topic = "alerts", users = ["shop"]},'
            ' {topic = "alerts", publish = false}]'
        )
        cls.srv = Server(
            extra_env={
                "SWITCHBOARD_STOMP__USERS": '[{login = "guest", passcode = "guest"}, {login = "shop", passcode = "s3cret"}]',
                "SWITCHBOARD_PERMISSIONS": rules,
            }
        )

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def client(self, login):
        conn = stomp.Connection12([("127.0.0.1", self.srv.stomp_port)], heartbeats=(0, 0))
        listener = Listener()
        conn.set_listener("t", listener)
        conn.connect(login, {"guest": "guest", "shop": "s3cret"}[login], wait=True)
        self.addCleanup(StompTests.close_quietly, conn)
        return conn, listener

    def test_queue_rules_per_user(self):
        worker, lw = self.client("guest")
        worker.subscribe("/queue/orders", id="1", ack="auto", receipt="sub")
        self.assertEqual(lw.receipts.get(timeout=TIMEOUT), "sub")
        shop, ls = self.client("shop")
        shop.send("/queue/orders", "order 1", receipt="sent")
        self.assertEqual(ls.receipts.get(timeout=TIMEOUT), "sent")
        self.assertEqual(lw.next().body, "order 1")
        # The shop may not consume orders...
        shop.subscribe("/queue/orders", id="2", ack="auto")
        frame = ls.errors.get(timeout=TIMEOUT)
        self.assertIn("subscribing to /queue/orders not allowed", frame.headers.get("message", ""))
        # ...and the worker may not send them.
        worker.send("/queue/orders", "forged order")
        frame = lw.errors.get(timeout=TIMEOUT)
        self.assertIn("sending to /queue/orders not allowed", frame.headers.get("message", ""))
        # Other queues stay open to everyone.
        other, lo = self.client("guest")
        other.subscribe("/queue/jobs", id="1", ack="auto", receipt="s")
        self.assertEqual(lo.receipts.get(timeout=TIMEOUT), "s")
        other.send("/queue/jobs", "job", receipt="j")
        self.assertEqual(lo.next().body, "job")

    def test_topic_rules_per_user(self):
        reader, lr = self.client("guest")
        reader.subscribe("/topic/alerts", id="1", ack="auto", receipt="sub")
        self.assertEqual(lr.receipts.get(timeout=TIMEOUT), "sub")
        shop, ls = self.client("shop")
        shop.send("/topic/alerts", "fire", receipt="sent")
        self.assertEqual(ls.receipts.get(timeout=TIMEOUT), "sent")
        self.assertEqual(lr.next().body, "fire")
        reader.send("/topic/alerts", "false alarm")
        frame = lr.errors.get(timeout=TIMEOUT)
        self.assertIn("alerts", frame.headers.get("message", "") + frame.body)


class OverTcp(StompTests, unittest.TestCase):
    def connection(self, auto_decode=True):
        return stomp.Connection12([("127.0.0.1", server.stomp_port)], heartbeats=(0, 0), auto_decode=auto_decode)


class OverWebSocket(StompTests, unittest.TestCase):
    def connection(self, auto_decode=True):
        return stomp.WSStompConnection(
            [("127.0.0.1", server.http_port)],
            ws_path="/stomp",
            header={"Sec-WebSocket-Protocol": "v12.stomp"},
            heartbeats=(0, 0),
            auto_decode=auto_decode,
            # Bytes that are not UTF-8 must travel in binary WebSocket
            # messages (a text message with them is closed with 1007).
            binary_mode=not auto_decode,
        )


if __name__ == "__main__":
    unittest.main()
