//! `suite`: starts every server pinned to one core (`taskset -c 0`), runs every
//! scenario against it with the load generator pinned to the other core
//! (`taskset -c 1`, a fresh `switchboard-bench` process per run), repeats,
//! takes medians and prints markdown tables with Switchboard's ratio to each peer.
//! Every run gets a freshly started server on a fresh port.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
    /// servers, comma-separated: switchboard,node-ws,tungstenite,fastwebsockets,tcp-echo
    /// (WebSocket; the default) or sio-switchboard,sio-node,sio-socketioxide (Socket.IO;
    /// the default with --socketio) or sockjs-switchboard,sockjs-node (SockJS; the
    /// default with --sockjs)
    #[arg(long)]
    pub servers: Option<String>,
    /// scenarios, comma-separated: echo16,echo1,fanout,fanout-light,idle (WebSocket; the
    /// default) or sio-echo16,sio-echo1,sio-fanout,sio-fanout-light,sio-idle (Socket.IO;
    /// the default with --socketio) or sockjs-echo,sockjs-fanout-ws,sockjs-fanout-xhr,
    /// sockjs-fanout-ws-light,sockjs-fanout-xhr-light (SockJS; the default with --sockjs).
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
    /// the protocol it serves (it runs that protocol's scenarios only)
    proto: Proto,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    WebSocket,
    SocketIo,
    SockJs,
}

impl SuiteArgs {
    fn servers(&self) -> &str {
        match &self.servers {
            Some(s) => s,
            None if self.socketio => "sio-switchboard,sio-node,sio-socketioxide",
            None if self.sockjs => "sockjs-switchboard,sockjs-node",
            None => "switchboard,node-ws,tungstenite,fastwebsockets,tcp-echo",
        }
    }
    fn scenarios(&self) -> &str {
        match &self.scenarios {
            Some(s) => s,
            None if self.socketio => "sio-echo16,sio-echo1,sio-fanout,sio-fanout-light,sio-idle",
            None if self.sockjs => {
                "sockjs-echo,sockjs-fanout-ws,sockjs-fanout-xhr,sockjs-fanout-ws-light,sockjs-fanout-xhr-light"
            }
            None => "echo16,echo1,fanout,fanout-light,idle",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Scen {
    Echo16,
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
}

impl Scen {
    fn parse(s: &str) -> Result<Scen, String> {
        Ok(match s {
            "echo16" => Scen::Echo16,
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
            _ => return Err(format!("unknown scenario {s}")),
        })
    }
    fn key(self) -> &'static str {
        match self {
            Scen::Echo16 => "echo16",
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
        }
    }
    fn proto(self) -> Proto {
        if self.is_sio() {
            Proto::SocketIo
        } else if self.key().starts_with("sockjs-") {
            Proto::SockJs
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
        )
    }
    fn is_idle(self) -> bool {
        matches!(self, Scen::Idle | Scen::SioIdle)
    }
}

pub fn run(a: SuiteArgs) -> Result<(), String> {
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
                proto: Proto::WebSocket,
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
                    proto: Proto::WebSocket,
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
                proto: Proto::WebSocket,
            },
            "fastwebsockets" => Server {
                name: "fastwebsockets",
                label: "fastwebsockets",
                argv: vec![s(bin_dir.join("peer-fastwebsockets")), "--listen".into()],
                echo: "/echo",
                sub: "/fanout",
                publ: "/publish",
                tcp: false,
                proto: Proto::WebSocket,
            },
            "tcp-echo" => Server {
                name: "tcp-echo",
                label: "TCP echo (tokio)",
                argv: vec![s(bin_dir.join("peer-tcp-echo")), "--listen".into()],
                echo: "/",
                sub: "",
                publ: "",
                tcp: true,
                proto: Proto::WebSocket,
            },
            "sio-switchboard" => Server {
                name: "sio-switchboard",
                label: "Switchboard",
                argv: vec![s(bin_dir.join("sio-switchboard")), "--listen".into()],
                echo: "/socket.io/",
                sub: "/socket.io/",
                publ: "/socket.io/",
                tcp: false,
                proto: Proto::SocketIo,
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
                    proto: Proto::SocketIo,
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
                proto: Proto::SocketIo,
            },
            "sockjs-switchboard" => Server {
                name: "sockjs-switchboard",
                label: "Switchboard",
                argv: vec![s(bin_dir.join("sockjs-switchboard")), "--listen".into()],
                echo: "/bench",
                sub: "/bench",
                publ: "/bench",
                tcp: false,
                proto: Proto::SockJs,
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
                    proto: Proto::SockJs,
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
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut results: Vec<Vec<Vec<Report>>> = vec![vec![Vec::new(); servers.len()]; scens.len()];
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
            let (Some(srv), Some(sc)) = (v["server"].as_str(), v["suite_scenario"].as_str()) else {
                continue;
            };
            let (Some(vi), Some(si)) = (
                servers.iter().position(|s| s.name == srv),
                scens.iter().position(|s| s.key() == sc),
            ) else {
                continue;
            };
            let r: Report =
                serde_json::from_value(v.clone()).map_err(|e| format!("{line}: {e}"))?;
            results[si][vi].push(r);
        }
        println!("{}", render(&a, &servers, &scens, &results, Duration::ZERO));
        return Ok(());
    }
    let mut json_out = match &a.json_out {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let log_dir = std::env::temp_dir().join("switchboard-bench-logs");
    let _ = std::fs::create_dir_all(&log_dir);
    let started = Instant::now();
    let mut port = a.base_port;
    // results[scenario][server] = reports
    let mut results: Vec<Vec<Vec<Report>>> = vec![vec![Vec::new(); servers.len()]; scens.len()];
    for rep in 0..a.reps {
        for (si, &sc) in scens.iter().enumerate() {
            for (vi, srv) in servers.iter().enumerate() {
                if srv.proto != sc.proto() || (srv.tcp && !matches!(sc, Scen::Echo16 | Scen::Echo1))
                {
                    continue;
                }
                port = port.wrapping_add(1).max(1024);
                let addr = format!("127.0.0.1:{port}");
                let mut child = start_server(srv, &addr, &a.server_cpu, &log_dir)?;
                let res = (|| {
                    wait_ready(&addr, &mut child)?;
                    std::thread::sleep(Duration::from_millis(300));
                    let mut cmd = Command::new("taskset");
                    cmd.args(["-c", &a.client_cpu]).arg(&exe);
                    let url = |p: &str| format!("ws://{addr}{p}");
                    match sc {
                        Scen::Echo16 | Scen::Echo1 => {
                            cmd.args(["echo", "--url", &url(srv.echo)]);
                            cmd.args(["--connections", &a.connections.to_string(), "--size", "32"]);
                            cmd.args(["--in-flight", if sc == Scen::Echo16 { "16" } else { "1" }]);
                            cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
                            if srv.tcp {
                                cmd.arg("--raw-tcp");
                            }
                        }
                        Scen::Fanout | Scen::FanoutLight => {
                            let rate = if sc == Scen::Fanout {
                                a.rate
                            } else {
                                (a.rate / 10).max(1)
                            };
                            cmd.args([
                                "fanout",
                                "--sub-url",
                                &url(srv.sub),
                                "--pub-url",
                                &url(srv.publ),
                            ]);
                            cmd.args(["--subscribers", &a.subscribers.to_string(), "--size", "64"]);
                            cmd.args(["--rate", &rate.to_string()]);
                            cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
                        }
                        Scen::SioEcho16 | Scen::SioEcho1 => {
                            cmd.args(["sio-echo", "--url", &url(srv.echo)]);
                            cmd.args(["--connections", &a.connections.to_string(), "--size", "32"]);
                            let inf = if sc == Scen::SioEcho16 { "16" } else { "1" };
                            cmd.args(["--in-flight", inf]);
                            cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
                        }
                        Scen::SioFanout | Scen::SioFanoutLight => {
                            let rate = if sc == Scen::SioFanout {
                                a.rate
                            } else {
                                (a.rate / 10).max(1)
                            };
                            cmd.args([
                                "sio-fanout",
                                "--sub-url",
                                &url(srv.sub),
                                "--pub-url",
                                &url(srv.publ),
                            ]);
                            cmd.args(["--subscribers", &a.subscribers.to_string(), "--size", "64"]);
                            cmd.args(["--rate", &rate.to_string()]);
                            cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
                        }
                        Scen::SockJsEcho => {
                            cmd.args(["sockjs-echo", "--url", &url(srv.echo)]);
                            cmd.args(["--connections", &a.connections.to_string(), "--size", "32"]);
                            cmd.args(["--in-flight", "16"]);
                            cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
                        }
                        Scen::SockJsFanoutWs
                        | Scen::SockJsFanoutXhr
                        | Scen::SockJsFanoutWsLight
                        | Scen::SockJsFanoutXhrLight => {
                            let rate = sockjs_rate(&a, sc);
                            let xhr =
                                matches!(sc, Scen::SockJsFanoutXhr | Scen::SockJsFanoutXhrLight);
                            cmd.args([
                                "sockjs-fanout",
                                "--sub-url",
                                &url(srv.sub),
                                "--pub-url",
                                &url(srv.publ),
                            ]);
                            cmd.args([
                                "--transport",
                                if xhr { "xhr-streaming" } else { "websocket" },
                            ]);
                            let subs = if xhr { xhr_subs(&a) } else { a.subscribers };
                            cmd.args(["--subscribers", &subs.to_string(), "--size", "64"]);
                            cmd.args(["--rate", &rate.to_string()]);
                            cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
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
                    }
                    cmd.arg("--json");
                    cmd.stderr(Stdio::inherit());
                    let out = cmd.output().map_err(|e| format!("load generator: {e}"))?;
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    let line = stdout
                        .lines()
                        .rev()
                        .find(|l| l.starts_with('{'))
                        .ok_or_else(|| {
                            format!("load generator failed ({}): {}", out.status, stdout.trim())
                        })?;
                    serde_json::from_str::<Report>(line)
                        .map_err(|e| format!("bad report {line}: {e}"))
                })();
                let _ = child.kill();
                let _ = child.wait();
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
    let md = render(&a, &servers, &scens, &results, started.elapsed());
    println!("{md}");
    if let Some(p) = &a.out {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// publications/s of a SockJS fan-out scenario
fn sockjs_rate(a: &SuiteArgs, sc: Scen) -> u64 {
    match sc {
        Scen::SockJsFanoutWsLight | Scen::SockJsFanoutXhrLight => (a.rate / 10).max(1),
        _ => a.rate,
    }
}

fn xhr_subs(a: &SuiteArgs) -> usize {
    a.xhr_subscribers.unwrap_or(a.subscribers)
}

fn start_server(
    srv: &Server,
    addr: &str,
    cpu: &str,
    log_dir: &std::path::Path,
) -> Result<Child, String> {
    let log = std::fs::File::create(log_dir.join(format!("{}.log", srv.name)))
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpu]).args(&srv.argv).arg(addr);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    cmd.env("RUST_LOG", "warn");
    cmd.spawn()
        .map_err(|e| format!("starting {}: {e}", srv.name))
}

fn wait_ready(addr: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("server exited: {st}"));
        }
        if Instant::now() > deadline {
            return Err("server not listening after 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn brief(r: &Report) -> String {
    match r.scenario.as_str() {
        "idle" | "sio-idle" => format!(
            "{:.0} B/conn ({} conns, errors {})",
            r.bytes_per_conn, r.connections, r.errors
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

fn median(mut v: Vec<f64>) -> f64 {
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

fn fmt_num(x: f64) -> String {
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

fn fmt_ratio(x: f64) -> String {
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
    let mut md = String::new();
    let sb_ws = servers.iter().position(|s| s.name == "switchboard");
    let sb_sio = servers.iter().position(|s| s.name == "sio-switchboard");
    let sb_sockjs = servers.iter().position(|s| s.name == "sockjs-switchboard");
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
            Scen::Echo1 => format!(
                "Echo: {} connections, 32 B text, 1 in flight per connection",
                a.connections
            ),
            Scen::Fanout => format!(
                "Fan-out: {} subscribers, 64 B text, {} publications/s",
                a.subscribers, a.rate
            ),
            Scen::FanoutLight => format!(
                "Fan-out: {} subscribers, 64 B text, {} publications/s",
                a.subscribers,
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
                "Socket.IO fan-out: {} subscribers in one room, 64-char string, {} broadcasts/s",
                a.subscribers,
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
                "SockJS fan-out, websocket subscribers: {} sessions joined, `pub:` + 64 chars, {} publications/s",
                a.subscribers,
                sockjs_rate(a, sc)
            ),
            Scen::SockJsFanoutXhr | Scen::SockJsFanoutXhrLight => format!(
                "SockJS fan-out, xhr-streaming subscribers: {} sessions joined, `pub:` + 64 chars, {} publications/s (publisher on websocket)",
                xhr_subs(a),
                sockjs_rate(a, sc)
            ),
        };
        let sbi = match sc.proto() {
            Proto::SocketIo => sb_sio,
            Proto::SockJs => sb_sockjs,
            Proto::WebSocket => sb_ws,
        };
        let unit = if sc.is_sio() { "acks/s" } else { "msgs/s" };
        let _ = writeln!(md, "### {title}\n");
        match sc {
            _ if sc.is_idle() => {
                let _ = writeln!(md, "| server | bytes / connection | RSS before (MiB) | RSS after (MiB) | Switchboard ÷ server |");
                let _ = writeln!(md, "|---|---:|---:|---:|---:|");
            }
            _ if sc.is_fanout() => {
                let _ = writeln!(md, "| server | deliveries/s | p50 µs | p99 µs | p99.9 µs | lost | errors | Switchboard ÷ server: deliveries/s | p99 |");
                let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            }
            _ => {
                let _ = writeln!(md, "| server | {unit} | p50 µs | p99 µs | p99.9 µs | errors | Switchboard ÷ server: {unit} | p99 |");
                let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
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
                    let lost = if sc.is_fanout() {
                        format!(" {} |", fmt_num(m(&|r| r.lost as f64)))
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} |{lost} {errors} | {} | {} |",
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
        "Ratios are the median over the repetitions of Switchboard's figure divided by the server's figure in the same repetition (the tables' other columns are plain medians): above 1× is better for msgs/s and deliveries/s, below 1× is better for p99 latency and bytes per connection. `lost` is the median count of deliveries of the measured window's publications that had not arrived 3 s after the window (dropped, or still queued); latency covers only those that did arrive (median over the repetitions that had any), so a server far behind shows `–` or the latency of only its earliest window deliveries; `errors` sums the connections that failed or were closed over all repetitions."
    );
    md
}
