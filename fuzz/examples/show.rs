//! Runs one fuzz input outside libFuzzer and prints the records it produced
//! as JSON lines: `cargo run --example show -- streams corpus/streams/healthy`.
//! A debug build (the default here) has overflow checks, as the fuzz build.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: show pipeline|streams|tls FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).expect("readable input");
    match target.as_str() {
        "pipeline" => wstap_fuzz::pipeline::run_printing(&data, true),
        "streams" => wstap_fuzz::streams::run_printing(&data, true),
        "tls" => wstap_fuzz::tls::run_printing(&data, true),
        _ => {
            eprintln!("unknown target {target}");
            std::process::exit(2);
        }
    }
}
