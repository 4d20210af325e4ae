//! The copkg binary: parse, run, and map errors to the documented exit codes.

use clap::Parser;

use copkg::exit::{ExitCode, code_for, print_error};

fn main() -> std::process::ExitCode {
    let cli = copkg::cli::Cli::parse();
    match copkg::commands::run(cli) {
        Ok(()) => std::process::ExitCode::from(ExitCode::Success as u8),
        Err(err) => {
            let broken_pipe = err.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return std::process::ExitCode::from(ExitCode::Success as u8);
            }
            print_error(&err);
            std::process::ExitCode::from(code_for(&err) as u8)
        }
    }
}
