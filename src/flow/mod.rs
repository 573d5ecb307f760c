//! Connections: TCP state for a passive observer, per-direction reassembly,
//! and the flow table that owns them and expires them by packet time.

pub mod assembler;
pub mod conn;
pub mod key;
pub mod seq;
pub mod table;

pub use key::{Endpoint, FlowKey};
pub use table::{FlowTable, Limits};
