//! The data path: accepts client connections and forwards requests along the published table.
//! It reads the state; it never builds it.

pub mod attempt;
pub mod balance;
pub mod body;
pub mod conn;
pub mod decide;
pub mod error;
pub mod filters;
pub mod forward;
pub mod guard;
pub mod handler;
pub mod lines;
pub mod mirror;
pub mod observe;
pub mod proxy_protocol;
pub mod respond;
pub mod server;
pub mod tunnel;
pub mod upstream;

pub use handler::Proxy;
