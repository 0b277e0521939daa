//! The Switchboard server: every endpoint as an axum [`Router`](axum::Router)
//! that Rust applications mount, and the pieces of the `switchboard` binary
//! (configuration, accept loop, graceful shutdown).
//!
//! A message's way: socket → `switchboard_transport` driver →
//! `switchboard_websocket` core → endpoint handler (here) → `switchboard_hub` →
//! the subscribers' handlers → their cores → their sockets.

pub mod app;
pub mod auth;
pub mod config;
pub mod endpoints;
pub mod http1;
pub mod memory;
pub mod metrics;
pub mod nodes;
pub mod permissions;
pub mod serve;
pub mod tls;
pub mod upgrade;
pub mod wire;

pub use app::{AppState, Switchboard};
pub use config::Config;
