//! Memory is bounded by live flows, not by capture size: the analyzer's
//! state follows the connections that are open and is empty at the end.

mod common;

use wstap::capture::file::FileSource;
use wstap::capture::{Next, PacketSource};
use wstap::cli::Args;

#[test]
fn state_follows_live_connections_and_empties_at_the_end() {
    for name in ["nginx-bench", "nginx-healthy", "nginx-mass-close", "nginx-idle-60", "chain-haproxy-nginx"] {
        let path = common::capture(name);
        let args = Args { read: Some(path.to_string_lossy().into()), ..Args::default() };
        let mut p = wstap::app::build_pipeline(&args).unwrap();
        let mut src = FileSource::open(path.to_str().unwrap(), None).unwrap();
        let lt = src.linktype();
        let mut max_ratio = 0.0f64;
        let mut sink = wstap::sink::Collect::default();
        while let Next::Packet(pk) = src.next_packet().unwrap() {
            let missing = pk.missing();
            p.packet(lt, pk.ts, pk.data, missing);
            p.drain_to(&mut sink).unwrap();
            let live = p.flows.live().max(1) as f64;
            let (conns, txns, ws, sessions) = p.analysis.correlation.live_state();
            assert!(conns <= p.flows.live(), "{name}: analyzer knows more connections than are live");
            assert!(ws <= p.flows.live() + 16, "{name}: upgraded state outlives its connections");
            max_ratio = max_ratio.max((txns + sessions) as f64 / live);
        }
        assert!(max_ratio <= 4.0, "{name}: {max_ratio} requests+sessions per live connection");
        p.finish();
        assert_eq!(p.analysis.correlation.live_state(), (0, 0, 0, 0), "{name}: state left after the end");
        assert_eq!(p.flows.live(), 0);
    }
}
