//! Live capture holds no privilege while it parses, checked on the real
//! process: its /proc/PID/status (uid, gid, CapEff, CapPrm, NoNewPrivs)
//! while it captures and analyses real loopback traffic, run as root
//! without -Z (tcpdump's default), and in the setcap deployment (a copy
//! with cap_net_raw,cap_net_admin run by nobody). A set-user-ID copy
//! refuses to run; -w never follows a planted symbolic link. Root only
//! (skipped, saying so, otherwise).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::live::{Running, field, is_root};

fn skip(why: &str) -> bool {
    eprintln!("hostile_privs: skipped: {why}");
    true
}

/// An HTTP exchange over loopback to a port only this test listens on.
fn traffic(listener: &TcpListener) {
    let addr = listener.local_addr().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"GET /priv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
    let _ = c.read(&mut buf).unwrap();
}

fn nobody() -> (u32, u32) {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id").args(["-g", "nobody"]).output().unwrap();
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

/// Asserts the process parses with no privilege at all.
fn assert_unprivileged(status: &str, uid: u32) {
    let uids: Vec<u32> = field(status, "Uid:").split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(uids, vec![uid; 4], "real, effective, saved, fs uid: {status}");
    let gids: Vec<u32> = field(status, "Gid:").split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(gids.iter().all(|g| *g != 0), "no root group: {status}");
    assert_eq!(field(status, "Groups:").split_whitespace().filter(|g| *g == "0").count(), 0, "{status}");
    assert_eq!(field(status, "CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field(status, "CapPrm:"), "0000000000000000", "{status}");
    assert_eq!(field(status, "CapInh:"), "0000000000000000", "{status}");
    assert_eq!(field(status, "NoNewPrivs:"), "1", "{status}");
}

/// A directory others can enter, for copies nobody must execute.
fn shared_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wstap-privs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Command::new("chmod").args(["755", d.to_str().unwrap()]).status().unwrap();
    d
}

fn copy_of_wstap(dir: &Path) -> PathBuf {
    let bin = dir.join("wstap");
    std::fs::copy(env!("CARGO_BIN_EXE_wstap"), &bin).unwrap();
    Command::new("chmod").args(["755", bin.to_str().unwrap()]).status().unwrap();
    bin
}

#[test]
fn root_without_z_parses_as_an_unprivileged_user_with_no_capability() {
    if !is_root() && skip("not root") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wstap"));
    cmd.args(["-i", "lo", "-v", &format!("tcp port {port}")]);
    let mut w = Running::start(cmd);
    assert!(w.listening(), "wstap did not start: {:?}", w.stderr);
    traffic(&listener);
    std::thread::sleep(Duration::from_millis(300));
    // While it captures and parses: no root, no capability.
    let status = w.status();
    let uid = if Command::new("id").arg("wstap").output().unwrap().status.success() {
        let o = Command::new("id").args(["-u", "wstap"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    } else {
        nobody().0
    };
    assert_unprivileged(&status, uid);
    let (out, code, err) = w.stop();
    assert_eq!(code, 0, "{err:?}");
    assert!(out.contains("GET /priv"), "the traffic was analysed: {out}");
}

#[test]
fn z_root_keeps_root() {
    if !is_root() && skip("not root") {
        return;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wstap"));
    cmd.args(["-i", "lo", "-Z", "root", "tcp port 1"]);
    let mut w = Running::start(cmd);
    assert!(w.listening(), "{:?}", w.stderr);
    let status = w.status();
    assert!(field(&status, "Uid:").split_whitespace().all(|u| u == "0"), "{status}");
    assert_ne!(field(&status, "CapEff:"), "0000000000000000", "{status}");
    let (_, code, err) = w.stop();
    assert_eq!(code, 0, "{err:?}");
}

#[test]
fn setcap_deployment_drops_its_capabilities_once_the_device_is_open() {
    if !is_root() && skip("not root") {
        return;
    }
    let (uid, gid) = nobody();
    let dir = shared_dir("setcap");
    let bin = copy_of_wstap(&dir);
    let ok = Command::new("setcap").args(["cap_net_raw,cap_net_admin=eip", bin.to_str().unwrap()]).status();
    if !ok.is_ok_and(|s| s.success()) && skip("setcap unavailable (libcap2-bin) or unsupported here") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"]).arg(&bin).args([
        "-i",
        "lo",
        &format!("tcp port {port}"),
    ]);
    let mut w = Running::start(cmd);
    assert!(w.listening(), "wstap with file capabilities did not start as nobody: {:?}", w.stderr);
    traffic(&listener);
    std::thread::sleep(Duration::from_millis(300));
    assert_unprivileged(&w.status(), uid);
    let (out, code, err) = w.stop();
    assert_eq!(code, 0, "{err:?}");
    assert!(out.contains("1 HTTP requests") || out.contains("1 HTTP request"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_setuid_root_copy_refuses_to_run() {
    if !is_root() && skip("not root") {
        return;
    }
    let (uid, gid) = nobody();
    let dir = shared_dir("setuid");
    let bin = copy_of_wstap(&dir);
    Command::new("chmod").args(["4755", bin.to_str().unwrap()]).status().unwrap();
    // Any user, any mode: -r of a root-only file, -i, -D.
    let secret = dir.join("root-only.pcap");
    std::fs::write(&secret, b"not a capture").unwrap();
    Command::new("chmod").args(["600", secret.to_str().unwrap()]).status().unwrap();
    for args in [vec!["-r", secret.to_str().unwrap()], vec!["-i", "lo"], vec!["-D"]] {
        let out = Command::new("setpriv")
            .args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"])
            .arg(&bin)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("wstap: refusing to run set-user-ID"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn w_never_follows_a_planted_link() {
    if !is_root() && skip("not root") {
        return;
    }
    let dir = shared_dir("plant");
    Command::new("chmod").args(["1777", dir.to_str().unwrap()]).status().unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"root's file").unwrap();
    let link = dir.join("cap.pcap");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for z in [None, Some("root")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wstap"));
        cmd.args(["-i", "lo", "-w", link.to_str().unwrap(), "--duration", "1"]);
        if let Some(z) = z {
            cmd.args(["-Z", z]);
        }
        let out = cmd.arg("tcp port 1").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("is a symbolic link: refusing to follow it"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"root's file");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_live_capture_warns_while_the_budget_gives_state_up() {
    if !is_root() && skip("not root") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wstap"));
    // A 1 MiB budget holds 224 connections: 400 real ones overflow it.
    cmd.args(["-i", "lo", "-q", "--memcap", "1M", &format!("tcp port {port}")]);
    let mut w = Running::start(cmd);
    assert!(w.listening(), "{:?}", w.stderr);
    let mut clients = Vec::new();
    for _ in 0..400 {
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = listener.accept().unwrap();
        drop(s);
        clients.push(c);
    }
    // The warning comes while it happens (on the next second's tick).
    let mut warned = None;
    while let Ok(l) = w.err.recv_timeout(Duration::from_secs(5)) {
        w.stderr.push(l.clone());
        if l.contains("warning: memory budget") {
            warned = Some(l);
            break;
        }
    }
    let line = warned.unwrap_or_else(|| panic!("no warning while evicting: {:?}", w.stderr));
    assert!(line.contains("connections evicted") && line.contains("raise --memcap"), "{line}");
    let (out, code, err) = w.stop();
    assert_eq!(code, 0, "{err:?}");
    assert!(out.contains("memory budget 1.0 MiB") && out.contains("was full"), "{out}");
    drop(clients);
}
