//! Measures single-core echo throughput of the protocol core (no IO):
//! batches of small masked client frames are fed to a server `Connection`
//! that echoes each message from the event callback, then output is taken
//! once per batch as a transport would do per read.
//!
//! `cargo run --release -p switchboard-websocket --example echo_throughput`

use std::time::Instant;

use switchboard_websocket::{Config, Connection, DeflateParams, Event, Role};

fn run(label: &str, deflate: bool, payload: &str, batch: usize, total: usize) {
    let cfg = Config {
        deflate: deflate.then(DeflateParams::default),
        ..Config::default()
    };
    let mut client = Connection::new(Role::Client, cfg.clone());
    for _ in 0..batch {
        client.writer().send_text(payload);
    }
    let mut wire = Vec::new();
    client.writer().take_output(&mut wire);
    let wire: Vec<u8> = wire.concat();

    let mut server = Connection::new(Role::Server, cfg);
    let mut buf = wire.clone();
    let mut out = Vec::new();
    let mut echoed = 0usize;
    let mut bytes_out = 0usize;
    let start = Instant::now();
    let rounds = total / batch;
    for _ in 0..rounds {
        buf.copy_from_slice(&wire); // the "read" (restores masked bytes)
        server
            .receive(&mut buf, |e, w| {
                if let Event::Text(t) = e {
                    w.send_text(t);
                    echoed += 1;
                }
            })
            .unwrap();
        server.writer().take_output(&mut out);
        bytes_out += out.iter().map(|b| b.len()).sum::<usize>();
        out.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<28} {:>6.2} M echoes/s  ({echoed} echoes, {:.1} MB out, {secs:.2}s)",
        echoed as f64 / secs / 1e6,
        bytes_out as f64 / 1e6
    );
}

fn main() {
    run("32 B text, batch 64", false, &"x".repeat(32), 64, 4_000_000);
    run("32 B text, batch 1", false, &"x".repeat(32), 1, 2_000_000);
    run(
        "1 KiB text, batch 16",
        false,
        &"y".repeat(1024),
        16,
        1_000_000,
    );
    run(
        "32 B text, deflate, batch 64",
        true,
        &"hello world 1234".repeat(2),
        64,
        200_000,
    );
}
