//! `copkg completions bash|zsh|fish`: a shell completion script on stdout.

use clap::CommandFactory;

use super::{Error, Result};
use crate::cli::{Cli, CompletionsArgs, Shell};

/// Writes the completion script for the shell asked for.
pub fn run(args: &CompletionsArgs) -> Result {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "copkg", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script).map_err(|source| Error::Io {
        action: "cannot write the completion script",
        source,
    })
}
