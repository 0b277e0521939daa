//! The `switchboard` command: `switchboard serve [--listen ADDR:PORT] [--config FILE]`,
//! and `switchboard token` to mint an HS256 connection token for `[auth]`.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use switchboard_server::serve::{accept_loop, accept_loop_tls, serve, serve_tls, stop_signal};
use switchboard_server::{Config, Switchboard};

use switchboard_server::memory::Allocator;

/// jemalloc (the `jemalloc` feature, on by default): less memory per idle
/// connection than glibc's malloc, and no growth over repeated crowds
/// (docs/benchmarks.md, "Default allocator: jemalloc").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them); docs/benchmarks.md, "Default
/// allocator: jemalloc" and "What a crowd leaves behind":
/// - one background thread purges unused dirty pages after 1 s (default
///   10 s, and only when the allocator is called) and hands them straight
///   back to the OS (no "muzzy" stage);
/// - slabs of 16 KiB for every size up to 4 KiB (jemalloc's default is the
///   smallest whole number of pages), and 8 KiB blocks (hyper's read and
///   write buffers) eight to a 64 KiB slab instead of one to a slab of
///   their own. jemalloc keeps a descriptor for every slab it ever made, so
///   a crowd of connections leaves bookkeeping behind in proportion to the
///   slabs it needed: after 19,000 SockJS xhr-streaming sessions, 0.36 MiB
///   instead of 0.67;
/// - thread caches of at most 32 blocks per small size (default 200) and 4
///   per large size (default 20): an idle worker keeps what its cache held
///   when the crowd left (0.15 MiB instead of 0.45 after that crowd).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[used]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 167] = b"background_thread:true,max_background_threads:1,\
    dirty_decay_ms:1000,muzzy_decay_ms:0,slab_sizes:1-4096:4|8192-8192:16,\
    tcache_nslots_small_max:32,tcache_nslots_large:4\0";

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
const ALLOCATOR: Allocator = Allocator::Jemalloc;
#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
const ALLOCATOR: Allocator = Allocator::System;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Real-time server: WebSocket endpoints and a pub/sub hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (chat page at /).
    Serve {
        /// Address to listen on (overrides the config file and SWITCHBOARD_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// TOML configuration file; SWITCHBOARD_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print an HS256 connection token (JWT) signed with `[auth] jwt_hs256_secret`.
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// Display name (`name`); the subject is shown when absent.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds (`exp` = now + ttl).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// A topic glob the holder may subscribe to (repeatable; none: no limit).
        #[arg(long)]
        subscribe: Vec<String>,
        /// A topic glob the holder may publish to (repeatable; none: no limit).
        #[arg(long)]
        publish: Vec<String>,
        /// TOML configuration file with the secret; SWITCHBOARD_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (listen, config) = match cli.command {
        Command::Serve { listen, config } => (listen, config),
        Command::Token {
            sub,
            name,
            ttl,
            subscribe,
            publish,
            config,
        } => return token(sub, name, ttl, subscribe, publish, config),
    };
    let mut config = match Config::load(config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    // Config::load checked the files; they are read again here.
    let tls = match switchboard_server::tls::acceptor(&config.tls) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("switchboard: cannot listen on {}: {e}", config.listen);
                return std::process::ExitCode::from(1);
            }
        };
        tracing::info!(
            address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tls = tls.is_some(),
            "listening"
        );
        let stomp_tcp = match config.stomp.tcp_address() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("switchboard: configuration error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        if let Some(dir) = config.stomp.data_dir.as_deref().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("switchboard: stomp.data_dir {}: {e}", dir.display());
                return std::process::ExitCode::from(2);
            }
        }
        let sb = Switchboard::new(config);
        switchboard_server::memory::report_heap_of(ALLOCATOR);
        tokio::spawn(switchboard_server::memory::return_freed_memory(
            sb.shutdown().clone(),
            ALLOCATOR,
        ));
        if let (Some(broker), Some((address, required))) = (sb.stomp(), stomp_tcp) {
            match tokio::net::TcpListener::bind(address).await {
                Ok(l) => match tls.as_ref().filter(|_| sb.state().config.stomp.tcp_tls) {
                    Some(acceptor) => {
                        tracing::info!(%address, "STOMP over TLS (stomp+ssl)");
                        tokio::spawn(switchboard_server::tls::serve_stomp_tls(
                            l,
                            broker.clone(),
                            sb.shutdown().clone(),
                            switchboard_server::tls::without_alpn(acceptor),
                        ));
                    }
                    None => {
                        tracing::info!(%address, "STOMP over TCP");
                        tokio::spawn(switchboard_server::endpoints::stomp::serve_tcp(
                            l,
                            broker.clone(),
                            sb.shutdown().clone(),
                        ));
                    }
                },
                Err(e) if required => {
                    eprintln!("switchboard: cannot listen for STOMP on {address}: {e}");
                    return std::process::ExitCode::from(1);
                }
                Err(e) => {
                    tracing::warn!(%address, error = %e, "no STOMP over TCP (set stomp.tcp_listen)")
                }
            }
        }
        if let (Some(address), Some(_)) = (sb.state().config.stomp.web_stomp_listen, sb.stomp()) {
            match tokio::net::TcpListener::bind(address).await {
                Ok(l) => {
                    tracing::info!(%address, tls = tls.is_some(), "STOMP in the Web-STOMP layout (/ws, /stomp)");
                    let router = switchboard_server::endpoints::stomp::web_stomp_router(sb.state());
                    let shutdown = sb.shutdown().clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let stop = shutdown.clone();
                        let guard = stop.register();
                        let signal = std::future::poll_fn(move |cx| {
                            if guard.poll_shutdown(cx) {
                                std::task::Poll::Ready(())
                            } else {
                                std::task::Poll::Pending
                            }
                        });
                        match tls {
                            Some(tls) => accept_loop_tls(l, router, tls, &shutdown, signal).await,
                            None => accept_loop(l, router, &shutdown, signal).await,
                        }
                    });
                }
                Err(e) => {
                    eprintln!("switchboard: cannot listen for Web-STOMP on {address}: {e}");
                    return std::process::ExitCode::from(1);
                }
            }
        }
        let served = match tls {
            Some(tls) => serve_tls(listener, sb, tls, stop_signal()).await,
            None => serve(listener, sb, stop_signal()).await,
        };
        match served {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: {e}");
                std::process::ExitCode::from(1)
            }
        }
    })
}

/// `switchboard token`: mints a token with the configured HS256 secret.
fn token(
    sub: String,
    name: Option<String>,
    ttl: u64,
    subscribe: Vec<String>,
    publish: Vec<String>,
    config: Option<PathBuf>,
) -> std::process::ExitCode {
    let config = match Config::load(config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let Some(secret) = config.auth.jwt_hs256_secret.as_deref() else {
        eprintln!("switchboard: no [auth] jwt_hs256_secret (SWITCHBOARD_AUTH__JWT_HS256_SECRET) to sign with");
        return std::process::ExitCode::from(2);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = switchboard_auth::Claims {
        sub: Some(sub),
        name,
        iss: config.auth.issuer.clone(),
        aud: config.auth.audience.clone(),
        exp: Some(now + ttl),
        nbf: None,
        iat: Some(now),
        subscribe: (!subscribe.is_empty()).then_some(subscribe),
        publish: (!publish.is_empty()).then_some(publish),
    };
    println!(
        "{}",
        switchboard_auth::mint_hs256(secret.as_bytes(), &claims)
    );
    std::process::ExitCode::SUCCESS
}
