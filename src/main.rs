fn main() {
    let args = wstap::cli::Args::parse_line();
    match wstap::app::run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // A closed pipe (`wstap ... | head`) is not an error.
            if e.is_broken_pipe() {
                std::process::exit(0);
            }
            eprintln!("wstap: {e}");
            std::process::exit(2);
        }
    }
}
