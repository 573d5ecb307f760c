//! Secrets never reach any output unless --no-redact: Cookie,
//! Authorization, token-like headers, query-string tokens, bearer tokens in
//! Sec-WebSocket-Protocol; in text, -vv, JSON, findings' evidence.

mod common;

use common::*;

const SECRETS: &[&str] = &["SECRETQUERY", "SECRETCOOKIE", "SECRETBEARER", "SECRETAPIKEY", "SECRETPROTO"];

fn capture_with_secrets() -> std::path::PathBuf {
    let mut b = PcapBuilder::default();
    let (mut c, mut p) = b.connect(([10, 0, 0, 7], 50000), ([10, 0, 0, 1], 80));
    let req = "GET /ws?token=SECRETQUERY&room=1 HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
               Sec-WebSocket-Protocol: v1, authorization.bearer.SECRETPROTOxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\
               Cookie: session=SECRETCOOKIE; theme=dark\r\nAuthorization: Bearer SECRETBEARER\r\nX-Api-Key: SECRETAPIKEY\r\n\r\n";
    b.send(&mut c, &p, req.as_bytes());
    // The proxy forwards it over HTTP/1.0 without the upgrade headers: a
    // finding whose evidence carries every header of both hops.
    let (mut u, mut s) = b.connect(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 3000));
    let fwd = "GET /ws?token=SECRETQUERY&room=1 HTTP/1.0\r\nHost: backend\r\nConnection: close\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
               Cookie: session=SECRETCOOKIE; theme=dark\r\nAuthorization: Bearer SECRETBEARER\r\nX-Api-Key: SECRETAPIKEY\r\n\
               X-Forwarded-For: 10.0.0.7\r\n\r\n";
    b.send(&mut u, &s, fwd.as_bytes());
    b.send(&mut s, &u, b"HTTP/1.1 400 Bad Request\r\nSet-Cookie: sid=SECRETCOOKIE\r\nContent-Length: 0\r\n\r\n");
    b.fin(&mut s, &u);
    b.send(&mut p, &c, b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n");
    b.fin(&mut c, &p);
    let path = std::env::temp_dir().join(format!("wstap-secrets-{}.pcap", std::process::id()));
    b.write(&path);
    path
}

#[test]
fn no_output_carries_a_secret() {
    let p = capture_with_secrets();
    let f = p.to_str().unwrap();
    for args in [
        vec!["-r", f],
        vec!["-r", f, "-vv"],
        vec!["-r", f, "--json"],
        vec!["-r", f, "--json", "-vv"],
        vec!["-r", f, "-A"],
    ] {
        let out = wstap(&args);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for s in SECRETS {
            assert!(!text.contains(s), "{args:?} leaked {s}:\n{text}");
        }
        assert!(text.contains("REDACTED"), "{args:?}");
    }
    // -X: the heads in hex, read back into bytes (a secret could straddle
    // two rows of the ASCII column).
    let out = wstap(&["-r", f, "-X"]);
    assert!(out.status.success());
    let mut bytes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("\t0x")) {
        let hex = &line[10..50];
        for word in hex.split_whitespace() {
            bytes.extend((0..word.len()).step_by(2).map(|i| u8::from_str_radix(&word[i..i + 2], 16).unwrap()));
        }
    }
    let heads = String::from_utf8_lossy(&bytes);
    assert!(heads.contains("Cookie: session=REDACTED") && heads.contains("X-Forwarded-For: 10.0.0.7"), "{heads}");
    for s in SECRETS {
        assert!(!heads.contains(s), "-X leaked {s}:\n{heads}");
    }
    // The finding is there, with its evidence, just masked.
    let rs = records_of(&p, &[]);
    let f0 = of_type(&rs, "finding").into_iter().find(|x| x["kind"] == "upgrade-stripped").expect("finding");
    let req = f0["detail"]["hops"]["client"]["request"].as_array().unwrap();
    assert!(req.iter().any(|h| h[0] == "Cookie" && h[1] == "session=REDACTED; theme=REDACTED"));
    assert!(req.iter().any(|h| h[0] == "Authorization" && h[1] == "Bearer REDACTED"));
    assert_eq!(f0["detail"]["hops"]["client"]["request_line"], "GET /ws?token=REDACTED&room=1 HTTP/1.1");
    // --no-redact shows them.
    let out = wstap(&["-r", f, "-vv", "--no-redact"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_file(&p);
    assert!(SECRETS.iter().all(|s| text.contains(s)), "{text}");
}
