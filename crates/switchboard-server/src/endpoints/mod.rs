//! HTTP and WebSocket endpoints, one module each.

pub mod api;
pub mod chat;
pub mod echo;
pub mod envelope;
pub mod health;
pub mod page;
pub mod socketio;
pub mod sockjs;
pub mod stomp;
pub mod topic;
