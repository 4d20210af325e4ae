//! `copkg man`: copkg's man page, in roff, on stdout.

use clap::CommandFactory;

use super::{Error, Result};
use crate::cli::Cli;

/// Writes the man page of the whole command, its subcommands included.
pub fn run() -> Result {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|source| Error::Io {
            action: "cannot render the man page",
            source,
        })?;
    std::io::Write::write_all(&mut std::io::stdout().lock(), &page).map_err(|source| Error::Io {
        action: "cannot write the man page",
        source,
    })
}
