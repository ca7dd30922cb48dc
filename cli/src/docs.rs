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
    ///
    /// A reader that stops early (`silk completions bash | head`) is not an error: the
    /// broken pipe ends the output quietly, as it does for other Unix tools.
    pub fn run(&self, cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
        match self.write(cmd, out) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }

    fn write(&self, mut cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Self::Completions { shell } => {
                // clap_complete panics when its writer fails, so the script is built in
                // memory and written here, where a failure is an error.
                let name = cmd.get_name().to_owned();
                let mut script = Vec::new();
                clap_complete::generate(*shell, &mut cmd, name, &mut script);
                out.write_all(&script)?;
                out.flush()
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

    /// A writer whose reader has gone, after `room` bytes.
    struct Closed {
        room: usize,
    }

    impl Write for Closed {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_stops_early_ends_the_output_quietly() {
        for args in [
            &["demo-bin", "completions", "bash"][..],
            &["demo-bin", "man"],
        ] {
            let Cmd::Docs(d) = Cli::try_parse_from(args).unwrap().cmd else {
                panic!("a docs command")
            };
            d.run(Cli::command(), &mut Closed { room: 10 }).unwrap();
            let other = d
                .write(Cli::command(), &mut Closed { room: 10 })
                .unwrap_err();
            assert_eq!(other.kind(), io::ErrorKind::BrokenPipe, "{args:?}");
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
