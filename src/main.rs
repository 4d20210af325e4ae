//! The copkg binary: parse, run, and exit with the code the error decides.

use clap::Parser;

use copkg::exit::{Coded, ExitCode, describe};

fn main() -> std::process::ExitCode {
    copkg::interrupt::install();
    let cli = copkg::cli::Cli::parse();
    let result = copkg::commands::run(cli);
    copkg::interrupt::settle();
    let code = match result {
        Ok(()) => ExitCode::Success,
        // stdout closed under us (`copkg list | head`): end quietly.
        Err(err) if err.is_broken_pipe() => ExitCode::Success,
        Err(err) => {
            eprintln!("{}", describe(&err));
            err.exit_code()
        }
    };
    std::process::ExitCode::from(code.code())
}
