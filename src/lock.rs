//! Exclusive `flock` locks on lock files, robust against a lock file being
//! deleted or replaced while someone waits on it.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::exit::{Coded, ExitCode};

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("cannot lock {}", path.display())]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

impl Coded for LockError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Failure
    }
}

/// Takes an exclusive lock on `path` (created if missing), waiting as long as
/// another process holds it and calling `on_wait` once if it has to wait.
/// The file is opened close-on-exec, so a process started while it is held
/// never inherits it. A lock file deleted or replaced while this waited is
/// noticed, and the lock is taken again on the file now at the path.
pub fn lock_exclusive(path: &Path, on_wait: &mut dyn FnMut(&Path)) -> Result<FileLock, LockError> {
    let fail = |source: io::Error| LockError {
        path: path.to_owned(),
        source,
    };
    let mut waited = false;
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(fail)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                if !waited {
                    on_wait(path);
                    waited = true;
                }
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, errno)| fail(errno.into()))?
            }
            Err((_, errno)) => return Err(fail(errno.into())),
        };
        let held = lock.metadata().map_err(fail)?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(FileLock { _lock: lock });
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Takes an exclusive lock on `path` (created if missing) if nobody holds
/// it; `None` when someone does.
pub fn try_lock_exclusive(path: &Path) -> Result<Option<FileLock>, LockError> {
    let fail = |source: io::Error| LockError {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(fail)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(FileLock { _lock: lock })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(fail(errno.into())),
    }
}
