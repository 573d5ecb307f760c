//! What a user reads in text output: counts agree with their nouns, one
//! arrow style, and "client not seen" only when the client's connection
//! is not in the capture.

mod common;

use common::*;

fn text_of(name: &str, extra: &[&str]) -> String {
    let file = capture(name);
    let keys = file.with_extension("keys");
    let mut args = vec!["-r", file.to_str().unwrap()];
    let k = keys.to_str().unwrap().to_string();
    if keys.exists() {
        args.extend(["--keylog", &k]);
    }
    args.extend_from_slice(extra);
    let out = wstap(&args);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn all_captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".pcap").map(str::to_string))
        .filter(|n| !n.contains("bench"))
        .collect();
    v.sort();
    v
}

/// "1 sessions", "1 connections": a count of one takes the singular.
#[test]
fn a_count_of_one_takes_the_singular() {
    let plural_after_one = regex_lite("1 PLURAL");
    let mut ones = 0;
    for name in all_captures() {
        for line in text_of(&name, &["-v"]).lines() {
            assert!(!plural_after_one(line), "{name}: {line}");
            ones += line.matches("1 session;").count() + line.matches(" 1 frame to server").count();
        }
    }
    assert!(ones > 0, "some capture has a single session or frame, said in the singular");
    let t = text_of("nginx-backend-crash", &[]);
    assert!(
        t.contains(
            "\n1 WebSocket handshake: 1 upgraded, 0 rejected, 0 failed, 0 incomplete; 1 session; 2 HTTP requests\n"
        ),
        "{t}"
    );
}

/// Flows are written `A->B` everywhere (the `-v` lines too, sender
/// first); nothing else in text output is an arrow.
#[test]
fn one_arrow_style() {
    for name in all_captures() {
        // (A fix quotes the proxy's configuration as it is written.)
        for line in text_of(&name, &["-v"]).lines().filter(|l| !l.starts_with("    ")) {
            for other in [" > ", " => ", "→", "⇒", ">/", "<,"] {
                assert!(!line.contains(other), "{name}: {other:?} in {line}");
            }
        }
    }
    let t = text_of("nginx-healthy", &["-v"]);
    assert!(t.contains("127.0.0.1:18081->127.0.0.1:40830: HTTP HTTP/1.1 101"), "a response is written sender first");
    assert!(t.contains("5 frames to server, 5 to client"), "{t}");
}

/// "client not seen" when the one hop in view is a proxy's forward (what
/// a capture of the upstream leg alone shows); never when the client's
/// connection is there, plain or TLS, or when the capture is of a client
/// talking to a server directly.
#[test]
fn client_not_seen_only_when_true() {
    let t = text_of("nginx-http10-upstream-only", &[]);
    let hs: Vec<&str> = t.lines().filter(|l| l.contains(" handshake #")).collect();
    assert!(!hs.is_empty());
    for l in hs {
        assert!(l.contains("| client not seen | upstream 127.0.0.1:"), "{l}");
    }
    // Its findings label that hop the same way.
    assert!(t.lines().any(|l| l.starts_with("  upstream 127.0.0.1:") && l.contains("GET /ws HTTP/1.0")), "{t}");
    assert!(!t.lines().any(|l| l.starts_with("  client   127.")), "{t}");
    for name in all_captures() {
        if name == "nginx-http10-upstream-only" {
            continue;
        }
        let rs = records(&name);
        let front_seen = of_type(&rs, "handshake").iter().all(|h| !h["client"].is_null());
        if front_seen {
            let t = text_of(&name, &[]);
            let bad: Vec<&str> = t.lines().filter(|l| l.contains("client not seen")).collect();
            assert!(bad.is_empty(), "{name}: the client hop is in the capture: {bad:?}");
        }
    }
    // A client talking to its server directly: one hop, and it is the client's.
    let t = text_of("direct-bad-accept", &[]);
    assert!(t.lines().any(|l| l.contains(" handshake #") && l.contains("| client 127.0.0.1:")), "{t}");
}

/// A tiny matcher for the one pattern above (no regex crate for a test):
/// "1 " after a non-digit (or the line start), then one of the words.
fn regex_lite(_: &str) -> impl Fn(&str) -> bool {
    const WORDS: &[&str] = &[
        "packets",
        "bytes",
        "connections",
        "WebSocket handshakes",
        "sessions",
        "HTTP requests",
        "gaps",
        "frames",
        "streams",
        "records",
        "secrets",
        "lines",
        "findings",
    ];
    |line: &str| {
        let b = line.as_bytes();
        line.match_indices("1 ").any(|(i, _)| {
            let before_ok = i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.');
            let rest = &line[i + 2..];
            before_ok
                && WORDS
                    .iter()
                    .any(|w| rest.starts_with(w) && rest[w.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric()))
        })
    }
}
