//! The command layer's error: any layer's error, with context a command
//! adds, each deciding its exit code through [`Coded`].

use crate::coordinate::{CoordinateError, ServiceCoordinateError};
use crate::exit::{Coded, ExitCode};
use crate::lifecycle::LifecycleError;
use crate::lua::LuaError;
use crate::pack::PackError;
use crate::repo::ProxyError;
use crate::settings::SettingsError;
use crate::store::StoreError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command was called wrongly.
    #[error("{0}")]
    Usage(String),
    /// Several items of one command failed; each was reported as it failed.
    #[error("{failed} of {total} {what} failed")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many there were.
        total: usize,
        /// What they were ("installs").
        what: &'static str,
        /// The exit code of the first failure.
        code: ExitCode,
    },
    /// `verify` found installed packages differing from their manifests
    /// (each was reported on stdout).
    #[error("verify found differences in {differing} of {total} installed packages")]
    VerifyDiffers {
        /// Packages that differ (or have no manifest).
        differing: usize,
        /// Packages verified.
        total: usize,
    },
    /// Writing results or reading input failed.
    #[error("{action}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An error with what the command was doing.
    #[error("{message}")]
    Context {
        /// What the command was doing.
        message: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },
    /// A package coordinate.
    #[error(transparent)]
    Coordinate(#[from] CoordinateError),
    /// A service coordinate.
    #[error(transparent)]
    ServiceCoordinate(#[from] ServiceCoordinateError),
    /// Flags, environment or config files.
    #[error(transparent)]
    Settings(Box<SettingsError>),
    /// The proxy settings.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The package store.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// Packing.
    #[error(transparent)]
    Pack(Box<PackError>),
    /// The service lifecycle.
    #[error(transparent)]
    Lifecycle(Box<LifecycleError>),
    /// An export file, or what it was made from.
    #[error(transparent)]
    Inventory(Box<crate::inventory::InventoryError>),
    /// The Lua host.
    #[error(transparent)]
    Lua(Box<LuaError>),
    /// A signing key.
    #[error(transparent)]
    Key(#[from] crate::signature::KeyError),
    /// A service account.
    #[error(transparent)]
    Account(#[from] crate::account::AccountError),
    /// The audit journal.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

impl Coded for Error {
    fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Partial { code, .. } => *code,
            Error::VerifyDiffers { .. } => ExitCode::VerifyDiffers,
            Error::Io { .. } => ExitCode::Failure,
            Error::Context { source, .. } => source.exit_code(),
            Error::Coordinate(e) => e.exit_code(),
            Error::ServiceCoordinate(e) => e.exit_code(),
            Error::Settings(e) => e.exit_code(),
            Error::Proxy(e) => e.exit_code(),
            Error::Store(e) => e.exit_code(),
            Error::Pack(e) => e.exit_code(),
            Error::Lifecycle(e) => e.exit_code(),
            Error::Inventory(e) => e.exit_code(),
            Error::Lua(e) => e.exit_code(),
            Error::Account(e) => e.exit_code(),
            Error::Key(e) => e.exit_code(),
            Error::Journal(e) => e.exit_code(),
        }
    }
}

impl Error {
    /// Whether the error is stdout closing under us (`copkg list | head`),
    /// which ends a command quietly.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::BrokenPipe,
            Error::Context { source, .. } => source.is_broken_pipe(),
            _ => false,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            action: "cannot write the results",
            source,
        }
    }
}

/// Adds what a command was doing to an error.
pub trait ResultExt<T> {
    /// Wraps the error with `message`.
    fn context(self, message: impl Into<String>) -> Result<T, Error>;
    /// Wraps the error with a message made only on failure.
    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T, Error>;
}

impl<T, E: Into<Error>> ResultExt<T> for Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T, Error> {
        self.with_context(|| message)
    }

    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T, Error> {
        self.map_err(|err| Error::Context {
            message: message().into(),
            source: Box::new(err.into()),
        })
    }
}

impl From<SettingsError> for Error {
    fn from(err: SettingsError) -> Self {
        Error::Settings(Box::new(err))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(Box::new(err))
    }
}

impl From<PackError> for Error {
    fn from(err: PackError) -> Self {
        Error::Pack(Box::new(err))
    }
}

impl From<crate::inventory::InventoryError> for Error {
    fn from(err: crate::inventory::InventoryError) -> Self {
        Error::Inventory(Box::new(err))
    }
}

impl From<LifecycleError> for Error {
    fn from(err: LifecycleError) -> Self {
        Error::Lifecycle(Box::new(err))
    }
}

impl From<crate::runtime::RuntimeError> for Error {
    fn from(err: crate::runtime::RuntimeError) -> Self {
        Error::Lifecycle(Box::new(err.into()))
    }
}

impl From<LuaError> for Error {
    fn from(err: LuaError) -> Self {
        Error::Lua(Box::new(err))
    }
}
