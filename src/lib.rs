//! ferrogate: an LLM gateway. One engine ([`gateway::Gateway`]) behind two front doors: the HTTP
//! server in [`server`] and the Python bindings in `python` (behind the `python` feature).

pub mod bench;
pub mod cli;
pub mod compat;
pub mod config;
pub mod error;
pub mod gateway;
pub mod memo;
pub mod mock;
pub mod plugins;
pub mod providers;
pub mod router;
pub mod schema;
pub mod secret;
pub mod server;
pub mod sse;
pub mod telemetry;

#[cfg(feature = "python")]
mod python;

pub use error::{ErrorKind, GatewayError};
pub use gateway::Gateway;
