//! Live capture through the library on `lo`, with real sockets: the
//! `PacketSource` contract the CLI and the dashboard rely on. Needs root (or
//! CAP_NET_RAW); skipped with a note otherwise. The full scenario with nginx
//! is tests/live/run.sh.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wstap::capture::{Next, PacketSource, live};
use wstap::cli::Args;
use wstap::record::{Outcome, Record};
use wstap::sink::Collect;

fn can_capture(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped, live capture needs root");
    }
    root
}

fn args(filter: &str, duration: Option<f64>) -> Args {
    Args {
        interface: Some("lo".into()),
        snaplen: 262_144,
        duration,
        expression: filter.split(' ').map(String::from).collect(),
        // The capture opens in this test process: keep root for the next
        // test (wstap itself drops to an unprivileged user by default).
        user: Some("root".into()),
        ..Args::default()
    }
}

/// The live capture part of the checked configuration.
fn live_config(a: &Args) -> live::LiveConfig {
    match wstap::config::Config::from_args(a).unwrap().input {
        wstap::capture::Input::Live(c) => c,
        other => panic!("not a live capture: {other:?}"),
    }
}

fn wall_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

#[test]
fn quiet_link_gives_idle_ticks_on_the_wall_clock_then_end_on_stop() {
    idle_ticks_then_end(None);
}

/// With several kernel rings, the quiet rings' heartbeats (every 20 ms) do
/// not keep the idle ticks away.
#[test]
fn quiet_link_gives_idle_ticks_with_three_rings_too() {
    idle_ticks_then_end(Some(3));
}

fn idle_ticks_then_end(fanout: Option<usize>) {
    if !can_capture("idle") {
        return;
    }
    // A capture that never gives an idle tick blocks in next_packet: fail
    // the run rather than hang it (the tests here take seconds).
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("tests/live.rs: still running after 60 s (a next_packet that never returns?)");
        std::process::exit(101);
    });
    // Nothing talks to port 9 (discard) here.
    let mut src = live::open(&live_config(&Args { fanout, ..args("tcp port 9", None) })).unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        match src.next_packet().unwrap() {
            Next::Idle(ts) => {
                assert!((ts.0 - wall_us()).abs() < 1_000_000, "idle time is the wall clock");
                assert!(ts.0 >= last, "idle time never goes back");
                last = ts.0;
            }
            _ => panic!("expected an idle tick"),
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "idle ticks come well within a second");
    }
    let stopper = src.stopper();
    stopper.stop();
    let t0 = Instant::now();
    loop {
        match src.next_packet().unwrap() {
            Next::End => break,
            Next::Idle(_) => assert!(t0.elapsed() < Duration::from_secs(2), "stop not honoured"),
            _ => panic!("unexpected packet"),
        }
    }
    let st = src.stats().expect("live capture has statistics");
    assert_eq!((st.received, st.dropped_kernel, st.dropped_queue), (Some(0), Some(0), Some(0)));
    assert_eq!(st.rings, fanout.map(|n| vec![0; n]), "packets per ring, with --fanout");
    assert_eq!(src.end_reason(), Some(live::EndReason::Stopped));
}

/// A WebSocket handshake, one message each way and a clean close, over
/// real loopback sockets.
fn websocket_exchange(listener: TcpListener) {
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut req = Vec::new();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        .unwrap();
        // Client text frame (masked, "hi": 2 + 4 + 2 bytes), then echo it.
        let mut f = [0u8; 8];
        s.read_exact(&mut f).unwrap();
        s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
        // Client close (masked, code 1000: 2 + 4 + 2 bytes), answer it.
        s.read_exact(&mut f).unwrap();
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        let _ = s.read(&mut buf);
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        resp.extend_from_slice(&buf[..n]);
    }
    let mask = [1u8, 2, 3, 4];
    let hi = [b'h' ^ mask[0], b'i' ^ mask[1]];
    c.write_all(&[0x81, 0x82, mask[0], mask[1], mask[2], mask[3], hi[0], hi[1]]).unwrap();
    let mut echo = [0u8; 4];
    c.read_exact(&mut echo).unwrap();
    let code = [0x03 ^ mask[0], 0xe8 ^ mask[1]];
    c.write_all(&[0x88, 0x82, mask[0], mask[1], mask[2], mask[3], code[0], code[1]]).unwrap();
    c.read_exact(&mut echo).unwrap();
    drop(c);
    server.join().unwrap();
}

#[test]
fn websocket_over_loopback_is_diagnosed_live() {
    if !can_capture("websocket") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let a = args(&format!("tcp port {}", addr.port()), Some(1.5));
    let mut pipeline = wstap::app::build_pipeline(&a).unwrap();
    let mut src = live::open(&live_config(&a)).unwrap();
    let traffic = std::thread::spawn(move || websocket_exchange(listener));
    let mut sink = Collect::default();
    let t0 = Instant::now();
    pipeline.run(&mut src, &mut sink).unwrap();
    traffic.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(4), "--duration 1.5 took {:?}", t0.elapsed());
    assert_eq!(src.end_reason(), Some(live::EndReason::Duration));

    let hs: Vec<_> = sink.0.iter().filter_map(|r| if let Record::Handshake(h) = r { Some(h) } else { None }).collect();
    assert_eq!(hs.len(), 1, "{:?}", sink.0);
    assert_eq!(hs[0].outcome, Outcome::Upgraded);
    assert_eq!(hs[0].path, "/chat");
    let sessions = sink.0.iter().filter(|r| matches!(r, Record::Session(_))).count();
    assert_eq!(sessions, 1);
    let Some(Record::Summary(s)) = sink.0.last() else { panic!("no summary last") };
    let cap = s.capture.as_ref().expect("capture statistics in the summary");
    assert_eq!(cap.received, Some(s.packets), "every packet received was analysed, each once");
    assert_eq!((cap.dropped_kernel, cap.dropped_queue), (Some(0), Some(0)));
    assert!(s.packets >= 10, "{}", s.packets);
}
