//! `--generate`: the man page and shell completions, made from the same clap
//! definitions as `--help` (as `rg --generate` does), so packaging never
//! ships documentation that disagrees with the binary.

use std::io::Write;

use clap::{CommandFactory, ValueEnum};

use crate::cli::Args;
use crate::error::Result;

/// What `--generate` writes to standard output.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// The man page (roff), for `man 1 wstap`.
    Man,
    /// bash completion script.
    CompleteBash,
    /// zsh completion script.
    CompleteZsh,
    /// fish completion script.
    CompleteFish,
}

/// Writes the requested document to `out`.
pub fn write(what: Generate, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Args::command();
    match what {
        Generate::Man => clap_mangen::Man::new(cmd).render(out)?,
        Generate::CompleteBash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "wstap", out),
        Generate::CompleteZsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "wstap", out),
        Generate::CompleteFish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "wstap", out),
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(what: Generate) -> String {
        let mut buf = Vec::new();
        write(what, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn man_page_documents_every_visible_option() {
        let man = render(Generate::Man);
        assert!(man.starts_with(".ie") || man.contains(".TH wstap 1"), "{}", &man[..200.min(man.len())]);
        for arg in Args::command().get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                // roff escapes '-' as '\-'
                assert!(man.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))), "man page lacks --{long}");
            } else if let Some(short) = arg.get_short() {
                assert!(man.contains(&format!("\\-{short}")), "man page lacks -{short}");
            }
        }
    }

    #[test]
    fn completions_name_the_options() {
        let bash = render(Generate::CompleteBash);
        assert!(bash.contains("complete -F _wstap") && bash.contains("--json"), "{bash}");
        assert!(render(Generate::CompleteZsh).starts_with("#compdef wstap"));
        assert!(render(Generate::CompleteFish).contains("complete -c wstap"));
    }
}
