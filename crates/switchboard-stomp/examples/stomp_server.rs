//! A STOMP broker on TCP port 61613 (the usual STOMP port), with one user
//! `guest` / `guest` and anonymous connections allowed, as a development
//! ActiveMQ or RabbitMQ would be.
//!
//! ```text
//! cargo run -p switchboard-stomp --example stomp_server
//! python3 -c 'import stomp; c = stomp.Connection([("127.0.0.1", 61613)]); \
//!     c.connect("guest", "guest", wait=True); c.send("/queue/test", "hi"); c.disconnect()'
//! ```

use switchboard_hub::{Hub, HubConfig};
use switchboard_stomp::{serve_tcp, Broker, StaticUsers, StompConfig};
use switchboard_transport::Registry;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = StompConfig::default().with_authenticator(
        StaticUsers::new()
            .user("guest", "guest")
            .allow_anonymous(true),
    );
    let broker = Broker::new(Hub::new(HubConfig::default()), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:61613").await?;
    tracing::info!("STOMP on {}", listener.local_addr()?);
    let registry = Registry::new();
    let shutdown = registry.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.trigger();
    });
    serve_tcp(listener, broker, registry.clone()).await?;
    registry.wait_idle(std::time::Duration::from_secs(5)).await;
    Ok(())
}
