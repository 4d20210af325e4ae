//! Exclusive `flock` locks on lock files, robust against a lock file being
//! deleted or replaced while someone waits on it, with bounded waits: a
//! waiter gives up when the lock's holder has shown no progress for the
//! timeout. A holder shows progress by [`FileLock::mark_progress`], which
//! sets the lock file's mtime; waiters watch it through their own
//! descriptor of the same file.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::exit::{Coded, ExitCode};

/// First pause between two tries of a held lock; doubled up to
/// [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(5);
/// Longest pause between two tries of a held lock: how late a waiter may
/// notice that the lock is free.
const POLL_MAX: Duration = Duration::from_millis(200);

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    lock: Flock<File>,
}

impl FileLock {
    /// Tells processes waiting for this lock that its holder is making
    /// progress (sets the lock file's mtime to now), so that their wait
    /// does not time out. Best effort: a failure only shortens their wait.
    pub fn mark_progress(&self) {
        use nix::sys::time::TimeSpec;
        let _ = nix::sys::stat::futimens(&*self.lock, &TimeSpec::UTIME_OMIT, &TimeSpec::UTIME_NOW);
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Another process held the lock without showing progress for the
    /// whole timeout.
    #[error(
        "timed out waiting for another copkg working on {what}: it showed no progress for {} s (lock {})",
        timeout.as_secs_f64(),
        path.display()
    )]
    TimedOut {
        /// What the lock is for (a coordinate, a service).
        what: String,
        /// The lock file.
        path: PathBuf,
        /// How long the holder may go without showing progress.
        timeout: Duration,
    },
}

impl Coded for LockError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LockError::Io { .. } => ExitCode::Failure,
            LockError::TimedOut { .. } => ExitCode::InUse,
        }
    }
}

/// Takes an exclusive lock on `path` (created if missing) for `what` (a
/// coordinate, a service: named in the error), waiting while another
/// process holds it and calling `on_wait` once if it has to wait. The wait
/// ends in [`LockError::TimedOut`] once the holder has shown no progress
/// (see [`FileLock::mark_progress`]) for `timeout`. The file is opened
/// close-on-exec, so a process started while it is held never inherits it.
/// A lock file deleted or replaced while this waited is noticed, and the
/// lock is taken again on the file now at the path.
pub fn lock_exclusive(
    path: &Path,
    what: &str,
    timeout: Duration,
    on_wait: &mut dyn FnMut(&Path),
) -> Result<FileLock, LockError> {
    let fail = |source: io::Error| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let mut waited = false;
    let mut progress = Progress::new();
    loop {
        let mut file = open(path).map_err(fail)?;
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((held, nix::errno::Errno::EWOULDBLOCK)) => {
                    if !waited {
                        on_wait(path);
                        waited = true;
                    }
                    let idle = progress.idle(&held).map_err(fail)?;
                    if idle >= timeout {
                        return Err(LockError::TimedOut {
                            what: what.to_owned(),
                            path: path.to_owned(),
                            timeout,
                        });
                    }
                    std::thread::sleep(progress.pause().min(timeout - idle));
                    file = held;
                }
                Err((_, errno)) => return Err(fail(errno.into())),
            }
        };
        let held = lock.metadata().map_err(fail)?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(FileLock { lock });
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
    let fail = |source: io::Error| LockError::Io {
        path: path.to_owned(),
        source,
    };
    match Flock::lock(open(path).map_err(fail)?, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(FileLock { lock })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(fail(errno.into())),
    }
}

fn open(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// What a waiter knows of the holder's progress: the lock file's mtime as
/// last seen, and when it last changed.
struct Progress {
    mtime: Option<(i64, i64, u64)>,
    since: Instant,
    pause: Duration,
}

impl Progress {
    fn new() -> Self {
        Progress {
            mtime: None,
            since: Instant::now(),
            pause: POLL_FIRST,
        }
    }

    /// How long the holder of `file`'s lock has shown no progress.
    fn idle(&mut self, file: &File) -> io::Result<Duration> {
        let meta = file.metadata()?;
        let mtime = Some((meta.mtime(), meta.mtime_nsec(), meta.ino()));
        if mtime != self.mtime {
            if self.mtime.is_some() {
                self.since = Instant::now();
            }
            self.mtime = mtime;
        }
        Ok(self.since.elapsed())
    }

    /// The next pause between two tries.
    fn pause(&mut self) -> Duration {
        let pause = self.pause;
        self.pause = (pause * 2).min(POLL_MAX);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_on_a_lock_held_without_progress_times_out_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let _held = lock_exclusive(&path, "a", Duration::from_secs(1), &mut |_| {}).unwrap();
        let mut notices = Vec::new();
        let started = Instant::now();
        let err = lock_exclusive(&path, "g:a:1", Duration::from_millis(300), &mut |p| {
            notices.push(p.to_owned())
        })
        .unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(notices, std::slice::from_ref(&path));
        assert_eq!(err.exit_code(), ExitCode::InUse);
        assert_eq!(
            err.to_string(),
            format!(
                "timed out waiting for another copkg working on g:a:1: it showed no progress for 0.3 s (lock {})",
                path.display()
            )
        );
    }

    #[test]
    fn a_holder_making_progress_is_waited_for_past_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = lock_exclusive(&path, "a", Duration::from_secs(1), &mut |_| {}).unwrap();
        let holder = std::thread::spawn(move || {
            for _ in 0..16 {
                std::thread::sleep(Duration::from_millis(50));
                held.mark_progress();
            }
        });
        let started = Instant::now();
        let lock = lock_exclusive(&path, "a", Duration::from_millis(300), &mut |_| {});
        assert!(lock.is_ok(), "{lock:?}");
        assert!(started.elapsed() >= Duration::from_millis(700));
        holder.join().unwrap();
    }

    #[test]
    fn a_lock_file_replaced_while_waiting_is_taken_on_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = lock_exclusive(&path, "a", Duration::from_secs(1), &mut |_| {}).unwrap();
        let replacer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                std::fs::remove_file(&path).unwrap();
                drop(held);
            })
        };
        let lock = lock_exclusive(&path, "a", Duration::from_secs(5), &mut |_| {}).unwrap();
        replacer.join().unwrap();
        let on_disk = std::fs::metadata(&path).unwrap();
        assert_eq!(lock.lock.metadata().unwrap().ino(), on_disk.ino());
        assert!(try_lock_exclusive(&path).unwrap().is_none());
    }
}
