//! `suite`: starts every server pinned to one core (`taskset -c 0`), runs every
//! scenario against it with the load generator pinned to the other core
//! (`taskset -c 1`, a fresh `switchboard-bench` process per run), repeats,
//! takes medians and prints markdown tables with Switchboard's ratio to each peer.
//! Every run gets a freshly started server on a fresh port.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::stats::Report;

#[derive(Clone, Debug, clap::Args)]
pub struct SuiteArgs {
    /// the switchboard binary (default: `switchboard` beside this executable)
    #[arg(long)]
    pub switchboard: Option<PathBuf>,
    /// directory of the peer binaries (default: this executable's directory)
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// the Node ws peer script (the Node socket.io peer is `peer-socketio.mjs` beside it)
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/node/peer-ws.mjs"))]
    pub node_peer: PathBuf,
    /// servers, comma-separated, run in this order: switchboard,tcp-echo,node-ws,tungstenite,
    /// tungstenite-send,fastwebsockets (WebSocket; the default: the TCP echo right after
    /// Switchboard, so that the ratio closest to 1× is taken from two runs seconds apart;
    /// tungstenite echoes with `forward`, tungstenite-send with a `send` per message) or sio-switchboard,sio-node,sio-socketioxide (Socket.IO;
    /// the default with --socketio; also sio-hub: `switchboard serve`, its fan-out through
    /// a hub topic instead of a room, no echo) or sockjs-switchboard,sockjs-node (SockJS; the
    /// default with --sockjs; also sockjs-switchboard-loop: the same app served by the
    /// `switchboard` binary's HTTP/1.1 loop) or stomp-switchboard,stomp-rabbitmq (STOMP; the default
    /// with --stomp)
    #[arg(long)]
    pub servers: Option<String>,
    /// scenarios, comma-separated: echo16,echo16-4k,echo1,fanout,fanout-light,idle (WebSocket; the
    /// default) or sio-echo16,sio-echo1,sio-fanout,sio-fanout-light,sio-idle (Socket.IO;
    /// the default with --socketio) or sockjs-echo,sockjs-fanout-ws,sockjs-fanout-xhr,
    /// sockjs-fanout-ws-light,sockjs-fanout-xhr-light (SockJS; the default with --sockjs)
    /// or stomp-fanout,stomp-fanout-light,stomp-queue (STOMP; the default with --stomp).
    /// A scenario runs only against the servers of its protocol.
    #[arg(long)]
    pub scenarios: Option<String>,
    /// the Socket.IO suite: Switchboard's Socket.IO server vs Node socket.io 4 and
    /// socketioxide (changes the defaults of --servers and --scenarios)
    #[arg(long)]
    pub socketio: bool,
    /// the SockJS suite: Switchboard's SockJS transport vs sockjs-node 0.3 (changes the
    /// defaults of --servers and --scenarios)
    #[arg(long, conflicts_with = "socketio")]
    pub sockjs: bool,
    /// the STOMP suite: Switchboard's STOMP broker (its Web-STOMP listener, `/ws`) vs
    /// RabbitMQ's Web-STOMP plugin, both started by the suite (changes the defaults of
    /// --servers and --scenarios)
    #[arg(long, conflicts_with_all = ["socketio", "sockjs"])]
    pub stomp: bool,
    /// the cluster suite: Switchboard nodes sharing one private redis-server (the Redis
    /// backplane) vs one node, WebSocket fan-out with the publisher on node 1 and the
    /// subscribers spread round-robin over the nodes; latency overall, same-node and
    /// cross-node. Topologies (--servers): single (1 node, no Redis: the reference),
    /// single-redis (1 node + Redis: the baseline of the ratios), multi-redis (--nodes
    /// nodes + Redis); scenarios: fanout, fanout-light
    #[arg(long, conflicts_with_all = ["socketio", "sockjs", "stomp"])]
    pub cluster: bool,
    /// the slow-client suite, Switchboard only: each protocol's fan-out (servers
    /// switchboard, sio-switchboard, sockjs-switchboard, stomp-switchboard; scenarios
    /// fanout-light, sio-fanout-light, sockjs-fanout-ws-light, sockjs-fanout-xhr-light,
    /// stomp-fanout-light) without and with --stalled subscribers that never read,
    /// alternating; the others' latency with ÷ without, losses, server peak RSS, and
    /// whether the stalled subscribers were dropped
    #[arg(long, conflicts_with_all = ["socketio", "sockjs", "stomp", "cluster"])]
    pub slow: bool,
    /// slow suite: stalled subscribers in the runs with them
    #[arg(long, default_value_t = 1)]
    pub stalled: usize,
    /// slow suite: fan-out payload bytes
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// cluster suite: the redis-server binary (started privately: own port and directory,
    /// no persistence, stopped at the end)
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// cluster suite: nodes of the multi-redis topology
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// cluster suite: a TOML file every node gets with `--config` (e.g. other `[redis]` or
    /// `[hub]` settings); the suite's own settings (listen, log, `[stomp] tcp_listen`,
    /// `[redis] url` and `prefix`) come as SWITCHBOARD_* variables, which override it.
    /// The no-Redis reference gets it only if it has no `[redis]` section
    #[arg(long)]
    pub node_config: Option<PathBuf>,
    /// cluster and slow suites: KEY=VALUE added to every node's (server's)
    /// environment, repeatable (e.g. SWITCHBOARD_HUB__HISTORY_SIZE=0); cluster:
    /// SWITCHBOARD_REDIS__* ones skip the no-Redis reference
    #[arg(long)]
    pub node_env: Vec<String>,
    /// RabbitMQ's start script (Debian's package: `apt-get install -y rabbitmq-server`);
    /// `rabbitmqctl` is taken from the same directory
    #[arg(long, default_value = "/usr/lib/rabbitmq/bin/rabbitmq-server")]
    pub rabbitmq_server: PathBuf,
    /// STOMP queue scenario: producer connections
    #[arg(long, default_value_t = 4)]
    pub queue_producers: usize,
    /// STOMP queue scenario: consumer connections
    #[arg(long, default_value_t = 4)]
    pub queue_consumers: usize,
    /// STOMP queue scenario: messages a producer may have sent and not yet seen consumed
    #[arg(long, default_value_t = 1000)]
    pub queue_window: u64,
    /// STOMP queue scenario: SUBSCRIBE `prefetch-count` (RabbitMQ; Switchboard ignores
    /// it: its fixed limit is 1,000 unacknowledged messages per subscription)
    #[arg(long, default_value_t = 1000)]
    pub queue_prefetch: u64,
    /// STOMP queue scenario: messages/s over all producers (0: as fast as the window allows)
    #[arg(long, default_value_t = 0)]
    pub queue_rate: u64,
    /// STOMP queue scenario: the consumers' ack mode
    #[arg(long, value_enum, default_value = "client-individual")]
    pub queue_ack: crate::stomp_queue::AckArg,
    /// subscribers of the SockJS xhr-streaming fan-out (default: --subscribers)
    #[arg(long)]
    pub xhr_subscribers: Option<usize>,
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[arg(long, default_value = "5s")]
    pub duration: String,
    #[arg(long, default_value = "1s")]
    pub warmup: String,
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    #[arg(long, default_value = "0")]
    pub server_cpu: String,
    #[arg(long, default_value = "1")]
    pub client_cpu: String,
    #[arg(long, default_value_t = 19_100)]
    pub base_port: u16,
    /// also write the markdown tables to this file
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// also write every run's raw report (JSON lines) to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// run nothing: render the tables from a --json-out file of an earlier run
    /// (give the same --servers/--scenarios/--reps/--duration options)
    #[arg(long)]
    pub render: Option<PathBuf>,
}

struct Server {
    name: &'static str,
    label: &'static str,
    argv: Vec<String>,
    echo: &'static str,
    sub: &'static str,
    publ: &'static str,
    tcp: bool,
    /// runs the echo scenarios only (the TCP echo; a peer's second echo)
    echo_only: bool,
    /// the protocol it serves (it runs that protocol's scenarios only)
    proto: Proto,
    /// Socket.IO fan-out through this hub topic (`sio-fanout --topic`)
    /// instead of the example apps' room; no echo scenarios
    topic: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    WebSocket,
    SocketIo,
    SockJs,
    Stomp,
}

impl SuiteArgs {
    fn servers(&self) -> &str {
        match &self.servers {
            Some(s) => s,
            None if self.socketio => "sio-switchboard,sio-node,sio-socketioxide",
            None if self.sockjs => "sockjs-switchboard,sockjs-node",
            None if self.stomp => "stomp-switchboard,stomp-rabbitmq",
            None if self.slow => crate::slow::SERVERS,
            None => "switchboard,tcp-echo,node-ws,tungstenite,tungstenite-send,fastwebsockets",
        }
    }
    fn scenarios(&self) -> &str {
        match &self.scenarios {
            Some(s) => s,
            None if self.socketio => "sio-echo16,sio-echo1,sio-fanout,sio-fanout-light,sio-idle",
            None if self.sockjs => {
                "sockjs-echo,sockjs-fanout-ws,sockjs-fanout-xhr,sockjs-fanout-ws-light,sockjs-fanout-xhr-light"
            }
            None if self.stomp => "stomp-fanout,stomp-fanout-light,stomp-queue",
            None if self.slow => crate::slow::SCENARIOS,
            None => "echo16,echo16-4k,echo1,fanout,fanout-light,idle",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Scen {
    Echo16,
    /// the same with 4 KiB messages
    Echo16Large,
    Echo1,
    Fanout,
    /// fan-out at a tenth of the rate: a load every server sustains
    FanoutLight,
    Idle,
    SioEcho16,
    SioEcho1,
    SioFanout,
    /// Socket.IO fan-out at a tenth of the rate
    SioFanoutLight,
    SioIdle,
    /// SockJS `websocket` echo, 16 in flight
    SockJsEcho,
    SockJsFanoutWs,
    SockJsFanoutXhr,
    /// the SockJS fan-outs at a tenth of the rate
    SockJsFanoutWsLight,
    SockJsFanoutXhrLight,
    /// STOMP topic fan-out (over WebSocket)
    StompFanout,
    /// the same at a tenth of the rate
    StompFanoutLight,
    /// STOMP queue, producers and acknowledging consumers
    StompQueue,
}

impl Scen {
    fn parse(s: &str) -> Result<Scen, String> {
        Ok(match s {
            "echo16" => Scen::Echo16,
            "echo16-4k" => Scen::Echo16Large,
            "echo1" => Scen::Echo1,
            "fanout" => Scen::Fanout,
            "fanout-light" => Scen::FanoutLight,
            "idle" => Scen::Idle,
            "sio-echo16" => Scen::SioEcho16,
            "sio-echo1" => Scen::SioEcho1,
            "sio-fanout" => Scen::SioFanout,
            "sio-fanout-light" => Scen::SioFanoutLight,
            "sio-idle" => Scen::SioIdle,
            "sockjs-echo" => Scen::SockJsEcho,
            "sockjs-fanout-ws" => Scen::SockJsFanoutWs,
            "sockjs-fanout-xhr" => Scen::SockJsFanoutXhr,
            "sockjs-fanout-ws-light" => Scen::SockJsFanoutWsLight,
            "sockjs-fanout-xhr-light" => Scen::SockJsFanoutXhrLight,
            "stomp-fanout" => Scen::StompFanout,
            "stomp-fanout-light" => Scen::StompFanoutLight,
            "stomp-queue" => Scen::StompQueue,
            _ => return Err(format!("unknown scenario {s}")),
        })
    }
    fn key(self) -> &'static str {
        match self {
            Scen::Echo16 => "echo16",
            Scen::Echo16Large => "echo16-4k",
            Scen::Echo1 => "echo1",
            Scen::Fanout => "fanout",
            Scen::FanoutLight => "fanout-light",
            Scen::Idle => "idle",
            Scen::SioEcho16 => "sio-echo16",
            Scen::SioEcho1 => "sio-echo1",
            Scen::SioFanout => "sio-fanout",
            Scen::SioFanoutLight => "sio-fanout-light",
            Scen::SioIdle => "sio-idle",
            Scen::SockJsEcho => "sockjs-echo",
            Scen::SockJsFanoutWs => "sockjs-fanout-ws",
            Scen::SockJsFanoutXhr => "sockjs-fanout-xhr",
            Scen::SockJsFanoutWsLight => "sockjs-fanout-ws-light",
            Scen::SockJsFanoutXhrLight => "sockjs-fanout-xhr-light",
            Scen::StompFanout => "stomp-fanout",
            Scen::StompFanoutLight => "stomp-fanout-light",
            Scen::StompQueue => "stomp-queue",
        }
    }
    fn proto(self) -> Proto {
        if self.is_sio() {
            Proto::SocketIo
        } else if self.key().starts_with("sockjs-") {
            Proto::SockJs
        } else if self.key().starts_with("stomp-") {
            Proto::Stomp
        } else {
            Proto::WebSocket
        }
    }
    fn is_sio(self) -> bool {
        matches!(
            self,
            Scen::SioEcho16
                | Scen::SioEcho1
                | Scen::SioFanout
                | Scen::SioFanoutLight
                | Scen::SioIdle
        )
    }
    /// the scenario's shape, for the tables
    fn is_fanout(self) -> bool {
        matches!(
            self,
            Scen::Fanout
                | Scen::FanoutLight
                | Scen::SioFanout
                | Scen::SioFanoutLight
                | Scen::SockJsFanoutWs
                | Scen::SockJsFanoutXhr
                | Scen::SockJsFanoutWsLight
                | Scen::SockJsFanoutXhrLight
                | Scen::StompFanout
                | Scen::StompFanoutLight
        )
    }
    fn is_idle(self) -> bool {
        matches!(self, Scen::Idle | Scen::SioIdle)
    }
}

pub fn run(a: SuiteArgs) -> Result<(), String> {
    if a.cluster {
        return crate::cluster::run(&a);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe_dir = exe.parent().unwrap().to_path_buf();
    let bin_dir = a.bin_dir.clone().unwrap_or_else(|| exe_dir.clone());
    let sb = a
        .switchboard
        .clone()
        .unwrap_or_else(|| exe_dir.join("switchboard"));
    let s = |p: PathBuf| p.to_string_lossy().into_owned();

    let mut servers = Vec::new();
    for name in a
        .servers()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        servers.push(match name {
            "switchboard" => Server {
                name: "switchboard",
                label: "Switchboard",
                argv: vec![s(sb.clone()), "serve".into(), "--listen".into()],
                echo: "/ws/echo",
                sub: "/ws/topic/bench",
                publ: "/ws/topic/bench",
                tcp: false,
                echo_only: false,
                proto: Proto::WebSocket,
                topic: None,
            },
            "node-ws" => {
                let dir = a.node_peer.parent().unwrap();
                if !dir.join("node_modules/ws").exists() {
                    eprintln!("suite: installing the Node peer's packages (npm ci)");
                    let st = Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                        .current_dir(dir)
                        .status()
                        .map_err(|e| format!("npm: {e}"))?;
                    if !st.success() {
                        return Err("npm ci failed for the Node peer".into());
                    }
                }
                Server {
                    name: "node-ws",
                    label: "Node ws",
                    argv: vec!["node".into(), s(a.node_peer.clone()), "--listen".into()],
                    echo: "/echo",
                    sub: "/fanout",
                    publ: "/publish",
                    tcp: false,
                    echo_only: false,
                    proto: Proto::WebSocket,
                    topic: None,
                }
            }
            "tungstenite" => Server {
                name: "tungstenite",
                label: "tokio-tungstenite",
                argv: vec![s(bin_dir.join("peer-tungstenite")), "--listen".into()],
                echo: "/echo",
                sub: "/fanout",
                publ: "/publish",
                tcp: false,
                echo_only: false,
                proto: Proto::WebSocket,
                topic: None,
            },
            "tungstenite-send" => Server {
                name: "tungstenite-send",
                label: "tokio-tungstenite, send per message",
                argv: vec![s(bin_dir.join("peer-tungstenite")), "--listen".into()],
                echo: "/echo-send",
                sub: "/fanout",
                publ: "/publish",
                tcp: false,
                echo_only: true,
                proto: Proto::WebSocket,
                topic: None,
            },
            "fastwebsockets" => Server {
                name: "fastwebsockets",
                label: "fastwebsockets",
                argv: vec![s(bin_dir.join("peer-fastwebsockets")), "--listen".into()],
                echo: "/echo",
                sub: "/fanout",
                publ: "/publish",
                tcp: false,
                echo_only: false,
                proto: Proto::WebSocket,
                topic: None,
            },
            "tcp-echo" => Server {
                name: "tcp-echo",
                label: "TCP echo (tokio)",
                argv: vec![s(bin_dir.join("peer-tcp-echo")), "--listen".into()],
                echo: "/",
                sub: "",
                publ: "",
                tcp: true,
                echo_only: true,
                proto: Proto::WebSocket,
                topic: None,
            },
            "sio-switchboard" => Server {
                name: "sio-switchboard",
                label: "Switchboard",
                argv: vec![s(bin_dir.join("sio-switchboard")), "--listen".into()],
                echo: "/socket.io/",
                sub: "/socket.io/",
                publ: "/socket.io/",
                tcp: false,
                echo_only: false,
                proto: Proto::SocketIo,
                topic: None,
            },
            "sio-hub" => Server {
                name: "sio-hub",
                label: "Switchboard hub topic",
                argv: vec![s(sb.clone()), "serve".into(), "--listen".into()],
                // idle only: the hub has no `echo` event
                echo: "/socket.io/",
                sub: "/socket.io/",
                publ: "/socket.io/",
                tcp: false,
                echo_only: false,
                proto: Proto::SocketIo,
                topic: Some("bench"),
            },
            "sio-node" => {
                let dir = a.node_peer.parent().unwrap();
                if !dir.join("node_modules/socket.io").exists() {
                    eprintln!("suite: installing the Node peers' packages (npm ci)");
                    let st = Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                        .current_dir(dir)
                        .status()
                        .map_err(|e| format!("npm: {e}"))?;
                    if !st.success() {
                        return Err("npm ci failed for the Node peers".into());
                    }
                }
                Server {
                    name: "sio-node",
                    label: "Node socket.io",
                    argv: vec![
                        "node".into(),
                        s(dir.join("peer-socketio.mjs")),
                        "--listen".into(),
                    ],
                    echo: "/socket.io/",
                    sub: "/socket.io/",
                    publ: "/socket.io/",
                    tcp: false,
                    echo_only: false,
                    proto: Proto::SocketIo,
                    topic: None,
                }
            }
            "sio-socketioxide" => Server {
                name: "sio-socketioxide",
                label: "socketioxide",
                argv: vec![s(bin_dir.join("peer-socketioxide")), "--listen".into()],
                echo: "/socket.io/",
                sub: "/socket.io/",
                publ: "/socket.io/",
                tcp: false,
                echo_only: false,
                proto: Proto::SocketIo,
                topic: None,
            },
            "sockjs-switchboard" => Server {
                name: "sockjs-switchboard",
                label: "Switchboard",
                argv: vec![s(bin_dir.join("sockjs-switchboard")), "--listen".into()],
                echo: "/bench",
                sub: "/bench",
                publ: "/bench",
                tcp: false,
                echo_only: false,
                proto: Proto::SockJs,
                topic: None,
            },
            "sockjs-switchboard-loop" => Server {
                name: "sockjs-switchboard-loop",
                label: "Switchboard (own HTTP loop)",
                argv: vec![
                    s(bin_dir.join("sockjs-switchboard")),
                    "--switchboard-loop".into(),
                    "--listen".into(),
                ],
                echo: "/bench",
                sub: "/bench",
                publ: "/bench",
                tcp: false,
                echo_only: false,
                proto: Proto::SockJs,
                topic: None,
            },
            "sockjs-node" => {
                let dir = a.node_peer.parent().unwrap();
                if !dir.join("node_modules/sockjs").exists() {
                    eprintln!("suite: installing the Node peers' packages (npm ci)");
                    let st = Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                        .current_dir(dir)
                        .status()
                        .map_err(|e| format!("npm: {e}"))?;
                    if !st.success() {
                        return Err("npm ci failed for the Node peers".into());
                    }
                }
                Server {
                    name: "sockjs-node",
                    label: "sockjs-node",
                    argv: vec![
                        "node".into(),
                        s(dir.join("peer-sockjs.mjs")),
                        "--listen".into(),
                    ],
                    echo: "/bench",
                    sub: "/bench",
                    publ: "/bench",
                    tcp: false,
                    echo_only: false,
                    proto: Proto::SockJs,
                    topic: None,
                }
            }
            "stomp-switchboard" => Server {
                name: "stomp-switchboard",
                label: "Switchboard",
                // started by `start_stomp` with a config file of its own
                argv: vec![s(sb.clone()), "serve".into(), "--config".into()],
                echo: "/ws",
                sub: "/ws",
                publ: "/ws",
                tcp: false,
                echo_only: false,
                proto: Proto::Stomp,
                topic: None,
            },
            "stomp-rabbitmq" => {
                let ctl = a.rabbitmq_server.with_file_name("rabbitmqctl");
                if !a.rabbitmq_server.exists() || !ctl.exists() {
                    return Err(format!(
                        "RabbitMQ not found ({}); install it with: apt-get install -y rabbitmq-server \
                         (or give --rabbitmq-server PATH)",
                        a.rabbitmq_server.display()
                    ));
                }
                Server {
                    name: "stomp-rabbitmq",
                    label: "RabbitMQ Web-STOMP",
                    argv: vec![s(a.rabbitmq_server.clone())],
                    echo: "/ws",
                    sub: "/ws",
                    publ: "/ws",
                    tcp: false,
                    echo_only: false,
                    proto: Proto::Stomp,
                    topic: None,
                }
            }
            other => return Err(format!("unknown server {other}")),
        });
    }
    let scens: Vec<Scen> = a
        .scenarios()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Scen::parse)
        .collect::<Result<_, _>>()?;

    if let Some(p) = &a.render {
        let results = read_results(
            p,
            (scens.len(), servers.len()),
            |srv, sc| {
                let si = scens.iter().position(|s| s.key() == sc)?;
                Some((si, servers.iter().position(|s| s.name == srv)?))
            },
            |r, _| r,
        )?;
        println!("{}", render(&a, &servers, &scens, &results, Duration::ZERO));
        return Ok(());
    }
    let server_env = crate::util::parse_env_pairs(&a.node_env)?;
    let mut json_out = match &a.json_out {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let log_dir = std::env::temp_dir().join("switchboard-bench-logs");
    let _ = std::fs::create_dir_all(&log_dir);
    let started = Instant::now();
    let mut port = a.base_port;
    // RabbitMQ's port mapper, started with the first RabbitMQ run, killed at the end
    let mut epmd: Option<Epmd> = None;
    // results[scenario][server] = reports
    let mut results: Vec<Vec<Vec<Report>>> = vec![vec![Vec::new(); servers.len()]; scens.len()];
    for rep in 0..a.reps {
        for (si, &sc) in scens.iter().enumerate() {
            for (vi, srv) in servers.iter().enumerate() {
                if srv.proto != sc.proto()
                    || (srv.echo_only && !matches!(sc, Scen::Echo16 | Scen::Echo16Large | Scen::Echo1))
                    || (srv.topic.is_some() && matches!(sc, Scen::SioEcho16 | Scen::SioEcho1))
                {
                    continue;
                }
                // slow suite: without and with the stalled subscribers, the
                // order alternating from one repetition to the next
                let variants = match (a.slow, rep % 2) {
                    (false, _) => vec![0],
                    (true, 0) => vec![0, a.stalled],
                    (true, _) => vec![a.stalled, 0],
                };
                for stalled in variants {
                    port = port.wrapping_add(1).max(1024);
                    let addr = format!("127.0.0.1:{port}");
                    let load_avg = crate::util::load_average().unwrap_or(f64::NAN);
                    let mut server = if srv.proto == Proto::Stomp {
                        start_stomp(srv, &addr, &a.server_cpu, &log_dir, &mut epmd, &server_env)?
                    } else {
                        Running::Plain(start_server(
                            srv,
                            &addr,
                            &a.server_cpu,
                            &log_dir,
                            &server_env,
                        )?)
                    };
                    let res: Result<Report, String> = (|| {
                        let ready_within = match server {
                            Running::Rabbit { .. } => Duration::from_secs(120),
                            _ => Duration::from_secs(15),
                        };
                        let child = server.child();
                        wait_ready(&addr, child, ready_within)?;
                        std::thread::sleep(Duration::from_millis(300));
                        let mut cmd = Command::new("taskset");
                        cmd.args(["-c", &a.client_cpu]).arg(&exe);
                        let url = |p: &str| format!("ws://{addr}{p}");
                        match sc {
                            Scen::Echo16 | Scen::Echo16Large | Scen::Echo1 => {
                                let in_flight = if sc == Scen::Echo1 { 1 } else { 16 };
                                let size = if sc == Scen::Echo16Large { 4096 } else { 32 };
                                echo_args(&mut cmd, "echo", &url(srv.echo), &a, in_flight, size);
                                if srv.tcp {
                                    cmd.arg("--raw-tcp");
                                }
                            }
                            Scen::Fanout | Scen::FanoutLight => {
                                let urls = (url(srv.sub), url(srv.publ));
                                let light = sc == Scen::FanoutLight;
                                fanout_args(&mut cmd, "fanout", &urls, &a, a.subscribers, light);
                            }
                            Scen::SioEcho16 | Scen::SioEcho1 => {
                                let in_flight = if sc == Scen::SioEcho16 { 16 } else { 1 };
                                echo_args(&mut cmd, "sio-echo", &url(srv.echo), &a, in_flight, 32);
                            }
                            Scen::SioFanout | Scen::SioFanoutLight => {
                                let urls = (url(srv.sub), url(srv.publ));
                                let light = sc == Scen::SioFanoutLight;
                                fanout_args(
                                    &mut cmd,
                                    "sio-fanout",
                                    &urls,
                                    &a,
                                    a.subscribers,
                                    light,
                                );
                                if let Some(topic) = srv.topic {
                                    cmd.args(["--topic", topic]);
                                }
                            }
                            Scen::SockJsEcho => {
                                echo_args(&mut cmd, "sockjs-echo", &url(srv.echo), &a, 16, 32);
                            }
                            Scen::SockJsFanoutWs
                            | Scen::SockJsFanoutXhr
                            | Scen::SockJsFanoutWsLight
                            | Scen::SockJsFanoutXhrLight => {
                                let xhr = matches!(
                                    sc,
                                    Scen::SockJsFanoutXhr | Scen::SockJsFanoutXhrLight
                                );
                                let light = matches!(
                                    sc,
                                    Scen::SockJsFanoutWsLight | Scen::SockJsFanoutXhrLight
                                );
                                let subs = if xhr { xhr_subs(&a) } else { a.subscribers };
                                let urls = (url(srv.sub), url(srv.publ));
                                fanout_args(&mut cmd, "sockjs-fanout", &urls, &a, subs, light);
                                cmd.args([
                                    "--transport",
                                    if xhr { "xhr-streaming" } else { "websocket" },
                                ]);
                            }
                            Scen::SioIdle => {
                                cmd.args(["sio-idle", "--url", &url(srv.echo)]);
                                cmd.args(["--connections", &a.idle_connections.to_string()]);
                                cmd.args(["--server-pid", &child.id().to_string()]);
                            }
                            Scen::Idle => {
                                cmd.args(["idle", "--url", &url(srv.echo)]);
                                cmd.args(["--connections", &a.idle_connections.to_string()]);
                                cmd.args(["--server-pid", &child.id().to_string()]);
                            }
                            Scen::StompFanout | Scen::StompFanoutLight => {
                                let urls = (url(srv.sub), url(srv.publ));
                                let light = sc == Scen::StompFanoutLight;
                                fanout_args(
                                    &mut cmd,
                                    "stomp-fanout",
                                    &urls,
                                    &a,
                                    a.subscribers,
                                    light,
                                );
                                cmd.args(["--destination", STOMP_TOPIC]);
                            }
                            Scen::StompQueue => {
                                cmd.args([
                                    "stomp-queue",
                                    "--url",
                                    &url(srv.sub),
                                    "--destination",
                                    STOMP_QUEUE,
                                ]);
                                cmd.args(["--producers", &a.queue_producers.to_string()]);
                                cmd.args(["--consumers", &a.queue_consumers.to_string()]);
                                cmd.args(["--size", "64", "--window", &a.queue_window.to_string()]);
                                cmd.args(["--prefetch", &a.queue_prefetch.to_string()]);
                                cmd.args(["--ack", a.queue_ack.header()]);
                                cmd.args(["--rate", &a.queue_rate.to_string()]);
                                cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
                            }
                        }
                        if stalled > 0 {
                            cmd.args(["--stalled", &stalled.to_string()]);
                        }
                        cmd.arg("--json");
                        cmd.stderr(Stdio::inherit());
                        // every scenario but idle (which reads RSS itself): the
                        // server's RSS (with its children) before the load and at
                        // its peak, and (echo, fan-out) its CPU over the window
                        let mut seen = crate::watch::Seen::default();
                        let out = if !sc.is_idle() {
                            if sc != Scen::StompQueue {
                                cmd.arg("--mark-window");
                            }
                            let (out, s) = crate::watch::run(&mut cmd, &[&[child.id()]])?;
                            seen = s[0];
                            out
                        } else {
                            cmd.output().map_err(|e| format!("load generator: {e}"))?
                        };
                        let stdout = String::from_utf8_lossy(&out.stdout);
                        let line = stdout
                            .lines()
                            .rev()
                            .find(|l| l.starts_with('{'))
                            .ok_or_else(|| {
                                format!("load generator failed ({}): {}", out.status, stdout.trim())
                            })?;
                        let mut r = serde_json::from_str::<Report>(line)
                            .map_err(|e| format!("bad report {line}: {e}"))?;
                        r.server_rss = seen.peak_rss;
                        r.server_rss_start = seen.start_rss;
                        r.server_cpu = seen.cpu;
                        Ok(r)
                    })();
                    server.stop(&log_dir);
                    match res {
                        Ok(r) => {
                            eprintln!(
                                "[{:>4.0}s] rep {} {:<10} {:<16} {}",
                                started.elapsed().as_secs_f64(),
                                rep + 1,
                                sc.key(),
                                srv.name,
                                brief(&r)
                            );
                            if let Some(f) = json_out.as_mut() {
                                use std::io::Write;
                                let mut v = serde_json::to_value(&r).unwrap();
                                v["server"] = srv.name.into();
                                v["suite_scenario"] = sc.key().into();
                                v["rep"] = (rep + 1).into();
                                v["load_avg"] = load_avg.into();
                                if !a.node_env.is_empty() {
                                    v["node_env"] = a.node_env.clone().into();
                                }
                                let _ = writeln!(f, "{v}");
                            }
                            let mut r = r;
                            r.rep = rep as u32 + 1;
                            results[si][vi].push(r);
                        }
                        Err(e) => eprintln!(
                            "[{:>4.0}s] rep {} {} {}: FAILED: {e}",
                            started.elapsed().as_secs_f64(),
                            rep + 1,
                            sc.key(),
                            srv.name
                        ),
                    }
                    // let sockets of the killed server leave the table
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
    let md = render(&a, &servers, &scens, &results, started.elapsed());
    println!("{md}");
    if let Some(p) = &a.out {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// publications/s of a SockJS fan-out scenario
fn sockjs_rate(a: &SuiteArgs, sc: Scen) -> u64 {
    let light = matches!(sc, Scen::SockJsFanoutWsLight | Scen::SockJsFanoutXhrLight);
    fanout_rate(a, light)
}

/// Publications per second of a fan-out: `--rate`, a tenth of it for the
/// light variants.
fn fanout_rate(a: &SuiteArgs, light: bool) -> u64 {
    if light {
        (a.rate / 10).max(1)
    } else {
        a.rate
    }
}

/// `SUBCOMMAND --url URL --connections N --size 32 --in-flight K
/// --duration D --warmup W`: every echo scenario's load generator.
fn echo_args(
    cmd: &mut Command,
    subcommand: &str,
    url: &str,
    a: &SuiteArgs,
    in_flight: u32,
    size: usize,
) {
    cmd.args([subcommand, "--url", url]);
    cmd.args([
        "--connections",
        &a.connections.to_string(),
        "--size",
        &size.to_string(),
    ]);
    cmd.args(["--in-flight", &in_flight.to_string()]);
    cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
}

/// `SUBCOMMAND --sub-url S --pub-url P --subscribers N --size B --rate R
/// --duration D --warmup W`: every fan-out scenario's load generator
/// (`light`: a tenth of the rate).
fn fanout_args(
    cmd: &mut Command,
    subcommand: &str,
    (sub_url, pub_url): &(String, String),
    a: &SuiteArgs,
    subscribers: usize,
    light: bool,
) {
    cmd.args([subcommand, "--sub-url", sub_url, "--pub-url", pub_url]);
    cmd.args(["--subscribers", &subscribers.to_string()]);
    cmd.args(["--size", &a.size.to_string()]);
    cmd.args(["--rate", &fanout_rate(a, light).to_string()]);
    cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
}

fn xhr_subs(a: &SuiteArgs) -> usize {
    a.xhr_subscribers.unwrap_or(a.subscribers)
}

/// Reads a `--json-out` file back into `results[row][column]`: `locate`
/// places a line by its `server` and `suite_scenario` (lines it does not
/// place are skipped), `make` keeps what the renderer needs of the report
/// and its line.
pub(crate) fn read_results<T>(
    p: &std::path::Path,
    (rows, columns): (usize, usize),
    locate: impl Fn(&str, &str) -> Option<(usize, usize)>,
    make: impl Fn(Report, &serde_json::Value) -> T,
) -> Result<Vec<Vec<Vec<T>>>, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut results: Vec<Vec<Vec<T>>> = (0..rows)
        .map(|_| (0..columns).map(|_| Vec::new()).collect())
        .collect();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
        let (Some(server), Some(scenario)) = (v["server"].as_str(), v["suite_scenario"].as_str())
        else {
            continue;
        };
        let Some((row, column)) = locate(server, scenario) else {
            continue;
        };
        let r: Report = serde_json::from_value(v.clone()).map_err(|e| format!("{line}: {e}"))?;
        results[row][column].push(make(r, &v));
    }
    Ok(results)
}

fn start_server(
    srv: &Server,
    addr: &str,
    cpu: &str,
    log_dir: &std::path::Path,
    env: &[(String, String)],
) -> Result<Child, String> {
    let log = std::fs::File::create(log_dir.join(format!("{}.log", srv.name)))
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpu]).args(&srv.argv).arg(addr);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    cmd.env("RUST_LOG", "warn");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
        .map_err(|e| format!("starting {}: {e}", srv.name))
}

/// The topic and the queue of the STOMP scenarios.
const STOMP_TOPIC: &str = "/topic/bench";
const STOMP_QUEUE: &str = "/queue/bench";

/// RabbitMQ's node name (with its own port mapper, so no clash with a system node).
const RABBIT_NODE: &str = "sbbench@localhost";

/// The process group of the running RabbitMQ node and the pid of the suite's
/// port mapper, for the SIGINT/SIGTERM handler.
static RABBIT_PGID: AtomicI32 = AtomicI32::new(0);
static EPMD_PID: AtomicI32 = AtomicI32::new(0);

/// Other processes to kill on SIGINT/SIGTERM (the cluster suite's
/// redis-server and nodes); 0 marks a free slot.
static GUARDED: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

/// Kills `pid` if the suite is interrupted (until [`unguard_pid`]); installs
/// the signal handler on first use. Beyond 16 processes, nothing is recorded.
pub(crate) fn guard_pid(pid: u32) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install_signal_handler);
    for slot in &GUARDED {
        if slot
            .compare_exchange(0, pid as i32, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

pub(crate) fn unguard_pid(pid: u32) {
    for slot in &GUARDED {
        let _ = slot.compare_exchange(pid as i32, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // only async-signal-safe calls: kill, signal, raise
    let g = RABBIT_PGID.load(Ordering::Relaxed);
    let e = EPMD_PID.load(Ordering::Relaxed);
    unsafe {
        if g > 0 {
            libc::kill(-g, libc::SIGKILL);
        }
        if e > 0 {
            libc::kill(e, libc::SIGKILL);
        }
        for slot in &GUARDED {
            let p = slot.load(Ordering::Relaxed);
            if p > 0 {
                libc::kill(p, libc::SIGKILL);
            }
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// RabbitMQ runs in a process group of its own (its start script does not
/// exec the Erlang VM): on Ctrl-C or SIGTERM the suite kills that group and its
/// port mapper before dying.
fn install_signal_handler() {
    let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A fresh private directory under the temp dir.
pub(crate) fn private_dir(what: &str) -> Result<PathBuf, String> {
    let d = std::env::temp_dir().join(format!(
        "switchboard-bench-{what}-{}-{}",
        std::process::id(),
        crate::util::now_ns()
    ));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

/// The Erlang port mapper the suite's RabbitMQ nodes register with: its own
/// port, started by the suite (in the foreground, not as a daemon) so that no
/// `epmd -daemon` outlives the suite. Killed when dropped.
struct Epmd {
    child: Child,
    port: u16,
}

impl Epmd {
    fn start() -> Result<Epmd, String> {
        let port = free_port()?;
        let mut child = Command::new("epmd")
            .args(["-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                format!("starting epmd (Erlang, from rabbitmq-server's dependencies): {e}")
            })?;
        EPMD_PID.store(child.id() as i32, Ordering::Relaxed);
        let addr = format!("127.0.0.1:{port}");
        if let Err(e) = wait_ready(&addr, &mut child, Duration::from_secs(10)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("epmd: {e}"));
        }
        Ok(Epmd { child, port })
    }
}

impl Drop for Epmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        EPMD_PID.store(0, Ordering::Relaxed);
    }
}

/// A server started for one run.
enum Running {
    Plain(Child),
    /// Switchboard with its config file in a private directory
    Switchboard {
        child: Child,
        dir: PathBuf,
    },
    /// a RabbitMQ node: everything (config, Mnesia, logs, Erlang cookie) in a
    /// private directory; its own process group
    Rabbit {
        child: Child,
        dir: PathBuf,
        env: Vec<(String, String)>,
        ctl: PathBuf,
    },
}

impl Running {
    fn child(&mut self) -> &mut Child {
        match self {
            Running::Plain(c) => c,
            Running::Switchboard { child, .. } | Running::Rabbit { child, .. } => child,
        }
    }

    /// Stops the server; nothing of it stays running.
    fn stop(self, log_dir: &std::path::Path) {
        match self {
            Running::Plain(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Running::Switchboard { mut child, dir } => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(dir);
            }
            Running::Rabbit {
                mut child,
                dir,
                env,
                ctl,
            } => {
                // graceful first (`rabbitmqctl stop` halts the node), then the group
                if let Ok(mut stop) = Command::new(&ctl)
                    .args(["-n", RABBIT_NODE, "stop"])
                    .envs(env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                {
                    wait_exit(&mut stop, Duration::from_secs(30));
                }
                wait_exit(&mut child, Duration::from_secs(20));
                let pgid = child.id() as i32;
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                let _ = child.wait();
                RABBIT_PGID.store(0, Ordering::Relaxed);
                // keep the node's log beside the others
                if let Ok(text) = std::fs::read(dir.join("log").join(format!("{RABBIT_NODE}.log")))
                {
                    use std::io::Write;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(log_dir.join("stomp-rabbitmq.log"))
                    {
                        let _ = f.write_all(b"\n--- node log ---\n");
                        let _ = f.write_all(&text);
                    }
                }
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Waits up to `within` for a child to exit; kills it after that.
pub(crate) fn wait_exit(c: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// Starts a STOMP server whose Web-STOMP endpoint (`/ws`) listens on `addr`.
///
/// * Switchboard: `switchboard serve --config FILE` with `[stomp]
///   web_stomp_listen = addr` (its RabbitMQ-style listener), the main listener
///   on a free port, no STOMP TCP listener, user guest/guest (no anonymous
///   access), `max_queue_length` raised to 1,000,000; everything else default.
/// * RabbitMQ: the Debian package's `rabbitmq-server`, node `sbbench@localhost`
///   with everything private in a fresh directory (config, Mnesia, logs, the
///   Erlang cookie through HOME), plugin `rabbitmq_web_stomp` only, AMQP and
///   distribution on free loopback ports, no STOMP TCP listener, Web-STOMP on
///   `addr`, unlimited Web-STOMP connections, backlog 1,024, file log at
///   `warning` (Switchboard logs at `warn`); default user guest/guest.
fn start_stomp(
    srv: &Server,
    addr: &str,
    cpu: &str,
    log_dir: &std::path::Path,
    epmd: &mut Option<Epmd>,
    env: &[(String, String)],
) -> Result<Running, String> {
    let log = std::fs::File::create(log_dir.join(format!("{}.log", srv.name)))
        .map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let (host, port) = addr.rsplit_once(':').ok_or("bad address")?;
    if srv.name == "stomp-switchboard" {
        let dir = private_dir("switchboard")?;
        let conf = dir.join("switchboard.toml");
        let text = format!(
            "listen = \"{host}:{}\"\nlog = \"warn\"\n\n[stomp]\ntcp_listen = \"\"\n\
             web_stomp_listen = \"{addr}\"\nusers = [{{login = \"guest\", passcode = \"guest\"}}]\n\
             allow_anonymous = false\nmax_queue_length = 1000000\n",
            free_port()?
        );
        std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
        let child = Command::new("taskset")
            .args(["-c", cpu])
            .args(&srv.argv)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .map_err(|e| format!("starting {}: {e}", srv.name))?;
        return Ok(Running::Switchboard { child, dir });
    }
    // RabbitMQ
    if epmd.is_none() {
        install_signal_handler();
        *epmd = Some(Epmd::start()?);
    }
    let epmd_port = epmd.as_ref().map(|e| e.port).unwrap_or_default();
    let dir = private_dir("rabbitmq")?;
    let (amqp, dist) = (free_port()?, free_port()?);
    let conf = dir.join("rabbitmq.conf");
    let text = format!(
        "listeners.tcp.default = {host}:{amqp}\n\
         stomp.listeners.tcp = none\n\
         web_stomp.tcp.ip = {host}\n\
         web_stomp.tcp.port = {port}\n\
         web_stomp.tcp.backlog = 1024\n\
         web_stomp.max_connections = infinity\n\
         log.file.level = warning\n\
         log.console = false\n"
    );
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("rabbitmq.conf", &text)?;
    write("enabled_plugins", "[rabbitmq_web_stomp].\n")?;
    write("rabbitmq-env.conf", "")?;
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let env: Vec<(String, String)> = [
        ("HOME", d("")),
        ("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf")),
        ("RABBITMQ_CONFIG_FILE", conf.to_string_lossy().into_owned()),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", d("advanced.config")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins")),
        ("RABBITMQ_MNESIA_BASE", d("mnesia")),
        ("RABBITMQ_LOG_BASE", d("log")),
        ("RABBITMQ_PID_FILE", d("rabbitmq.pid")),
        ("RABBITMQ_NODENAME", RABBIT_NODE.to_owned()),
        ("RABBITMQ_NODE_IP_ADDRESS", host.to_owned()),
        ("RABBITMQ_NODE_PORT", amqp.to_string()),
        ("RABBITMQ_DIST_PORT", dist.to_string()),
        ("ERL_EPMD_PORT", epmd_port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let child = Command::new("taskset")
        .args(["-c", cpu])
        .args(&srv.argv)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", srv.name))?;
    RABBIT_PGID.store(child.id() as i32, Ordering::Relaxed);
    Ok(Running::Rabbit {
        child,
        dir,
        env,
        ctl: PathBuf::from(&srv.argv[0]).with_file_name("rabbitmqctl"),
    })
}

pub(crate) fn wait_ready(addr: &str, child: &mut Child, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("server exited: {st}"));
        }
        if Instant::now() > deadline {
            return Err(format!("server not listening after {} s", within.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn brief(r: &Report) -> String {
    let mut b = brief_run(r);
    if r.server_rss > 0 && !r.scenario.starts_with("stomp-") {
        let _ = write!(
            b,
            " server peak RSS {:.0} MiB",
            r.server_rss as f64 / 1048576.0
        );
    }
    if r.stalled > 0 {
        let _ = write!(
            b,
            " stalled dropped {} of {}",
            r.stalled_dropped.unwrap_or(0),
            r.stalled
        );
        for f in &r.stalled_fates {
            match f.closed_after_s {
                Some(t) => {
                    let _ = write!(b, " [{}, closed at {t:.1} s]", f.end);
                }
                None => {
                    let _ = write!(b, " [{}]", f.end);
                }
            }
        }
    }
    b
}

fn brief_run(r: &Report) -> String {
    match r.scenario.as_str() {
        "idle" | "sio-idle" => format!(
            "{:.0} B/conn ({} conns, errors {})",
            r.bytes_per_conn, r.connections, r.errors
        ),
        s if s.starts_with("stomp-") => format!(
            "{:.0} {} p99 {:.0} us lost {} missing {} dups {} gaps {} errors {} server peak RSS {:.0} MiB",
            r.rate,
            if s == "stomp-queue" { "acks/s" } else { "deliveries/s" },
            r.latency.p99_us,
            r.lost,
            r.missing,
            r.duplicates,
            r.gaps,
            r.errors,
            r.server_rss as f64 / 1048576.0
        ),
        s if s.contains("fanout") => format!(
            "{:.0} deliveries/s p99 {:.0} us lost {} errors {}",
            r.rate, r.latency.p99_us, r.lost, r.errors
        ),
        s => format!(
            "{:.0} {} p50 {:.0} us p99 {:.0} us errors {}",
            r.rate,
            if s == "sio-echo" { "acks/s" } else { "msgs/s" },
            r.latency.p50_us,
            r.latency.p99_us,
            r.errors
        ),
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        return "–".into();
    }
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn fmt_ratio(x: f64) -> String {
    if x.is_nan() || x.is_infinite() {
        "–".into()
    } else {
        format!("{x:.2}×")
    }
}

/// median of one metric over the repetitions of (scenario, server)
fn med(results: &[Vec<Vec<Report>>], si: usize, vi: usize, f: impl Fn(&Report) -> f64) -> f64 {
    median(results[si][vi].iter().map(f).collect())
}

fn render(
    a: &SuiteArgs,
    servers: &[Server],
    scens: &[Scen],
    results: &[Vec<Vec<Report>>],
    took: Duration,
) -> String {
    if a.slow {
        let rows: Vec<(&str, Vec<Report>)> = scens
            .iter()
            .enumerate()
            .map(|(si, sc)| (sc.key(), results[si].concat()))
            .collect();
        return crate::slow::render(a, &rows, took);
    }
    let mut md = String::new();
    let sb_ws = servers.iter().position(|s| s.name == "switchboard");
    let sb_sio = servers.iter().position(|s| s.name == "sio-switchboard");
    let sb_sockjs = servers.iter().position(|s| s.name == "sockjs-switchboard");
    let sb_stomp = servers.iter().position(|s| s.name == "stomp-switchboard");
    let _ = writeln!(
        md,
        "Suite: {} repetitions (medians), runs of {} after {} warm-up; servers on CPU {}, load generator on CPU {}{}.\n",
        a.reps,
        a.duration,
        a.warmup,
        a.server_cpu,
        a.client_cpu,
        if took.is_zero() { String::new() } else { format!("; took {:.0} s", took.as_secs_f64()) }
    );
    for (si, &sc) in scens.iter().enumerate() {
        let title = match sc {
            Scen::Echo16 => format!(
                "Echo: {} connections, 32 B text, 16 in flight per connection",
                a.connections
            ),
            Scen::Echo16Large => format!(
                "Echo: {} connections, 4 KiB text, 16 in flight per connection",
                a.connections
            ),
            Scen::Echo1 => format!(
                "Echo: {} connections, 32 B text, 1 in flight per connection",
                a.connections
            ),
            Scen::Fanout => format!(
                "Fan-out: {} subscribers, {} B text, {} publications/s",
                a.subscribers, a.size, a.rate
            ),
            Scen::FanoutLight => format!(
                "Fan-out: {} subscribers, {} B text, {} publications/s",
                a.subscribers,
                a.size,
                (a.rate / 10).max(1)
            ),
            Scen::Idle => format!(
                "Idle: {} connections, server RSS growth",
                a.idle_connections
            ),
            Scen::SioEcho16 | Scen::SioEcho1 => format!(
                "Socket.IO echo: {} connections, acked `echo` events (32-char string), {} in flight per connection",
                a.connections,
                if sc == Scen::SioEcho16 { 16 } else { 1 }
            ),
            Scen::SioFanout | Scen::SioFanoutLight => format!(
                "Socket.IO fan-out: {} subscribers in one room, {}-char string, {} broadcasts/s",
                a.subscribers,
                a.size,
                if sc == Scen::SioFanout {
                    a.rate
                } else {
                    (a.rate / 10).max(1)
                }
            ),
            Scen::SioIdle => format!(
                "Socket.IO idle: {} sockets connected to `/`, server RSS growth",
                a.idle_connections
            ),
            Scen::SockJsEcho => format!(
                "SockJS echo (websocket transport): {} sessions, 32-char messages, 16 in flight per session",
                a.connections
            ),
            Scen::SockJsFanoutWs | Scen::SockJsFanoutWsLight => format!(
                "SockJS fan-out, websocket subscribers: {} sessions joined, `pub:` + {} chars, {} publications/s",
                a.subscribers,
                a.size,
                sockjs_rate(a, sc)
            ),
            Scen::SockJsFanoutXhr | Scen::SockJsFanoutXhrLight => format!(
                "SockJS fan-out, xhr-streaming subscribers: {} sessions joined, `pub:` + {} chars, {} publications/s (publisher on websocket)",
                xhr_subs(a),
                a.size,
                sockjs_rate(a, sc)
            ),
            Scen::StompFanout | Scen::StompFanoutLight => format!(
                "STOMP fan-out over WebSocket: {} subscribers on `{STOMP_TOPIC}`, {} B bodies, {} SENDs/s",
                a.subscribers,
                a.size,
                if sc == Scen::StompFanout {
                    a.rate
                } else {
                    (a.rate / 10).max(1)
                }
            ),
            Scen::StompQueue => format!(
                "STOMP queue over WebSocket: {} producers, {} consumers on `{STOMP_QUEUE}`, 64 B bodies, `ack:{}` (an ACK per message), {}, window {} per producer, prefetch-count {}",
                a.queue_producers,
                a.queue_consumers,
                a.queue_ack.header(),
                if a.queue_rate == 0 {
                    "as fast as the window allows".to_string()
                } else {
                    format!("{} SENDs/s in all", a.queue_rate)
                },
                a.queue_window,
                a.queue_prefetch
            ),
        };
        let sbi = match sc.proto() {
            Proto::SocketIo => sb_sio,
            Proto::SockJs => sb_sockjs,
            Proto::Stomp => sb_stomp,
            Proto::WebSocket => sb_ws,
        };
        let unit = if sc.is_sio() || sc == Scen::StompQueue {
            "acks/s"
        } else {
            "msgs/s"
        };
        let stomp = sc.proto() == Proto::Stomp;
        let _ = writeln!(md, "### {title}\n");
        match sc {
            _ if sc.is_idle() => {
                let _ = writeln!(md, "| server | bytes / connection | RSS before (MiB) | RSS after (MiB) | Switchboard ÷ server |");
                let _ = writeln!(md, "|---|---:|---:|---:|---:|");
            }
            _ if stomp && sc.is_fanout() => {
                let _ = writeln!(md, "| server | deliveries/s | p50 µs | p99 µs | p99.9 µs | lost | missing | gaps | dups | errors | server peak RSS MiB | Switchboard ÷ server: deliveries/s | p99 |");
                let _ = writeln!(
                    md,
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                );
            }
            _ if stomp => {
                let _ = writeln!(md, "| server | {unit} | p50 µs | p99 µs | p99.9 µs | missing | dups | redelivered | errors | server peak RSS MiB | Switchboard ÷ server: {unit} | p99 |");
                let _ = writeln!(
                    md,
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                );
            }
            _ if sc.is_fanout() => {
                let _ = writeln!(md, "| server | deliveries/s | p50 µs | p99 µs | p99.9 µs | lost | errors | server RSS MiB: start → peak | server CPU µs / delivery | Switchboard ÷ server: deliveries/s | p99 |");
                let _ = writeln!(
                    md,
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                );
            }
            _ => {
                let _ = writeln!(md, "| server | {unit} | p50 µs | p99 µs | p99.9 µs | errors | server CPU µs / msg | Switchboard ÷ server: {unit} | p99 |");
                let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            }
        }
        for (vi, srv) in servers.iter().enumerate() {
            if results[si][vi].is_empty() {
                continue;
            }
            let m = |f: &dyn Fn(&Report) -> f64| med(results, si, vi, f);
            // Switchboard ÷ server: median over the repetitions of the ratio of
            // the two runs of the same repetition (paired: minutes apart at most)
            let ratio_of = |f: &dyn Fn(&Report) -> f64, lat_ratio: bool| {
                let Some(i) = sbi else { return f64::NAN };
                median(
                    results[si][i]
                        .iter()
                        .filter_map(|s| {
                            results[si][vi]
                                .iter()
                                .find(|r| r.rep == s.rep)
                                .map(|r| (s, r))
                        })
                        .filter(|(s, r)| {
                            !lat_ratio || (s.latency.samples > 0 && r.latency.samples > 0)
                        })
                        .map(|(s, r)| f(s) / f(r))
                        .collect(),
                )
            };
            let errors = results[si][vi].iter().map(|r| r.errors).sum::<u64>();
            match sc {
                _ if sc.is_idle() => {
                    let b = m(&|r| r.bytes_per_conn);
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.1} | {:.1} | {} |",
                        srv.label,
                        fmt_num(b),
                        m(&|r| r.rss_before as f64) / 1048576.0,
                        m(&|r| r.rss_after as f64) / 1048576.0,
                        fmt_ratio(ratio_of(&|r| r.bytes_per_conn, false))
                    );
                }
                _ => {
                    let rate = m(&|r| r.rate);
                    // latency: median over the repetitions that have samples
                    let ml = |f: &dyn Fn(&Report) -> f64| {
                        median(
                            results[si][vi]
                                .iter()
                                .filter(|r| r.latency.samples > 0)
                                .map(f)
                                .collect(),
                        )
                    };
                    let p99 = ml(&|r| r.latency.p99_us);
                    let no_samples = results[si][vi].iter().all(|r| r.latency.samples == 0);
                    let sb_no_samples =
                        sbi.is_none_or(|i| results[si][i].iter().all(|r| r.latency.samples == 0));
                    let lat = |x: f64| {
                        if no_samples {
                            "–".to_string()
                        } else {
                            fmt_num(x)
                        }
                    };
                    // the columns between p99.9 and errors, and after errors
                    let mut lost = String::new();
                    let mut after = String::new();
                    let mut col = |f: &dyn Fn(&Report) -> f64| {
                        let _ = write!(lost, " {} |", fmt_num(m(f)));
                    };
                    if sc.is_fanout() {
                        col(&|r| r.lost as f64);
                    }
                    if stomp {
                        col(&|r| r.missing as f64);
                        if sc.is_fanout() {
                            col(&|r| r.gaps as f64);
                        }
                        col(&|r| r.duplicates as f64);
                        if !sc.is_fanout() {
                            col(&|r| r.redelivered as f64);
                        }
                        let mib = m(&|r| r.server_rss as f64) / 1048576.0;
                        after = format!(" {mib:.0} |");
                    } else {
                        // reports written before the suite sampled every scenario have none
                        let runs = &results[si][vi];
                        if sc.is_fanout() {
                            after = if runs.iter().any(|r| r.server_rss_start == 0) {
                                " – |".to_string()
                            } else {
                                format!(
                                    " {:.1} → {:.1} |",
                                    m(&|r| r.server_rss_start as f64) / 1048576.0,
                                    m(&|r| r.server_rss as f64) / 1048576.0
                                )
                            };
                        }
                        // the server's CPU time per message: cores ÷ rate
                        after += &if runs.iter().any(|r| r.server_cpu == 0.0 || r.rate == 0.0) {
                            " – |".to_string()
                        } else {
                            format!(" {:.2} |", m(&|r| r.server_cpu / r.rate * 1e6))
                        };
                    }
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} |{lost} {errors} |{after} {} | {} |",
                        srv.label,
                        fmt_num(rate),
                        lat(ml(&|r| r.latency.p50_us)),
                        lat(p99),
                        lat(ml(&|r| r.latency.p999_us)),
                        fmt_ratio(ratio_of(&|r| r.rate, false)),
                        if no_samples || sb_no_samples {
                            "–".to_string()
                        } else {
                            fmt_ratio(ratio_of(&|r| r.latency.p99_us, true))
                        },
                    );
                }
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "Ratios are the median over the repetitions of Switchboard's figure divided by the server's figure in the same repetition (the tables' other columns are plain medians): above 1× is better for msgs/s and deliveries/s, below 1× is better for p99 latency and bytes per connection. `lost` is the median count of deliveries of the measured window's publications that had not arrived 3 s after the window (dropped, or still queued); latency covers only those that did arrive (median over the repetitions that had any), so a server far behind shows `–` or the latency of only its earliest window deliveries; `errors` sums the connections that failed or were closed over all repetitions; `server RSS` (fan-out) is the VmRSS of the server's process tree just before the load generator started, and the highest VmRSS sampled every 200 ms while it ran (medians over the repetitions); `server CPU` is the CPU time (user + system) of the server's process tree over the measured window divided by the messages (echo) or deliveries (fan-out) of the window (median over the repetitions): at 1 µs a core does 1 M per second."
    );
    if scens.iter().any(|s| s.proto() == Proto::Stomp) {
        let _ = writeln!(
            md,
            "\nSTOMP columns: `missing` counts, of every message sent over the whole run (warm-up included; fan-out: times the subscribers), those not received by the end of the grace period; `gaps` the sequence numbers a subscriber skipped (a later one arrived first: dropped, not late); `dups` messages received more than once (fan-out: or out of order); `redelivered` MESSAGE frames flagged `redelivered:true`; `server peak RSS` the highest VmRSS of the server's process tree, sampled every 200 ms during the run (medians over the repetitions). Queue `acks/s` counts messages received and acknowledged (ACK written) during the window."
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws_server(name: &'static str, label: &'static str) -> Server {
        Server {
            name,
            label,
            argv: Vec::new(),
            echo: "/",
            sub: "/",
            publ: "/",
            tcp: false,
            echo_only: false,
            proto: Proto::WebSocket,
            topic: None,
        }
    }

    #[test]
    fn fanout_tables_show_the_servers_rss_and_cpu_per_delivery() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: SuiteArgs,
        }
        let a = Cli::try_parse_from(["suite", "--reps", "1"]).unwrap().a;
        let servers = [
            ws_server("switchboard", "Switchboard"),
            ws_server("fastwebsockets", "fastwebsockets"),
        ];
        let run = |start: u64, peak: u64| Report {
            scenario: "fanout".into(),
            rate: 1000.0,
            rep: 1,
            server_rss_start: start,
            server_rss: peak,
            server_cpu: if start > 0 { 0.25 } else { 0.0 },
            ..Report::default()
        };
        const MIB: u64 = 1 << 20;
        // fastwebsockets' report predates the sampling: no start figure
        let results = vec![vec![vec![run(5 * MIB, 12 * MIB)], vec![run(0, 20 * MIB)]]];
        let md = render(&a, &servers, &[Scen::Fanout], &results, Duration::ZERO);
        assert!(md.contains("| server RSS MiB: start → peak |"), "{md}");
        // a quarter of a core for 1,000 deliveries/s: 250 µs each
        assert!(md.contains("| 0 | 5.0 → 12.0 | 250.00 | 1.00× |"), "{md}");
        assert!(md.contains("| 0 | – | – | 1.00× |"), "{md}");
    }
}
