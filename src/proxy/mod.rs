//! The data path: accepts client connections and forwards requests along the published table.
//! It reads the state; it never builds it.

pub mod balance;
pub mod body;
pub mod conn;
pub mod forward;
pub mod handler;
pub mod lines;
pub mod observe;
pub mod server;
pub mod tunnel;
pub mod upstream;

pub use handler::Proxy;
