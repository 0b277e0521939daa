//! Tokio transports for Switchboard: they move bytes between sockets or HTTP
//! requests and the sans-IO protocol cores, run the timers, and apply
//! back-pressure. Protocol rules live in the cores, routing in the hub.

pub mod buffer_pool;
pub mod engineio;
pub mod prefixed;
pub mod registry;
pub mod sockjs;
pub use switchboard_hub::tables;
pub mod websocket;
pub mod write_queue;

pub use engineio::{
    Cors, EngineHandler, EngineIo, EngineIoConfig, EngineSocket, RequestFilter, SocketClosed,
};
pub use prefixed::{poll_read_into, upgraded_tcp, OneRequestParts, Prefixed};
pub use registry::{ConnectionGuard, Registry, Shutdown};
pub use sockjs::{SockJs, SockJsConn, SockJsHandler};
pub use switchboard_hub::Shrink;
pub use websocket::{drive, Driver, DriverConfig, WsHandler, DISCONNECTED_BY_SERVER};
