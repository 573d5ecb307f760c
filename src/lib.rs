//! wstap: a packet-level analyzer for WebSockets behind reverse proxies.
//!
//! The pipeline, one module per stage:
//! [`capture`] -> [`decode`] -> [`flow`] (reassembly) -> [`proto`] (HTTP,
//! WebSocket) -> [`event`] -> [`correlate`] (hop pairing, sessions) ->
//! [`facts`] -> [`detect`] -> [`record`] -> [`sink`]; [`analysis`] joins
//! correlation, detectors and the time order of records.

pub mod analysis;
pub mod app;
pub mod budget;
pub mod capture;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod decode;
pub mod detect;
pub mod error;
pub mod escape;
pub mod event;
pub mod facts;
pub mod flow;
pub mod generate;
pub mod latency;
pub mod pipeline;
pub mod proto;
pub mod record;
pub mod redact;
pub mod runtime;
pub mod shard;
pub mod signal;
pub mod sink;
pub mod time;
pub mod tui;

#[cfg(test)]
mod sizes {
    #[test]
    fn print_sizes() {
        eprintln!("Conn {}", std::mem::size_of::<crate::flow::conn::Conn>());
        eprintln!("HttpConn {}", std::mem::size_of::<crate::proto::http::HttpConn>());
        eprintln!("FrameParser {}", std::mem::size_of::<crate::proto::ws::FrameParser>());
        eprintln!("Event {}", std::mem::size_of::<crate::event::Event>());
        eprintln!("WsStats {}", std::mem::size_of::<crate::correlate::WsStats>());
        eprintln!("Assembler {}", std::mem::size_of::<crate::flow::assembler::Assembler>());
        eprintln!("Txn {}", std::mem::size_of::<crate::correlate::Txn>());
    }
}
