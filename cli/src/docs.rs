//! `completions SHELL` and `man`: a binary's own command line, written out for shells and
//! for `man`.
//!
//! A binary adds them to its subcommands with
//! `#[command(flatten)] Docs(silk_cli::docs::DocsCommand)` and runs them with
//! [`DocsCommand::run`] on its `clap::CommandFactory::command()`.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Subcommand;
use clap_complete::Shell;

/// The documentation subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DocsCommand {
    /// Print a shell completion script to stdout (bash, zsh, fish, elvish or powershell),
    /// e.g. `completions bash > /etc/bash_completion.d/NAME`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff) to stdout (read it with `man -l -`), or write one page
    /// per command into a directory.
    Man {
        /// Write NAME.1 and NAME-SUBCOMMAND.1 pages into this directory instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

impl DocsCommand {
    /// Writes what was asked for `cmd` (the binary's whole command line) to `out`, or for
    /// `man --out DIR` into that directory, naming each file written on `out`.
    pub fn run(&self, mut cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Self::Completions { shell } => {
                let name = cmd.get_name().to_owned();
                clap_complete::generate(*shell, &mut cmd, name, out);
                Ok(())
            }
            Self::Man { out: None } => clap_mangen::Man::new(cmd).render(out),
            Self::Man { out: Some(dir) } => {
                std::fs::create_dir_all(dir)?;
                clap_mangen::generate_to(cmd, dir)?;
                let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "1"))
                    .collect();
                pages.sort();
                for p in pages {
                    writeln!(out, "{}", p.display())?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// A command line shaped like the binaries': one real subcommand beside the docs.
    #[derive(Parser)]
    #[command(name = "demo-bin", version, about = "A test binary")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Does the work.
        Work {
            /// How hard.
            #[arg(long)]
            level: u8,
        },
        #[command(flatten)]
        Docs(DocsCommand),
    }

    fn run(args: &[&str]) -> String {
        let Cmd::Docs(d) = Cli::try_parse_from(args).unwrap().cmd else {
            panic!("a docs command")
        };
        let mut out = Vec::new();
        d.run(Cli::command(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions_name_the_subcommands() {
        let bash = run(&["demo-bin", "completions", "bash"]);
        assert!(bash.contains("work") && bash.contains("--level"), "{bash}");
        for shell in ["zsh", "fish", "elvish", "powershell"] {
            assert!(
                run(&["demo-bin", "completions", shell]).contains("work"),
                "{shell}"
            );
        }
    }

    #[test]
    fn man_page_is_roff_naming_the_subcommands() {
        let page = run(&["demo-bin", "man"]);
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains(".TH demo-bin 1"), "{page}");
        assert!(page.contains("work"), "{page}");
    }

    #[test]
    fn man_out_writes_one_page_per_command() {
        let dir = std::env::temp_dir().join(format!("silk-cli-man-{}", std::process::id()));
        let listed = run(&["demo-bin", "man", "--out", dir.to_str().unwrap()]);
        assert!(dir.join("demo-bin.1").is_file(), "{listed}");
        assert!(dir.join("demo-bin-work.1").is_file(), "{listed}");
        assert!(listed.contains("demo-bin-work.1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
