//! Durable queues: a broker on a `RedbStore` in a temporary directory,
//! dropped and re-created on the same directory (a restart). Driven
//! through `StompClient` directly, without sockets.

use std::path::{Path, PathBuf};
use std::task::{Context, Waker};
use std::time::Instant;

use switchboard_hub::{Hub, HubConfig};
use switchboard_stomp::{Broker, MemoryStore, QueueStore, RedbStore, StompClient, StompConfig};

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("switchboard-stomp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn broker(dir: &Path) -> Broker {
    let store = RedbStore::open(dir).expect("open store");
    Broker::with_store(
        Hub::new(HubConfig::default()),
        StompConfig::default(),
        store,
    )
    .expect("load store")
}

/// A connected client (STOMP 1.2).
fn connect(broker: &Broker) -> StompClient {
    let mut c = StompClient::new(broker, Instant::now());
    c.receive(Instant::now(), b"CONNECT\naccept-version:1.2\nhost:/\n\n\0");
    let out = output(&mut c);
    assert!(out.starts_with("CONNECTED\n"), "{out}");
    c
}

fn frame(c: &mut StompClient, bytes: &str) {
    c.receive(Instant::now(), bytes.as_bytes());
}

/// Everything the client has to send, as text.
fn output(c: &mut StompClient) -> String {
    let mut cx = Context::from_waker(Waker::noop());
    c.poll_deliveries(&mut cx);
    let mut out = Vec::new();
    c.take_output(Instant::now(), &mut out);
    String::from_utf8(out.concat()).unwrap()
}

/// The MESSAGE frames in `out`: (body, redelivered, ack id).
fn messages(out: &str) -> Vec<(String, bool, String)> {
    out.split('\0')
        .filter(|f| f.trim_start_matches('\n').starts_with("MESSAGE\n"))
        .map(|f| {
            let (head, body) = f.split_once("\n\n").unwrap();
            let ack = head
                .lines()
                .find_map(|l| l.strip_prefix("ack:"))
                .unwrap_or("")
                .to_owned();
            (
                body.to_owned(),
                head.lines().any(|l| l == "redelivered:true"),
                ack,
            )
        })
        .collect()
}

fn send(c: &mut StompClient, queue: &str, body: &str) {
    frame(
        c,
        &format!("SEND\ndestination:/queue/{queue}\ncontent-type:text/plain\n\n{body}\0"),
    );
}

#[test]
fn messages_without_a_consumer_survive_a_restart_in_order_with_their_headers() {
    let dir = TempDir::new("survive");
    {
        let b = broker(dir.path());
        let mut c = connect(&b);
        for i in 1..=3 {
            send(&mut c, "jobs", &format!("job {i}"));
        }
        send(&mut c, "other", "x");
        frame(
            &mut c,
            "SEND\ndestination:/queue/jobs\nreceipt:r1\n\nlast\0",
        );
        assert!(output(&mut c).contains("RECEIPT\nreceipt-id:r1\n"));
        assert_eq!(b.queue_len("jobs"), 4);
    }
    let b = broker(dir.path());
    assert!(b.is_durable());
    assert_eq!(b.queue_len("jobs"), 4);
    assert_eq!(b.queue_len("other"), 1);
    let mut c = connect(&b);
    frame(&mut c, "SUBSCRIBE\nid:s\ndestination:/queue/jobs\n\n\0");
    let out = output(&mut c);
    let got = messages(&out);
    let got: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(got, ["job 1", "job 2", "job 3", "last"]);
    assert!(out.contains("content-type:text/plain\n"), "{out}");
    assert!(out.contains("destination:/queue/jobs\n"), "{out}");
    drop(c);
    drop(b);

    // `auto` deliveries were deleted when written; `other` is still there.
    let b = broker(dir.path());
    assert_eq!(b.queue_len("jobs"), 0);
    assert_eq!(b.queue_len("other"), 1);
}

#[test]
fn acked_messages_are_gone_and_unacked_ones_come_back_redelivered() {
    let dir = TempDir::new("acks");
    {
        let b = broker(dir.path());
        let mut c = connect(&b);
        for i in 1..=4 {
            send(&mut c, "q", &format!("m{i}"));
        }
        frame(
            &mut c,
            "SUBSCRIBE\nid:s\ndestination:/queue/q\nack:client-individual\n\n\0",
        );
        let got = messages(&output(&mut c));
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|m| !m.1));
        // m1 and m3 acknowledged; m2 and m4 delivered, not acknowledged.
        frame(&mut c, &format!("ACK\nid:{}\n\n\0", got[0].2));
        frame(&mut c, &format!("ACK\nid:{}\nreceipt:a\n\n\0", got[2].2));
        assert!(output(&mut c).contains("RECEIPT\nreceipt-id:a\n"));
        // The connection ends unacknowledged: m2 and m4 go back to the
        // queue in memory and stay in the store.
        drop(c);
    }
    let b = broker(dir.path());
    assert_eq!(b.queue_len("q"), 2);
    let mut c = connect(&b);
    frame(
        &mut c,
        "SUBSCRIBE\nid:s\ndestination:/queue/q\nack:client\n\n\0",
    );
    let got = messages(&output(&mut c));
    let bodies: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(bodies, ["m2", "m4"]);
    assert!(got.iter().all(|m| m.1), "redelivered:true after a restart");
    // A cumulative ACK of the last one settles both.
    frame(&mut c, &format!("ACK\nid:{}\n\n\0", got[1].2));
    drop(c);
    drop(b);
    assert_eq!(broker(dir.path()).queue_len("q"), 0);
}

#[test]
fn nacked_and_disconnected_messages_stay_stored() {
    let dir = TempDir::new("nack");
    {
        let b = broker(dir.path());
        let mut c = connect(&b);
        send(&mut c, "q", "a");
        send(&mut c, "q", "b");
        frame(
            &mut c,
            "SUBSCRIBE\nid:s\ndestination:/queue/q\nack:client-individual\n\n\0",
        );
        let got = messages(&output(&mut c));
        frame(&mut c, &format!("NACK\nid:{}\n\n\0", got[0].2));
        frame(&mut c, "DISCONNECT\n\n\0");
        drop(c);
        assert_eq!(b.queue_len("q"), 2);
    }
    let b = broker(dir.path());
    assert_eq!(b.queue_len("q"), 2);
}

#[test]
fn only_committed_sends_are_stored() {
    let dir = TempDir::new("tx");
    {
        let b = broker(dir.path());
        let mut c = connect(&b);
        frame(&mut c, "BEGIN\ntransaction:t1\n\n\0");
        frame(
            &mut c,
            "SEND\ndestination:/queue/q\ntransaction:t1\n\ncommitted\0",
        );
        frame(&mut c, "BEGIN\ntransaction:t2\n\n\0");
        frame(
            &mut c,
            "SEND\ndestination:/queue/q\ntransaction:t2\n\naborted\0",
        );
        frame(&mut c, "BEGIN\ntransaction:t3\n\n\0");
        frame(
            &mut c,
            "SEND\ndestination:/queue/q\ntransaction:t3\n\nopen\0",
        );
        assert_eq!(b.queue_len("q"), 0, "nothing before COMMIT");
        frame(&mut c, "COMMIT\ntransaction:t1\nreceipt:c\n\n\0");
        frame(&mut c, "ABORT\ntransaction:t2\n\n\0");
        assert!(output(&mut c).contains("RECEIPT\nreceipt-id:c\n"));
        drop(c); // t3 never committed: aborted
    }
    let b = broker(dir.path());
    let mut c = connect(&b);
    frame(&mut c, "SUBSCRIBE\nid:s\ndestination:/queue/q\n\n\0");
    let got = messages(&output(&mut c));
    let bodies: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(bodies, ["committed"]);
}

#[test]
fn transactional_acks_delete_only_at_commit() {
    let dir = TempDir::new("txack");
    {
        let b = broker(dir.path());
        let mut c = connect(&b);
        send(&mut c, "q", "a");
        send(&mut c, "q", "b");
        frame(
            &mut c,
            "SUBSCRIBE\nid:s\ndestination:/queue/q\nack:client-individual\n\n\0",
        );
        let got = messages(&output(&mut c));
        frame(&mut c, "BEGIN\ntransaction:t\n\n\0");
        frame(
            &mut c,
            &format!("ACK\nid:{}\ntransaction:t\n\n\0", got[0].2),
        );
        frame(
            &mut c,
            &format!("ACK\nid:{}\ntransaction:t\n\n\0", got[1].2),
        );
        frame(&mut c, "COMMIT\ntransaction:t\n\n\0");
        send(&mut c, "q", "c");
        frame(&mut c, "BEGIN\ntransaction:u\n\n\0");
        let got = messages(&output(&mut c));
        frame(
            &mut c,
            &format!("ACK\nid:{}\ntransaction:u\n\n\0", got[0].2),
        );
        drop(c); // u never committed: aborted
    }
    let b = broker(dir.path());
    assert_eq!(b.queue_len("q"), 1, "only c, whose ACK was not committed");
}

#[test]
fn sequence_numbers_continue_after_a_restart() {
    let dir = TempDir::new("seq");
    {
        let b = broker(dir.path());
        b.send_to_queue("q", vec![], "old".into()).unwrap();
    }
    {
        let b = broker(dir.path());
        b.send_to_queue("q", vec![], "new".into()).unwrap();
    }
    let b = broker(dir.path());
    let mut c = connect(&b);
    frame(&mut c, "SUBSCRIBE\nid:s\ndestination:/queue/q\n\n\0");
    let got = messages(&output(&mut c));
    let bodies: Vec<(&str, bool)> = got.iter().map(|m| (m.0.as_str(), m.1)).collect();
    assert_eq!(bodies, [("old", true), ("new", true)]);
}

#[test]
fn the_bound_applies_and_refused_messages_are_not_stored() {
    let dir = TempDir::new("bound");
    {
        let store = RedbStore::open(dir.path()).unwrap();
        let config = StompConfig {
            max_queue_length: 2,
            ..StompConfig::default()
        };
        let b = Broker::with_store(Hub::new(HubConfig::default()), config, store).unwrap();
        b.send_to_queue("q", vec![], "1".into()).unwrap();
        b.send_to_queue("q", vec![], "2".into()).unwrap();
        assert!(b.send_to_queue("q", vec![], "3".into()).is_err());
    }
    let store = RedbStore::open(dir.path()).unwrap();
    let stored = store.load().unwrap();
    let bodies: Vec<&[u8]> = stored.iter().map(|m| &m.body[..]).collect();
    assert_eq!(bodies, [b"1", b"2"]);
}

#[test]
fn a_second_broker_cannot_open_the_same_directory() {
    let dir = TempDir::new("lock");
    let _first = RedbStore::open(dir.path()).unwrap();
    assert!(RedbStore::open(dir.path()).is_err());
}

#[test]
fn the_memory_store_is_the_plain_in_memory_broker() {
    let b = Broker::with_store(
        Hub::new(HubConfig::default()),
        StompConfig::default(),
        MemoryStore,
    )
    .unwrap();
    assert!(!b.is_durable());
    b.send_to_queue("q", vec![], "x".into()).unwrap();
    assert_eq!(b.queue_len("q"), 1);
}
