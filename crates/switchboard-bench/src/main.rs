//! `switchboard-bench`: load generator for WebSocket servers (echo, fan-out,
//! idle memory) and the `suite` that measures Switchboard against peer servers
//! on the same machine in the same run. The client runs on a tokio
//! current-thread runtime (it is meant to be pinned to one core) and frames
//! with Switchboard's own sans-IO core in client role.

mod cluster;
mod echo;
mod fanout;
mod idle;
mod plot;
mod sio;
mod slow;
mod sockdiag;
mod sockjs;
mod stalled;
mod stats;
mod stomp;
mod stomp_queue;
mod suite;
mod util;
mod watch;
mod ws;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "switchboard-bench",
    version,
    about = "Load generator for WebSocket servers, with peers to compare against"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
// parsed once
#[allow(clippy::large_enum_variant)]
enum Cmd {
    /// Pipelined echo: messages/s and round-trip latency
    Echo {
        #[command(flatten)]
        args: echo::EchoArgs,
        /// print the report as one JSON line
        #[arg(long)]
        json: bool,
    },
    /// One publisher, many subscribers: deliveries/s, delivery latency, losses
    Fanout {
        #[command(flatten)]
        args: fanout::FanoutArgs,
        #[arg(long)]
        json: bool,
    },
    /// Many idle connections: server memory per connection
    Idle {
        #[command(flatten)]
        args: idle::IdleArgs,
        #[arg(long)]
        json: bool,
    },
    /// Socket.IO echo: acked `echo` events in flight (--url ws://HOST/socket.io/)
    SioEcho {
        #[command(flatten)]
        args: echo::EchoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Socket.IO fan-out: subscribers `join` a room, one socket sends `broadcast`
    /// (--sub-url and --pub-url ws://HOST/socket.io/)
    SioFanout {
        #[command(flatten)]
        args: fanout::FanoutArgs,
        /// subscribe to this hub topic instead of joining the room (the
        /// `subscribe`, `publish` and `message` events of `switchboard serve`)
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Socket.IO idle: many sockets connected to `/`, server memory per connection
    /// (--url ws://HOST/socket.io/)
    SioIdle {
        #[command(flatten)]
        args: idle::IdleArgs,
        #[arg(long)]
        json: bool,
    },
    /// SockJS echo over the `websocket` transport (--url ws://HOST/bench, the service prefix)
    SockjsEcho {
        #[command(flatten)]
        args: echo::EchoArgs,
        #[arg(long)]
        json: bool,
    },
    /// SockJS fan-out: subscribers send `join` (on --transport), a `websocket`
    /// session sends `pub:<payload>` (--sub-url and --pub-url ws://HOST/bench)
    SockjsFanout {
        #[command(flatten)]
        args: fanout::FanoutArgs,
        /// the subscribers' transport
        #[arg(long, value_enum, default_value = "websocket")]
        transport: fanout::SockJsTransport,
        #[arg(long)]
        json: bool,
    },
    /// STOMP over WebSocket fan-out: subscribers SUBSCRIBE to --destination, one
    /// connection SENDs to it (--sub-url and --pub-url ws://HOST/ws, the STOMP endpoint)
    StompFanout {
        #[command(flatten)]
        args: fanout::FanoutArgs,
        #[command(flatten)]
        stomp: stomp::StompOpts,
        /// the topic
        #[arg(long, default_value = "/topic/bench")]
        destination: String,
        #[arg(long)]
        json: bool,
    },
    /// STOMP over WebSocket queue: producers SEND to a /queue/, consumers ACK every
    /// message (client-individual or client); msgs/s, latency, exactly-once check
    StompQueue {
        #[command(flatten)]
        args: stomp_queue::QueueArgs,
        #[arg(long)]
        json: bool,
    },
    /// Every scenario against every server, pinned, repeated; markdown tables of medians and ratios
    Suite {
        #[command(flatten)]
        args: suite::SuiteArgs,
    },
    /// SVG charts from a suite's raw reports: latency percentiles and throughput over the window
    Plot {
        #[command(flatten)]
        args: plot::PlotArgs,
    },
}

fn main() {
    util::init_clock();
    let cli = Cli::parse();
    let (report, json) = match cli.cmd {
        Cmd::Echo { args, json } => (echo::run(args), json),
        Cmd::Fanout { args, json } => (fanout::run(args), json),
        Cmd::Idle { args, json } => (idle::run(args), json),
        Cmd::SioEcho { args, json } => (echo::run_sio(args), json),
        Cmd::SioFanout { args, topic, json } => (fanout::run_sio(args, topic), json),
        Cmd::SioIdle { args, json } => (idle::run_sio(args), json),
        Cmd::SockjsEcho { args, json } => (echo::run_sockjs(args), json),
        Cmd::SockjsFanout {
            args,
            transport,
            json,
        } => (fanout::run_sockjs(args, transport), json),
        Cmd::StompFanout {
            args,
            stomp,
            destination,
            json,
        } => (fanout::run_stomp(args, stomp, destination), json),
        Cmd::StompQueue { args, json } => (stomp_queue::run(args), json),
        Cmd::Suite { args } => {
            if let Err(e) = suite::run(args) {
                eprintln!("switchboard-bench: {e}");
                std::process::exit(1);
            }
            return;
        }
        Cmd::Plot { args } => {
            if let Err(e) = plot::run(args) {
                eprintln!("switchboard-bench: {e}");
                std::process::exit(1);
            }
            return;
        }
    };
    match report {
        Ok(r) if json => println!("{}", serde_json::to_string(&r).unwrap()),
        Ok(r) => r.print_human(),
        Err(e) => {
            eprintln!("switchboard-bench: {e}");
            std::process::exit(1);
        }
    }
}
