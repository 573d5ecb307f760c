//! A tcpdump user's habits, run as that user would run them: options
//! anywhere on the line, unknown options reported as options, `-r -w` to
//! cut a capture (checked with tshark and tcpdump, the peers), `-w -`, an
//! option that cannot apply is one line and exit 2, `-F`, the `-t` family.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn one_line_error(args: &[&str]) -> String {
    let out = wstap(args);
    assert_eq!(out.status.code(), Some(2), "exit 2 for {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "one line for {args:?}: {err:?}");
    assert!(err.starts_with("wstap: ") && !err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout for {args:?}");
    err
}

fn ok(args: &[&str]) -> std::process::Output {
    let out = wstap(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `tcpdump -nn -tt -S -r FILE`: one line per packet, as tcpdump reads it
/// (absolute sequence numbers: a file cut from another starts anywhere).
fn tcpdump_lines(file: &std::path::Path) -> Vec<String> {
    let out = Command::new("tcpdump").args(["-nn", "-tt", "-S", "-r", s(file)]).stderr(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "tcpdump -r {}", file.display());
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// tshark's TCP conversations: `A:P <-> B:Q` with their frame counts.
fn tshark_conversations(file: &std::path::Path) -> Vec<(String, u64)> {
    let out = Command::new("tshark").args(["-r", s(file), "-q", "-z", "conv,tcp"]).output().unwrap();
    assert!(out.status.success(), "tshark -r {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let mut v: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("<->"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // A <-> B, frames and bytes each way, then the total frames.
            (format!("{} <-> {}", w[0], w[2]), w[9].parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn options_go_anywhere_on_the_line() {
    let c = capture("nginx-healthy");
    let before = ok(&["--json", "-r", s(&c), "tcp", "port", "18081"]).stdout;
    // The filter first and the options after it, as tcpdump takes them.
    let after = ok(&["-r", s(&c), "tcp port 18081", "--json"]).stdout;
    let between = ok(&["-r", s(&c), "tcp", "port", "--json", "18081"]).stdout;
    assert_eq!(before, after);
    assert_eq!(before, between);
    let hs = of_type(&parse_lines(&after), "handshake").len();
    assert_eq!(hs, 3, "the filter applied: the client hop alone");
    // Flags repeat as in tcpdump (`-nn`), and stack (`-nnr FILE`).
    assert_eq!(ok(&["-nn", "-r", s(&c), "tcp port 18081", "--json"]).stdout, after);
    assert_eq!(ok(&["-nnr", s(&c), "tcp port 18081", "--json"]).stdout, after);
    // -q after the filter words is -q, not a filter word.
    let q = ok(&["-r", s(&c), "tcp", "port", "18081", "-q"]);
    let text = String::from_utf8_lossy(&q.stdout);
    assert!(!text.contains("handshake #"), "-q: summary only:\n{text}");
    assert!(text.contains("3 WebSocket handshakes"), "{text}");
}

#[test]
fn unknown_options_are_unknown_options() {
    let c = capture("nginx-healthy");
    for opt in ["-P", "-K", "--no-such-flag"] {
        let err = one_line_error(&["-r", s(&c), "tcp", opt]);
        assert!(err.contains(&format!("unexpected argument '{opt}'")), "{err}");
        assert!(!err.contains("filter"), "an option is not a filter: {err}");
    }
    let err = one_line_error(&["-r", s(&c), "--jsn"]);
    assert!(err.contains("similar argument exists: '--json'"), "{err}");
    // The filter is still checked by libpcap, as before.
    let err = one_line_error(&["-r", s(&c), "tcp", "port", "banana", "-q"]);
    assert!(err.contains("bad filter expression 'tcp port banana'"), "{err}");
}

#[test]
fn options_that_cannot_apply_are_errors() {
    let c = capture("nginx-healthy");
    let c = s(&c);
    let cases: &[(&[&str], &str)] = &[
        (&["-r", c, "-B", "1024"], "-B applies to live capture (-i IFACE), not to -r FILE"),
        (&["-r", c, "--duration", "5"], "--duration applies to live capture"),
        (&["-r", c, "-s", "96"], "-s applies to live capture"),
        (&["-r", c, "-Q", "in"], "-Q applies to live capture"),
        (&["-r", c, "--immediate-mode"], "--immediate-mode applies to live capture"),
        (&["-r", c, "-C", "10"], "-C needs -w FILE"),
        (&["-r", c, "-G", "60"], "-G needs -w FILE"),
        (&["-r", c, "-W", "3"], "-W needs -w FILE"),
        (&["-r", c, "-U"], "-U needs -w FILE"),
        (&["-r", c, "--write-only", "failing"], "--write-only needs -w FILE"),
        (&["-i", "lo", "-w", "x.pcap", "--write-only", "failing"], "--write-only applies to -r FILE -w OUT"),
        (&["-r", c, "--replay", "2"], "--replay needs --tui"),
        (&["-i", "lo", "--replay", "2"], "--replay needs -r FILE"),
        (&["-r", c, "--json", "-tttt"], "-tttt applies to text output, not to --json"),
        (&["-r", c, "--json", "--color", "always"], "--color applies to text output"),
        (&["-r", c, "--tui", "-q"], "-q applies to output lines, not to the dashboard"),
        (&["-r", c, "--tui", "-vv"], "-v applies to output lines, not to the dashboard"),
        (&["-r", c, "--tui", "-w", "x.pcap"], "not from the dashboard"),
        (&["-r", c, "-L"], "-L lists the link types of an interface: it needs -i IFACE"),
        (&["-D", "-r", c], "-D lists the interfaces and exits: -r would be ignored; give it alone"),
        (&["-i", "lo", "-L", "-w", "x.pcap"], "-L lists the link types of -i IFACE and exits: -w would be ignored"),
        (&["--generate", "man", "--json"], "--generate prints its text and exits: --json would be ignored"),
        (&["-r", c, "-w", "-", "-C", "1"], "standard output cannot be rotated"),
        (&["-r", c, "-tttttt"], "at most -ttttt"),
        (&["-r", c, "-tt", "--time-format", "iso"], "give one"),
        (&["-r", c, "--time-stamp-precision", "nano"], "microseconds"),
        (&["-r", "-", "-w", "x.pcap", "--write-only", "websocket"], "reads the capture twice"),
        (&["-q"], "-i any sees both hops"),
        (&["--tui"], "-i any sees both hops"),
    ];
    for (args, want) in cases {
        let err = one_line_error(args);
        assert!(err.contains(want), "{args:?}: want {want:?}, got {err}");
    }
}

#[test]
fn read_and_write_cuts_the_capture_like_tcpdump() {
    let scratch = Scratch::new("habits");
    let c = capture("nginx-origin-403");
    let all = scratch.join("all.pcap");
    // -Z root: the -w file is created as the user that parses, and the
    // test's directory belongs to whoever runs it.
    ok(&["-r", s(&c), "-w", s(&all), "-q", "-Z", "root"]);
    assert_eq!(tcpdump_lines(&all), tcpdump_lines(&c), "every packet read, as read");
    // With a filter, the packets the filter kept, as `tcpdump -r -w FILTER`.
    let hop = scratch.join("hop.pcap");
    ok(&["-r", s(&c), "-w", s(&hop), "tcp", "port", "18094", "-q", "-Z", "root"]);
    let want = Command::new("tcpdump").args(["-nn", "-tt", "-S", "-r", s(&c), "tcp port 18094"]).output().unwrap();
    let want: Vec<String> = String::from_utf8_lossy(&want.stdout).lines().map(str::to_string).collect();
    assert!(!want.is_empty());
    assert_eq!(tcpdump_lines(&hop), want);
    // Writing over the file being read is refused, before anything is written.
    let copy = scratch.join("copy.pcap");
    std::fs::copy(&c, &copy).unwrap();
    let err = one_line_error(&["-r", s(&copy), "-w", s(&copy), "-Z", "root"]);
    assert!(err.contains("is the file -r reads"), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&c).unwrap());
    // -w -: the packets on standard output, the records on standard error.
    let out = ok(&["-r", s(&c), "-w", "-", "-Z", "root"]);
    let piped = scratch.join("piped.pcap");
    std::fs::write(&piped, &out.stdout).unwrap();
    assert_eq!(tcpdump_lines(&piped), tcpdump_lines(&c));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WebSocket handshakes"), "records on stderr");
}

#[test]
fn write_only_failing_keeps_both_hops_of_the_failing_handshakes() {
    let scratch = Scratch::new("habits");
    // One handshake upgraded, one refused by the origin (403), both
    // through nginx.
    let c = capture("nginx-origin-403");
    let rs = records_of(&c, &[]);
    let failing: Vec<_> = of_type(&rs, "handshake").into_iter().filter(|h| h["outcome"] != "upgraded").collect();
    assert_eq!(failing.len(), 1);
    let cut = scratch.join("failing.pcap");
    let out = ok(&["-r", s(&c), "-w", s(&cut), "--write-only", "failing", "--json", "-Z", "root"]);
    // The records of the run are the records of the whole file.
    assert_eq!(parse_lines(&out.stdout).len(), rs.len());
    // tshark sees the failing handshake's two connections, whole: as many
    // frames as in the original capture.
    let convs = tshark_conversations(&cut);
    let flows: Vec<String> = ["client", "upstream"]
        .iter()
        .map(|hop| failing[0][hop]["flow"].as_str().unwrap().replace("->", " <-> "))
        .collect();
    assert_eq!(convs.len(), 2, "{convs:?}");
    let orig = tshark_conversations(&c);
    for (conv, frames) in &convs {
        let (a, b) = conv.split_once(" <-> ").unwrap();
        assert!(flows.iter().any(|f| f.contains(a) && f.contains(b)), "{conv} is not a failing hop: {flows:?}");
        assert!(orig.contains(&(conv.clone(), *frames)), "{conv}: {frames} frames, not all of them: {orig:?}");
    }
    // Analysed again, the cut holds the failing handshake, both hops paired.
    let again = records_of(&cut, &[]);
    let hs = of_type(&again, "handshake");
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["outcome"], failing[0]["outcome"]);
    assert!(hs[0]["client"].is_object() && hs[0]["upstream"].is_object(), "{}", hs[0]);

    // websocket: every attempt (both handshakes, both hops each).
    let ws = scratch.join("ws.pcap");
    ok(&["-r", s(&c), "-w", s(&ws), "--write-only", "websocket", "-q", "-Z", "root"]);
    assert_eq!(of_type(&records_of(&ws, &[]), "handshake").len(), 2);

    // Nothing failing: an empty capture, valid for both peers.
    let none = scratch.join("none.pcap");
    ok(&["-r", s(&capture("nginx-healthy")), "-w", s(&none), "--write-only", "failing", "-q", "-Z", "root"]);
    assert!(tcpdump_lines(&none).is_empty());
    assert!(tshark_conversations(&none).is_empty());
}

#[test]
fn filter_from_a_file() {
    let scratch = Scratch::new("habits");
    let c = capture("nginx-healthy");
    let f = scratch.join("filter.bpf");
    std::fs::write(&f, "# the client hop only\ntcp port 18081 # nginx's front\n").unwrap();
    let from_file = ok(&["-r", s(&c), "-F", s(&f), "--json"]).stdout;
    let from_line = ok(&["-r", s(&c), "tcp port 18081", "--json"]).stdout;
    assert_eq!(from_file, from_line);
    let err = one_line_error(&["-r", s(&c), "-F", s(&f), "tcp"]);
    assert!(err.contains("give one"), "{err}");
    let err = one_line_error(&["-r", s(&c), "-F", "/no/such/filter"]);
    assert!(err.contains("/no/such/filter: No such file or directory"), "{err}");
}

/// `wstap ARGS` in time zone `tz`: its text lines.
fn lines_in(tz: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_wstap")).args(args).env("TZ", tz).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn text_times_follow_the_t_family_in_local_time() {
    let c = capture("nginx-wrong-location");
    let c = s(&c);
    let hs: Vec<f64> = of_type(&records_of(&capture("nginx-wrong-location"), &[]), "handshake")
        .iter()
        .map(|h| h["ts"].as_f64().unwrap())
        .collect();
    assert_eq!(hs.len(), 2);
    let handshakes = |v: Vec<String>| -> Vec<String> { v.into_iter().filter(|l| l.contains("handshake #")).collect() };
    // -tt: seconds since 1970, as the JSON's ts, whatever the zone.
    let tt = handshakes(lines_in("Asia/Kolkata", &["-r", c, "-tt"]));
    for (l, ts) in tt.iter().zip(&hs) {
        assert!(l.starts_with(&format!("{ts:.6} handshake #")), "{l} vs {ts}");
    }
    // The default is the time of day in local time, as tcpdump's; -tttt
    // adds the date; --time-format iso the zone's offset.
    let (utc, kolkata) = (handshakes(lines_in("UTC", &["-r", c])), handshakes(lines_in("Asia/Kolkata", &["-r", c])));
    let hms = |l: &str| -> i64 {
        let t: Vec<i64> = l[..8].split(':').map(|x| x.parse().unwrap()).collect();
        t[0] * 3600 + t[1] * 60 + t[2]
    };
    assert_eq!((hms(&kolkata[0]) - hms(&utc[0])).rem_euclid(86_400), 5 * 3600 + 1800, "{} / {}", kolkata[0], utc[0]);
    assert_eq!(utc[0][8..], kolkata[0][8..], "only the time differs");
    let date = handshakes(lines_in("Asia/Kolkata", &["-r", c, "-tttt"]));
    assert_eq!(date[0][..11].len(), 11);
    assert_eq!(&date[0][11..], &kolkata[0][..], "-tttt is the date, then the default line");
    let iso = handshakes(lines_in("Asia/Kolkata", &["-r", c, "--time-format", "iso"]));
    assert!(iso[0].starts_with(&format!("{}T{}+05:30 handshake", &date[0][..10], &kolkata[0][..15])), "{}", iso[0]);
    // -t: no time at all; -ttt: since the previous line (the first: 0);
    // -ttttt: since the first line.
    let none = handshakes(lines_in("UTC", &["-r", c, "-t"]));
    assert!(none[0].starts_with("handshake #1 "), "{}", none[0]);
    let first = handshakes(lines_in("UTC", &["-r", c, "-ttttt"]));
    assert!(first[0].starts_with("00:00:00.000000 handshake #1"), "{}", first[0]);
    let gap = ((hs[1] - hs[0]) * 1e6).round() as i64;
    let want = format!("00:00:{:02}.{:06} handshake #2", gap / 1_000_000, gap % 1_000_000);
    assert!(first[1].starts_with(&want), "{} vs {want}", first[1]);
    let delta = lines_in("UTC", &["-r", c, "-ttt"]);
    assert!(delta[0].starts_with("00:00:00.000000 "), "{}", delta[0]);
    // JSON keeps seconds since 1970.
    assert!(records_of(&capture("nginx-wrong-location"), &[]).iter().all(|r| !r["ts"].is_string()));
}

#[test]
fn ascii_prints_the_handshake_heads_on_both_hops() {
    let c = capture("nginx-origin-403");
    let out = String::from_utf8(ok(&["-r", s(&c), "-A"]).stdout).unwrap();
    let heads: Vec<&str> = out.lines().filter(|l| l.contains(": HTTP ") && l.contains(" head, ")).collect();
    // Both handshakes (one upgraded, one refused), request and response,
    // on the client hop and the upstream hop.
    assert_eq!(heads.len(), 8, "{out}");
    assert!(out.contains("\nGET /ws HTTP/1.1\nHost: 127.0.0.1:18094\n"), "{out}");
    assert!(out.contains("\nHTTP/1.1 101 Switching Protocols\n"), "{out}");
    assert!(out.contains("\nHTTP/1.1 403 Forbidden\n"), "{out}");
    // The head's size is what the lines below it hold (CRLF line ends).
    let first = out.lines().position(|l| l.contains(" head, ")).unwrap();
    let n: usize = heads[0].rsplit(", ").next().unwrap().trim_end_matches(" bytes").parse().unwrap();
    let body: usize = out.lines().skip(first + 1).take_while(|l| !l.is_empty()).map(|l| l.len() + 2).sum();
    assert_eq!(n, body + 2, "{}", heads[0]);
    // -X: the same head in hex and ASCII, tcpdump's layout.
    let x = String::from_utf8(ok(&["-r", s(&c), "-X"]).stdout).unwrap();
    assert!(x.contains("\t0x0000:  4745 5420 2f77 7320 4854 5450 2f31 2e31  GET /ws HTTP/1.1\n"), "{x}");
}

/// `wstap ARGS` with the environment `env` (and no colour variable but
/// those), through a pseudo-terminal when `tty` (util-linux `script`).
fn coloured(env: &[(&str, &str)], tty: bool, args: &str) -> bool {
    let bin = env!("CARGO_BIN_EXE_wstap");
    let mut cmd = if tty {
        let mut c = Command::new("script");
        c.args(["-qec", &format!("{bin} {args}"), "/dev/null"]);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args.split(' '));
        c
    };
    for v in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM", "CI"] {
        cmd.env_remove(v);
    }
    cmd.env("TERM", "xterm-256color");
    let out = cmd.envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{args}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).contains("\x1b[")
}

#[test]
fn colour_follows_no_color_clicolor_force_and_term() {
    let c = capture("nginx-origin-403");
    let args = format!("-r {} -Z root", s(&c));
    assert!(!coloured(&[], false, &args), "a pipe: no colour");
    assert!(coloured(&[], true, &args), "a terminal: colour");
    assert!(!coloured(&[("NO_COLOR", "1")], true, &args), "NO_COLOR");
    assert!(!coloured(&[("TERM", "dumb")], true, &args), "TERM=dumb");
    // A CI runner sets CI, and anstream then colours a terminal whatever
    // TERM says; a dumb terminal still gets none.
    assert!(!coloured(&[("TERM", "dumb"), ("CI", "true")], true, &args), "TERM=dumb under CI");
    assert!(coloured(&[("CI", "true")], true, &args), "a terminal under CI");
    assert!(coloured(&[("CLICOLOR_FORCE", "1")], false, &args), "CLICOLOR_FORCE on a pipe");
    assert!(!coloured(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false, &args), "NO_COLOR wins");
    assert!(coloured(&[("NO_COLOR", "1")], false, &format!("{args} --color always")), "--color always");
    assert!(!coloured(&[("CLICOLOR_FORCE", "1")], true, &format!("{args} --color never")), "--color never");
    // With -w -, the records (and their colour) are on standard error.
    let out = Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", s(&c), "-Z", "root", "-w", "-"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("\x1b[1m"));
    assert!(out.stdout.starts_with(&0xa1b2_c3d4u32.to_ne_bytes()), "a pcap on stdout");
}

#[test]
fn read_and_write_rotates_by_packet_time() {
    let scratch = Scratch::new("habits");
    // 71 s of capture, a file every 20 s of packet time, named by
    // strftime of the packet time that opened it (TZ=UTC here).
    let c = capture("nginx-idle-60");
    let dir = scratch.join("rotate");
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("cut-%H%M%S.pcap");
    ok(&["-r", s(&c), "-w", s(&template), "-G", "20", "-q", "-Z", "root"]);
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["cut-173937.pcap", "cut-173958.pcap", "cut-174018.pcap", "cut-174038.pcap"]);
    let parts: Vec<String> = names.iter().flat_map(|n| tcpdump_lines(&dir.join(n))).collect();
    assert_eq!(parts, tcpdump_lines(&c), "every packet once, in order");
}
