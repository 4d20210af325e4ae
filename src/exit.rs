//! The documented exit codes, and the mapping from errors to them.

use crate::coordinate::{CoordinateError, ServiceCoordinateError};
use crate::extract::ExtractError;
use crate::lua::LuaError;
use crate::service::ServiceError;
use crate::settings::SettingsError;
use crate::store::StoreError;

/// Exit codes; README.md documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Success = 0,
    /// Any failure without a more specific code (I/O, network after retries).
    Failure = 1,
    /// Bad command line, coordinate, config file or repository setting.
    Usage = 2,
    /// The package is in no configured repository.
    NotFound = 3,
    /// The archive's digest does not match its sidecar or pin.
    ChecksumMismatch = 4,
    /// The archive is unsafe, corrupt or over a limit.
    UnsafeArchive = 5,
    /// The service is already running.
    AlreadyRunning = 6,
    /// The service is not running.
    NotRunning = 7,
    /// A site script, hook or package script failed.
    ScriptFailed = 8,
}

/// An error that is the user's to fix in how copkg was called.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error: the first cause in the chain that has one.
pub fn code_for(err: &anyhow::Error) -> ExitCode {
    let head: &(dyn std::error::Error + 'static) = err.as_ref();
    code_for_error(head)
}

/// [`code_for`] for any error and its `source()` chain.
pub fn code_for_error(err: &(dyn std::error::Error + 'static)) -> ExitCode {
    let mut next = Some(err);
    while let Some(cause) = next {
        next = cause.source();
        if let Some(e) = cause.downcast_ref::<crate::commands::PartialFailure>() {
            return e.code;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::NotFound { .. } => ExitCode::NotFound,
                StoreError::ChecksumMismatch { .. } | StoreError::BadSidecar { .. } => {
                    ExitCode::ChecksumMismatch
                }
                StoreError::NoRepository => ExitCode::Usage,
                StoreError::Extract {
                    source:
                        ExtractError::Unsafe { .. }
                        | ExtractError::Corrupt { .. }
                        | ExtractError::Limit { .. },
                    ..
                } => ExitCode::UnsafeArchive,
                _ => ExitCode::Failure,
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::commands::start::StartError>() {
            return match e {
                crate::commands::start::StartError::NotInstalled(_) => ExitCode::NotFound,
                crate::commands::start::StartError::NoStartScript { .. } => ExitCode::ScriptFailed,
            };
        }
        if cause.is::<crate::commands::uninstall::InUse>() {
            return ExitCode::AlreadyRunning;
        }
        if let Some(e) = cause.downcast_ref::<ServiceError>() {
            match e {
                ServiceError::AlreadyRunning { .. } => return ExitCode::AlreadyRunning,
                ServiceError::NotRunning { .. } => return ExitCode::NotRunning,
                ServiceError::Script { .. }
                | ServiceError::NoLiveProcess { .. }
                | ServiceError::Runtime(crate::runtime::RuntimeError::UntrustedPidfile {
                    ..
                }) => {
                    return ExitCode::ScriptFailed;
                }
                ServiceError::Schedule(_) => return ExitCode::Usage,
                _ => {}
            }
        }
        if cause.is::<CoordinateError>()
            || cause.is::<ServiceCoordinateError>()
            || cause.is::<UsageError>()
            || cause.is::<SettingsError>()
        {
            return ExitCode::Usage;
        }
        if cause.is::<LuaError>() {
            return ExitCode::ScriptFailed;
        }
    }
    ExitCode::Failure
}

/// Prints an error and its causes on stderr, one line per cause.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("{}", describe(err.as_ref()));
}

/// An error and its causes, one line per cause: `error: …` then `  caused by: …`.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("error: {err}");
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(&format!("\n  caused by: {cause}"));
        next = cause.source();
    }
    text
}
