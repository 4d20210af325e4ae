//! `copkg completions bash|zsh|fish`: a shell completion script on stdout.

use clap::CommandFactory;

use super::{Error, Result};
use crate::cli::{Cli, CompletionsArgs, Shell};

/// Writes the completion script for the shell asked for.
pub fn run(args: &CompletionsArgs) -> Result {
    let mut command = Cli::command();
    let mut stdout = std::io::stdout().lock();
    let mut script = Vec::new();
    match args.shell {
        Shell::Bash => clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut command,
            "copkg",
            &mut script,
        ),
        Shell::Zsh => clap_complete::generate(
            clap_complete::Shell::Zsh,
            &mut command,
            "copkg",
            &mut script,
        ),
        Shell::Fish => clap_complete::generate(
            clap_complete::Shell::Fish,
            &mut command,
            "copkg",
            &mut script,
        ),
    }
    std::io::Write::write_all(&mut stdout, &script).map_err(|source| Error::Io {
        action: "cannot write the completion script",
        source,
    })
}
