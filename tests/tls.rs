//! TLS hops with session keys (docs/tls.md): the real TLS captures
//! (captures/record.sh: nginx and haproxy fronts, keys from node, curl,
//! chromium, openssl and haproxy itself) decrypted with their key logs,
//! against what the real clients saw and against tshark; keys from pcapng
//! Decryption Secrets Blocks; the fallback without keys; bad input.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// (capture, TLS front port, errors expected with the keys).
const TLS: &[(&str, u16, &[&str])] = &[
    ("nginx-tls13", 18401, &[]),
    ("nginx-tls12", 18402, &[]),
    ("nginx-tls-stripped", 18403, &["upgrade-stripped", "upgrade-stripped"]),
    ("nginx-tls-idle", 18404, &["idle-timeout-close"]),
    ("haproxy-tls", 18405, &[]),
    ("haproxy-tls-idle", 18406, &["idle-timeout-close"]),
    ("haproxy-tls-stripped", 18407, &["upgrade-stripped", "upgrade-stripped"]),
];

fn keys(name: &str) -> String {
    root().join("captures").join(format!("{name}.keys")).to_str().unwrap().to_string()
}

fn with_keys(name: &str, extra: &[&str]) -> Vec<Value> {
    let k = keys(name);
    let mut args = vec!["--keylog", k.as_str()];
    args.extend_from_slice(extra);
    records_of(&capture(name), &args)
}

#[test]
fn every_tls_capture_decrypted_gets_its_diagnosis_on_both_hops() {
    let mut failures = Vec::new();
    for (name, port, errors) in TLS {
        let rs = with_keys(name, &[]);
        let mut want: Vec<String> = errors.iter().map(|s| s.to_string()).collect();
        want.sort();
        let got = kinds(&rs, "error");
        if got != want {
            failures.push(format!("{name}: errors {got:?}, expected {want:?}"));
        }
        if errors.is_empty() && !kinds(&rs, "warning").is_empty() {
            failures.push(format!("{name}: warnings {:?} on a healthy capture", kinds(&rs, "warning")));
        }
        let hs = of_type(&rs, "handshake");
        if hs.is_empty() {
            failures.push(format!("{name}: no handshake"));
        }
        for h in hs {
            let c = &h["client"];
            // The TLS hop is read like a plaintext one and paired by key.
            let ok = c["tls"]["decrypted"] == true
                && c["encrypted"].is_null()
                && c["flow"].as_str().is_some_and(|f| f.ends_with(&format!(":{port}")))
                && h["paired_by"] == "key"
                && c["key"] == h["upstream"]["key"]
                && c["status"].is_u64()
                && c["tls"]["version"].as_str().is_some_and(|v| v.starts_with("TLS 1."))
                && c["tls"]["cipher"].as_str().is_some_and(|v| v.starts_with("TLS_"))
                && c["sni"] == "localhost";
            if !ok {
                failures.push(format!("{name}: handshake not read on its TLS hop: {h}"));
            }
        }
        let tls = &summary(&rs)["tls"];
        if tls["decrypted"].as_u64().unwrap_or(0) == 0 || tls["auth_failures"] != 0 {
            failures.push(format!("{name}: summary tls {tls}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn decrypted_statuses_and_closes_match_what_the_clients_saw() {
    for (name, ..) in TLS {
        let log = client_log(name);
        let mut saw: Vec<u64> =
            log.iter().filter(|e| e["event"] == "handshake").filter_map(|e| e["status"].as_u64()).collect();
        saw.sort();
        let rs = with_keys(name, &[]);
        let mut got: Vec<u64> =
            of_type(&rs, "handshake").iter().filter_map(|h| h["client"]["status"].as_u64()).collect();
        got.sort();
        assert_eq!(got, saw, "{name}: statuses on the decrypted client hop vs the clients' own");
        // Sessions that opened (a rejected upgrade closes too, with 1006).
        let opened: Vec<(&Value, &Value)> = log
            .iter()
            .filter(|e| e["event"] == "handshake" && e["status"] == 101)
            .map(|e| (&e["group"], &e["session"]))
            .collect();
        let mut closes: Vec<Option<u64>> = log
            .iter()
            .filter(|e| e["event"] == "closed" && opened.contains(&(&e["group"], &e["session"])))
            .map(|e| e["code"].as_u64().filter(|&c| c != 1006 && c != 1005))
            .collect();
        closes.sort();
        let mut sessions: Vec<Option<u64>> =
            of_type(&rs, "session").iter().map(|s| s["close"]["code"].as_u64()).collect();
        sessions.sort();
        assert_eq!(sessions, closes, "{name}: close codes");
    }
}

#[test]
fn tls13_key_update_and_every_client_is_decrypted() {
    let rs = with_keys("nginx-tls13", &["-v"]);
    let t = &summary(&rs)["tls"];
    assert_eq!(t["connections"], t["decrypted"], "{t}");
    assert!(t["key_updates"].as_u64().unwrap() >= 1, "openssl's KeyUpdate: {t}");
    // The request after the KeyUpdate was read on the TLS hop.
    assert!(
        of_type(&rs, "http")
            .iter()
            .any(|m| m["target"] == "/api/after-keyupdate" && m["flow"].as_str().unwrap().ends_with(":18401")),
        "the request sent after the KeyUpdate"
    );
    // Suites seen across the captures: both AES-GCM sizes, ChaCha20, TLS 1.2 RSA and ECDHE.
    let mut ciphers = std::collections::BTreeSet::new();
    for (name, ..) in TLS {
        for h in of_type(&with_keys(name, &[]), "handshake") {
            ciphers.insert(h["client"]["tls"]["cipher"].as_str().unwrap().to_string());
        }
    }
    for c in [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ] {
        assert!(ciphers.contains(c), "{c} not in {ciphers:?}");
    }
}

/// TLS 1.2 with and without the extended master secret (RFC 7627): the
/// CLIENT_RANDOM line carries the master secret either way. tshark says
/// which ServerHellos had the extension.
#[test]
fn tls12_with_and_without_extended_master_secret() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tshark is a test dependency (scripts/deps.sh)");
        return;
    }
    for (name, ems) in [("nginx-tls12", false), ("haproxy-tls", true)] {
        let out = Command::new("tshark")
            .args([
                "-r",
                capture(name).to_str().unwrap(),
                "-Y",
                "tls.handshake.type==2 && !tls.handshake.extensions.supported_version",
            ])
            .args(["-T", "fields", "-e", "tls.handshake.extension.type"])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let hellos: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        assert!(!hellos.is_empty(), "{name}: TLS 1.2 ServerHellos");
        for h in &hellos {
            assert_eq!(h.split(',').any(|t| t == "23"), ems, "{name}: extended_master_secret in {h}");
        }
        let rs = with_keys(name, &[]);
        let tls12 = of_type(&rs, "handshake").iter().filter(|h| h["client"]["tls"]["version"] == "TLS 1.2").count();
        assert!(tls12 >= 1, "{name}");
        assert!(of_type(&rs, "handshake").iter().all(|h| h["client"]["tls"]["decrypted"] == true));
    }
}

#[test]
fn without_keys_the_hop_is_inferred_and_the_reason_given() {
    for (name, ..) in TLS {
        let rs = records(name);
        let t = &summary(&rs)["tls"];
        assert_eq!(t["decrypted"], 0, "{name}");
        assert_eq!(t["not_decrypted"]["no-key"], t["connections"], "{name}: {t}");
        for h in of_type(&rs, "handshake") {
            let c = &h["client"];
            if c.is_null() {
                continue;
            }
            assert_eq!(c["encrypted"], true, "{name}: {h}");
            assert_eq!(c["tls"]["reason"], "no-key", "{name}: {h}");
            assert_eq!(c["tls"]["decrypted"], false);
        }
    }
    // The stripped front is then only inferred from the upstream side.
    let rs = records("nginx-tls-stripped");
    assert!(kinds(&rs, "error").contains(&"upgrade-headers-missing".to_string()));
    // And the text says so.
    let out = wstap(&["-r", capture("nginx-tls13").to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("not decrypted: no-key 8; those hops are inferred"), "{text}");
}

/// Without keys, each forwarded upgrade is paired with the TLS connection
/// whose client sent its (encrypted) request just before (docs/design.md:
/// turns), one to one, with a pair confidence; and those pairs are the ones
/// the keys prove. TLS 1.3's session tickets, sent while the proxy is
/// forwarding, are not taken for the answer. On nginx-tls-idle two
/// handshakes once picked the same TLS connection.
#[test]
fn without_keys_tls_hops_pair_one_to_one_as_the_keys_prove() {
    let pairs = |rs: &[Value]| -> Vec<(String, String)> {
        of_type(rs, "handshake")
            .iter()
            .map(|h| {
                let up = if h["upstream"].is_null() { &h["client"] } else { &h["upstream"] };
                (
                    h["client"]["flow"].as_str().unwrap_or("-").to_string(),
                    up["flow"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    for (name, port, _) in TLS {
        let rs = records(name);
        let hs = of_type(&rs, "handshake");
        assert!(!hs.is_empty(), "{name}");
        let mut clients = std::collections::HashSet::new();
        for h in &hs {
            let c = &h["client"];
            assert_eq!(c["encrypted"], true, "{name}: the client hop is the TLS connection: {h}");
            assert!(c["flow"].as_str().unwrap().ends_with(&format!(":{port}")), "{name}: {h}");
            assert!(c["request_ts"].is_f64(), "{name}: paired by the client's turn: {h}");
            assert!(["high", "medium"].contains(&h["pair_confidence"].as_str().unwrap_or("")), "{name}: {h}");
            assert!(h["upstream"]["flow"].is_string(), "{name}: {h}");
            assert!(
                clients.insert(c["flow"].as_str().unwrap().to_string()),
                "{name}: a TLS connection paired twice: {h}"
            );
        }
        assert_eq!(pairs(&rs), pairs(&with_keys(name, &[])), "{name}: the pairs the keys prove");
    }
    let rs = records("nginx-tls-idle");
    assert_eq!(of_type(&rs, "handshake").len(), 2);
    assert_eq!(kinds(&rs, "error"), vec!["idle-timeout-close"]);
}

/// tshark, given the same key log, is the conformance peer: the HTTP
/// requests and responses wstap reads on both hops equal tshark's.
#[test]
fn decrypted_messages_equal_tsharks() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tshark is a test dependency (scripts/deps.sh)");
        eprintln!("tshark not installed: skipped");
        return;
    }
    for (name, port, _) in TLS {
        let backend = client_backend(name);
        let out = Command::new("tshark")
            .args(["-r", capture(name).to_str().unwrap(), "-o", &format!("tls.keylog_file:{}", keys(name))])
            .args(["-d", &format!("tcp.port=={port},tls"), "-d", &format!("tls.port=={port},http")])
            .args(["-d", &format!("tcp.port=={backend},http")])
            .args(["-Y", "http.request or http.response", "-T", "fields", "-E", "separator=|"])
            .args(["-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"])
            .args(["-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code"])
            .stderr(Stdio::null())
            .output()
            .expect("tshark runs");
        let mut theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                let (src, dst) = (format!("{}:{}", f[0], f[1]), format!("{}:{}", f[2], f[3]));
                if !f[4].is_empty() {
                    format!("{src}->{dst} request {} {}", f[4], f[5])
                } else {
                    format!("{dst}->{src} response {}", f[6])
                }
            })
            .collect();
        theirs.sort();
        let rs = with_keys(name, &["-v", "--no-redact"]);
        let mut ours: Vec<String> = of_type(&rs, "http")
            .iter()
            .map(|m| match m["dir"].as_str().unwrap() {
                "request" => format!(
                    "{} request {} {}",
                    m["flow"].as_str().unwrap(),
                    m["method"].as_str().unwrap(),
                    m["target"].as_str().unwrap()
                ),
                _ => format!("{} response {}", m["flow"].as_str().unwrap(), m["status"]),
            })
            .collect();
        ours.sort();
        assert!(theirs.len() >= 4, "{name}: tshark decrypted nothing: {theirs:?}");
        assert!(ours.iter().any(|l| l.contains(&format!(":{port} request"))), "{name}: no TLS-hop request");
        assert_eq!(ours, theirs, "{name}: wstap vs tshark -o tls.keylog_file");
    }
}

fn client_backend(name: &str) -> u16 {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("captures/manifest.json")).unwrap()).unwrap();
    let e = m.as_array().unwrap().iter().find(|e| e["name"] == name).expect("in the manifest");
    e["upstreams"][0].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap()
}

/// A classic pcap as pcapng (SHB, IDB, optional DSB, EPBs), as editcap
/// --inject-secrets writes it; `damage` cuts a block's length mid-file.
fn to_pcapng(pcap: &[u8], secrets: Option<&[u8]>, damage_at_packet: Option<usize>) -> Vec<u8> {
    let block = |ty: u32, body: &[u8]| {
        let mut b = body.to_vec();
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        let len = (b.len() + 12) as u32;
        let mut out = ty.to_le_bytes().to_vec();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&b);
        out.extend_from_slice(&len.to_le_bytes());
        out
    };
    let mut out = Vec::new();
    let mut shb = 0x1A2B3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    out.extend(block(0x0A0D0D0A, &shb));
    let linktype = u32::from_le_bytes(pcap[20..24].try_into().unwrap());
    let mut idb = (linktype as u16).to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&0u32.to_le_bytes());
    out.extend(block(1, &idb));
    if let Some(s) = secrets {
        let mut dsb = 0x544c534bu32.to_le_bytes().to_vec();
        dsb.extend_from_slice(&(s.len() as u32).to_le_bytes());
        dsb.extend_from_slice(s);
        out.extend(block(0x0A, &dsb));
    }
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= pcap.len() {
        let w = |i: usize| u32::from_le_bytes(pcap[at + i..at + i + 4].try_into().unwrap());
        let (sec, usec, cap, orig) = (w(0) as u64, w(4) as u64, w(8) as usize, w(12));
        let ts = sec * 1_000_000 + usec;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(cap as u32).to_le_bytes());
        epb.extend_from_slice(&orig.to_le_bytes());
        epb.extend_from_slice(&pcap[at + 16..at + 16 + cap]);
        let mut b = block(6, &epb);
        if damage_at_packet == Some(n) {
            b[4] = 0x0b; // a length that is not a multiple of 4
        }
        out.extend(b);
        at += 16 + cap;
        n += 1;
    }
    out
}

fn run_stdin(args: &[&str], input: Vec<u8>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let _ = w.join();
    out
}

#[test]
fn keys_embedded_in_pcapng_are_used_without_keylog_from_files_and_stdin() {
    let dir = Scratch::new("dsb");
    for (name, ..) in TLS {
        let pcap = std::fs::read(capture(name)).unwrap();
        let secrets = std::fs::read(keys(name)).unwrap();
        let ng = to_pcapng(&pcap, Some(&secrets), None);
        let p = dir.join(format!("{name}.pcapng"));
        std::fs::write(&p, &ng).unwrap();
        let from_dsb = records_of(&p, &[]);
        let with_log = with_keys(name, &[]);
        let strip = |rs: &[Value]| -> Vec<Value> {
            rs.iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r["type"] == "summary" {
                        r["tls"]["keylog"] = Value::Null;
                    }
                    r
                })
                .collect()
        };
        assert_eq!(strip(&from_dsb), strip(&with_log), "{name}: DSB keys == --keylog keys");
        assert_eq!(summary(&from_dsb)["tls"]["keylog"]["dsb"], 1);
        // Streamed on standard input, the same.
        let out = run_stdin(&["-r", "-", "--json"], ng);
        assert!(out.status.success());
        assert_eq!(strip(&parse_lines(&out.stdout)), strip(&with_log), "{name} from stdin");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_pcapng_block_keeps_what_was_read_then_fails_and_a_cut_one_is_a_truncation() {
    // Damage mid-stream (issue 9): what came before it is analysed and
    // summarised (`damaged`), then one error line naming the input, exit 2.
    let pcap = std::fs::read(capture("nginx-tls13")).unwrap();
    let secrets = std::fs::read(keys("nginx-tls13")).unwrap();
    let ng = to_pcapng(&pcap, Some(&secrets), Some(120));
    let out = run_stdin(&["-r", "-", "--json"], ng.clone());
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let rs = parse_lines(&out.stdout);
    let s = summary(&rs);
    assert_eq!(s["packets"], 120, "everything before the damaged block was read");
    assert_eq!(s["damaged"], true);
    assert_eq!(s["truncated"], false);
    assert!(!of_type(&rs, "handshake").is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("wstap: standard input: pcapng: damaged block"), "{err}");
    assert!(err.contains("analysed everything before the damage"), "{err}");
    // The same from a file, named in the line.
    let dir = Scratch::new("ngdamage");
    let f = dir.join("damaged.pcapng");
    std::fs::write(&f, &ng).unwrap();
    let out = wstap(&["-r", f.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(summary(&parse_lines(&out.stdout))["packets"], 120);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with(&format!("wstap: {}: pcapng: damaged block", f.display())), "{err}");
    // Cut inside its last block (a capture still being written): a
    // truncation, a warning, exit 0.
    let whole = to_pcapng(&pcap, Some(&secrets), None);
    let cut = whole[..whole.len() - 30].to_vec();
    let out = run_stdin(&["-r", "-", "--json"], cut);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&parse_lines(&out.stdout)).clone();
    assert_eq!(s["truncated"], true);
    assert_eq!(s["damaged"], false);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("wstap: warning: standard input: pcapng: cut inside a block"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_never_appear_in_any_output() {
    for (name, ..) in TLS {
        let secrets: Vec<String> = std::fs::read_to_string(keys(name))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_ascii_lowercase))
            .filter(|s| s.len() >= 32)
            .collect();
        let k = keys(name);
        let c = capture(name);
        for args in [
            vec!["-r", c.to_str().unwrap(), "--keylog", &k, "--json", "-vv", "--no-redact"],
            vec!["-r", c.to_str().unwrap(), "--keylog", &k, "-vv", "--no-redact"],
        ] {
            let out = wstap(&args);
            let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
                .to_ascii_lowercase();
            for s in &secrets {
                assert!(!all.contains(&s[..32]), "{name}: a secret reached the output");
            }
        }
    }
}

#[test]
fn bad_key_logs_are_reported_never_a_panic() {
    let c = capture("nginx-tls13");
    let c = c.to_str().unwrap();
    // A directory, a missing file: one line, exit 2.
    for (k, msg) in [("/", "is a directory"), ("/nonexistent/keys.log", "No such file")] {
        let out = wstap(&["-r", c, "--keylog", k]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(msg) && err.contains("--keylog"), "{err}");
    }
    let dir = Scratch::new("badkeys");
    // Nothing usable: a warning, analysis as without keys.
    let junk = dir.join("junk.log");
    std::fs::write(&junk, b"hello\nCLIENT_RANDOM zz 11\n\xff\xfe\nSERVER_TRAFFIC_SECRET_0 abcd\n").unwrap();
    let out = wstap(&["-r", c, "--keylog", junk.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no usable secret") && err.contains("4 not understood"), "{err}");
    let rs = parse_lines(&out.stdout);
    assert_eq!(summary(&rs)["tls"]["keylog"]["malformed"], 4);
    assert_eq!(summary(&rs)["tls"]["not_decrypted"]["no-key"], 8);
    // Wrong keys under the right client randoms: authentication fails.
    let wrong: String = std::fs::read_to_string(keys("nginx-tls13"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 3 && !l.starts_with('#') {
                format!("{} {} {}\n", f[0], f[1], "ab".repeat(f[2].len() / 2))
            } else {
                String::new()
            }
        })
        .collect();
    let wk = dir.join("wrong.log");
    std::fs::write(&wk, wrong).unwrap();
    let rs = records_of(&capture("nginx-tls13"), &["--keylog", wk.to_str().unwrap()]);
    let t = &summary(&rs)["tls"];
    assert_eq!(t["not_decrypted"]["auth-failed"], 8, "{t}");
    assert!(t["auth_failures"].as_u64().unwrap() >= 8);
    // A truncated capture: records cut mid-way are dropped, the rest read.
    let pcap = std::fs::read(capture("nginx-tls13")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &pcap[..pcap.len() * 2 / 3]).unwrap();
    let out = wstap(&["-r", cut.to_str().unwrap(), "--keylog", &keys("nginx-tls13"), "--json"]);
    assert!(out.status.success());
    assert!(!of_type(&parse_lines(&out.stdout), "handshake").is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TLS 1.3 client hop built here (handshake, then an upgrade with a
/// cookie, a bearer token and a token in the query), and its plaintext
/// upstream copy: the decrypted headers are redacted like plaintext ones.
#[test]
fn decrypted_headers_are_redacted_like_plaintext_ones() {
    use wstap::proto::tls::build;
    use wstap::proto::tls::crypto::{RecordKey, suite};
    let s = suite(0x1301).unwrap();
    let (cr, sr) = ([7u8; 32], [8u8; 32]);
    let sec = |b: u8| [b; 32];
    let key = |b: u8| RecordKey::tls13(s, &sec(b)).unwrap();
    let (mut c_hs, mut s_hs, mut c_ap, mut s_ap) = (key(1), key(2), key(3), key(4));
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let keylog = format!(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET {0} {1}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {0} {2}\nCLIENT_TRAFFIC_SECRET_0 {0} {3}\nSERVER_TRAFFIC_SECRET_0 {0} {4}\n",
        hex(&cr),
        hex(&sec(1)),
        hex(&sec(2)),
        hex(&sec(3)),
        hex(&sec(4))
    );
    let req = |host: &str| {
        format!(
            "GET /ws?token=querysecret&room=1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Cookie: sid=cookiesecret\r\nAuthorization: Bearer bearersecret\r\n\r\n"
        )
    };
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let mut b = PcapBuilder::default();
    let (mut c, mut p) = b.connect(([10, 0, 0, 1], 50000), ([10, 0, 0, 2], 443));
    b.send(&mut c, &p, &build::client_hello(&cr, "ws.example", &["http/1.1"]));
    let mut flight = build::server_hello(&sr, 0x0304, 0x1301, None);
    let mut hs = build::encrypted_extensions(Some("http/1.1"));
    hs.extend(build::message(20, &[0; 32]));
    flight.extend(s_hs.seal(22, &hs));
    b.send(&mut p, &c, &flight);
    let mut cf = c_hs.seal(22, &build::message(20, &[0; 32]));
    cf.extend(c_ap.seal(23, req("ws.example").as_bytes()));
    b.send(&mut c, &p, &cf);
    let (mut u, mut bk) = b.connect(([10, 0, 0, 2], 40000), ([10, 0, 0, 3], 8080));
    b.send(&mut u, &bk, req("10.0.0.3:8080").as_bytes());
    b.send(&mut bk, &u, resp);
    b.send(&mut p, &c, &s_ap.seal(23, resp));
    b.fin(&mut c, &p);
    b.fin(&mut p, &c);
    b.fin(&mut u, &bk);
    b.fin(&mut bk, &u);
    let dir = Scratch::new("redact-tls");
    let pcap = dir.join("t.pcap");
    b.write(&pcap);
    let kl = dir.join("k.log");
    std::fs::write(&kl, keylog).unwrap();
    let kls = kl.to_str().unwrap();
    for json in [true, false] {
        let mut args = vec!["-r", pcap.to_str().unwrap(), "--keylog", kls, "-vv"];
        if json {
            args.push("--json");
        }
        let out = wstap(&args);
        let text = String::from_utf8(out.stdout).unwrap();
        for secret in ["cookiesecret", "bearersecret", "querysecret"] {
            assert!(!text.contains(secret), "{secret} in the output:\n{text}");
        }
        assert!(text.contains("REDACTED"), "{text}");
    }
    let rs = records_of(&pcap, &["--keylog", kls, "--no-redact"]);
    let h = of_type(&rs, "handshake")[0];
    assert_eq!(h["client"]["tls"]["decrypted"], true, "{h}");
    assert_eq!(h["client"]["tls"]["alpn"], "http/1.1");
    assert_eq!(h["paired_by"], "key");
    assert_eq!(h["client"]["target"], "/ws?token=querysecret&room=1", "decrypted, then shown as asked");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Live: keys that reach the key log only after a connection they unlock
/// has ended (here the first wss connection, reset by nginx after its
/// close; a client that writes its key log late) still decrypt it: a TLS
/// connection that ends with records held for keys waits for them, a
/// bounded time of packet time, before it ends for the correlator. Keys
/// that never come end it at that bound, with the same records as a run
/// that never waited (no key log).
#[test]
fn keys_arriving_after_a_connection_ended_still_decrypt_it() {
    use wstap::capture::{Next, PacketSource, file::FileSource};
    let log = std::fs::read(keys("nginx-tls13")).unwrap();
    // Keys added after packet `late` (None: never), from a key log that
    // grows (live) or not.
    let run = |late: Option<usize>, growing: bool| {
        let mut p = wstap::app::build_pipeline(&wstap::cli::Args::default()).unwrap();
        p.keys().set_growing(growing);
        let mut src = FileSource::open(capture("nginx-tls13").to_str().unwrap(), None).unwrap();
        let lt = src.linktype();
        let mut out = wstap::sink::collect::Collect(Vec::new());
        let (mut n, mut last) = (0, None);
        while let Next::Packet(pk) = src.next_packet().unwrap() {
            let (ts, data, missing) = (pk.ts, pk.data.to_vec(), pk.missing());
            p.packet(lt, ts, &data, missing);
            n += 1;
            if Some(n) == late {
                p.keys().add_text(&log);
            }
            p.drain_to(&mut out).unwrap();
            last = Some(ts);
        }
        // Time passes (live: idle ticks) before the capture stops.
        p.idle(last.unwrap().add_secs(30.0));
        let s = p.finish();
        p.drain_to(&mut out).unwrap();
        let rs: Vec<serde_json::Value> = out.0.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
        (s.tls.unwrap(), rs)
    };
    // Packet 87: nginx resets the first TLS connection; its request and
    // the 101 are held, and the keys come with packet 88.
    let (tls, rs) = run(Some(88), true);
    assert_eq!(tls.decrypted, tls.connections, "{tls:?}");
    assert!(tls.late_keys >= 1, "{tls:?}");
    assert_eq!(tls.held_dropped, 0, "{tls:?}");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 3, "one record per upgrade");
    for h in hs {
        assert_eq!(h["paired_by"], "key", "{h}");
        assert_eq!(h["client"]["tls"]["decrypted"], true, "{h}");
        assert_eq!(h["client"]["status"], 101, "the client hop's response: {h}");
    }
    assert_eq!(of_type(&rs, "session").len(), 3);
    // No key ever: the same records as without a key log.
    let (tls, waited) = run(None, true);
    let (_, never) = run(None, false);
    assert_eq!(tls.decrypted, 0, "{tls:?}");
    let strip = |rs: &[serde_json::Value]| -> Vec<serde_json::Value> {
        rs.iter()
            .filter(|r| r["type"] != "summary")
            .map(|r| {
                let mut r = r.clone();
                // The TLS client hop's own account differs (held, then not
                // read, against never held): compared without it.
                if let Some(c) = r.get_mut("client").and_then(|c| c.as_object_mut()) {
                    c.remove("tls");
                }
                r
            })
            .collect()
    };
    assert!(!of_type(&waited, "handshake").is_empty());
    // (In the same order of time; records of one time may come in another
    // order, as the waits released them.)
    let sorted = |mut v: Vec<serde_json::Value>| {
        v.sort_by_key(|r| r.to_string());
        v
    };
    assert_eq!(sorted(strip(&waited)), sorted(strip(&never)));
}

/// Live: keys that reach the key log after the handshake's packets (a
/// browser appends as it connects; the proxy may forward the request before
/// wstap reads the key) still decrypt, from held records, and the hops are
/// paired as if the keys had been there.
#[test]
fn keys_arriving_after_the_packets_still_decrypt_and_pair() {
    use wstap::capture::{Next, PacketSource, file::FileSource};
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = std::fs::read(keys("nginx-tls13")).unwrap();
    // Keys after the client's request (12), after the proxy's forward (20),
    // after the upgrade (40).
    for late in [12, 20, 40] {
        let mut p = wstap::app::build_pipeline(&wstap::cli::Args::default()).unwrap();
        p.keys().set_growing(true);
        let mut src = FileSource::open(capture("nginx-tls13").to_str().unwrap(), None).unwrap();
        let lt = src.linktype();
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sink = wstap::sink::json::JsonSink::new(Lines(buf.clone()), false);
        let mut n = 0;
        while let Next::Packet(pk) = src.next_packet().unwrap() {
            let (ts, data, missing) = (pk.ts, pk.data.to_vec(), pk.missing());
            p.packet(lt, ts, &data, missing);
            n += 1;
            if n == late {
                p.keys().add_text(&log);
            }
            p.drain_to(&mut sink).unwrap();
        }
        let s = p.finish();
        p.drain_to(&mut sink).unwrap();
        drop(sink);
        let tls = s.tls.unwrap();
        assert_eq!(tls.decrypted, tls.connections, "keys after packet {late}: {tls:?}");
        assert!(tls.late_keys >= 1, "{tls:?}");
        assert_eq!(tls.held_dropped, 0);
        let rs = parse_lines(&buf.lock().unwrap());
        let hs = of_type(&rs, "handshake");
        assert_eq!(hs.len(), 3, "keys after packet {late}: one record per upgrade");
        for h in hs {
            assert_eq!(h["paired_by"], "key", "keys after packet {late}: {h}");
            assert_eq!(h["client"]["tls"]["decrypted"], true);
        }
        assert_eq!(of_type(&rs, "session").len(), 3);
    }
}
