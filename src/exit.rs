//! The one table of exit codes every command uses (docs/exit-codes.md).
//! Each error type decides its own code with an exhaustive match; this
//! module only names the codes and knows no error type.

/// Exit codes, as docs/exit-codes.md documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// Success, including a no-op ("already installed", stop of a stopped service).
    Success = 0,
    /// Any other failure (I/O, disk full).
    Failure = 1,
    /// Arguments, coordinate, config value or file, site script refused at
    /// load, two services mapped to one runtime dir.
    Usage = 2,
    /// Every repository answered 404, or a package that must be installed is not.
    NotFound = 3,
    /// Checksum mismatch or unreadable sidecar.
    ChecksumMismatch = 4,
    /// Unsafe, corrupt or over-limit archive.
    UnsafeArchive = 5,
    /// Already running something else, in use, or a lock wait timed out.
    InUse = 6,
    /// Not running (status of named services that do not run).
    NotRunning = 7,
    /// A script, hook or package script failed, or hit its time or memory limit.
    ScriptFailed = 8,
    /// Network failure: unreachable, DNS, proxy, TLS, timeouts after retries.
    Network = 9,
    /// Signature missing, by an untrusted key, or bad.
    Signature = 10,
    /// No such service.
    NoSuchService = 11,
    /// Upgrade failed and rolled back (the old version runs).
    RolledBack = 12,
    /// Verify found differences.
    VerifyDiffers = 13,
    /// The service started but never became ready (and was stopped).
    NeverReady = 14,
    /// Upgrade failed and the old version did not come back either.
    RollbackFailed = 15,
    /// Interrupted by SIGINT (everything started was ended).
    Interrupted = 130,
    /// Interrupted by SIGTERM (everything started was ended).
    Terminated = 143,
}

impl ExitCode {
    /// Every code, in table order.
    pub const ALL: [ExitCode; 18] = [
        ExitCode::Success,
        ExitCode::Failure,
        ExitCode::Usage,
        ExitCode::NotFound,
        ExitCode::ChecksumMismatch,
        ExitCode::UnsafeArchive,
        ExitCode::InUse,
        ExitCode::NotRunning,
        ExitCode::ScriptFailed,
        ExitCode::Network,
        ExitCode::Signature,
        ExitCode::NoSuchService,
        ExitCode::RolledBack,
        ExitCode::VerifyDiffers,
        ExitCode::NeverReady,
        ExitCode::RollbackFailed,
        ExitCode::Interrupted,
        ExitCode::Terminated,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The code with this number, if the table has one.
    pub fn from_code(code: u8) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// An error that knows its exit code. Core error types implement it with
/// an exhaustive match; the command layer and the Lua host carry it across
/// layers (a site policy's error reaches the lifecycle as a boxed `Coded`).
pub trait Coded: std::error::Error + Send + Sync + 'static {
    /// The exit code this error ends a command with.
    fn exit_code(&self) -> ExitCode;
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

/// An error and its causes on one line, `a: b: c`, for JSON results and
/// messages raised into Lua.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_table() {
        let doc = include_str!("../docs/exit-codes.md");
        for code in ExitCode::ALL {
            let n = code.code();
            let rows = [format!("| {n} |"), format!("| {n}, "), format!(", {n} |")];
            assert!(
                rows.iter().any(|row| doc.contains(row.as_str())),
                "docs/exit-codes.md has no row for {code:?} ({})",
                code.code()
            );
            assert_eq!(ExitCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ExitCode::from_code(99), None);
    }
}
