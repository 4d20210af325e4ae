//! Runtime directories of service instances: their layout (log, etc,
//! console, data, run), the service's own `run/start.pid` and console
//! output. The service's account may write anything here, so copkg keeps
//! its own records and locks elsewhere (`state.rs`).

use std::io;
use std::path::{Path, PathBuf};

use crate::exit::{Coded, ExitCode};
use crate::rundir::{self, FileKind, RunDir, RunDirError};

/// The subdirectories every runtime dir has.
pub const SUBDIRS: [&str; 5] = ["log", "etc", "console", "data", "run"];
/// The pid file the service's start script writes, inside the runtime dir.
pub const PIDFILE: &str = "run/start.pid";
/// Largest pid file read.
const PIDFILE_LIMIT: u64 = 64 * 1024;

/// Why a runtime-dir operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file in the runtime dir was refused (a link, a FIFO, too large).
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The pid file may have been written by someone else, or is malformed.
    #[error("{} is not trusted: {reason}", path.display())]
    UntrustedPidfile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Coded for RuntimeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RuntimeError::UntrustedPidfile { .. } => ExitCode::ScriptFailed,
            RuntimeError::RunDir(source) => source.exit_code(),
            RuntimeError::Io { .. } => ExitCode::Failure,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RuntimeError + 'a {
    move |source| RuntimeError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A service instance's runtime directory: a relative path (as the
/// `runtime_path` policy gives it, validated) below the runtime root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    root: PathBuf,
    relative: String,
    path: PathBuf,
}

impl RuntimeDir {
    /// The runtime dir at `relative` below `root`.
    pub fn new(root: &Path, relative: &str) -> Self {
        RuntimeDir {
            root: root.to_owned(),
            relative: relative.to_owned(),
            path: root.join(relative),
        }
    }

    /// Its path relative to the runtime root.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dir itself, opened without following any link below the runtime
    /// root; `None` when it does not exist.
    fn open(&self) -> Result<Option<RunDir>, RuntimeError> {
        Ok(RunDir::open(&self.root, &self.relative, None)?)
    }

    /// Whether it exists (as a real directory, reached through no link).
    pub fn exists(&self) -> bool {
        matches!(self.open(), Ok(Some(_)))
    }

    /// Gives the dir and its subdirectories to the service's account, by
    /// descriptor (a link planted there is refused, never followed).
    pub fn give_to(&self, uid: u32, gid: u32) -> Result<(), RuntimeError> {
        let dir = self
            .open()?
            .ok_or_else(|| io_err("cannot open", &self.path)(io::ErrorKind::NotFound.into()))?;
        dir.chown(uid, gid)?;
        for sub in SUBDIRS {
            if let Some(sub) = dir.subdir(sub)? {
                sub.chown(uid, gid)?;
            }
        }
        Ok(())
    }

    /// The owner and group of a subdir (`log`), when it exists.
    pub fn owner_of(&self, subdir: &str) -> Result<Option<(u32, u32)>, RuntimeError> {
        let Some(dir) = self.open()? else {
            return Ok(None);
        };
        match dir.subdir(subdir)? {
            Some(sub) => Ok(Some(sub.owner()?)),
            None => Ok(None),
        }
    }

    /// Creates the dir and its subdirectories (mode 0755) where missing,
    /// refusing any link in the way.
    pub fn prepare(&self) -> Result<(), RuntimeError> {
        let dir = RunDir::open(&self.root, &self.relative, Some(0o755))?.ok_or_else(|| {
            io_err("cannot create runtime dir", &self.path)(io::ErrorKind::NotFound.into())
        })?;
        dir.ensure_subdirs(&SUBDIRS, 0o755)?;
        Ok(())
    }

    /// The pids in `run/start.pid` (one a line), or `None` when there is no
    /// pid file. A pid file that is not a regular file, is a link, is
    /// writable by group or others, or is owned by another user (not root)
    /// is not trusted: this is all copkg has to go by when it tracks no
    /// cgroup.
    pub fn read_pidfile(&self) -> Result<Option<Vec<i32>>, RuntimeError> {
        self.pids(true)
    }

    /// The pids `run/start.pid` names, whoever wrote it: a hint to check
    /// against the processes copkg knows the start script started (its
    /// cgroup), never trusted by itself. Only its form is checked.
    pub fn pidfile_hint(&self) -> Result<Option<Vec<i32>>, RuntimeError> {
        self.pids(false)
    }

    fn pids(&self, trusted_only: bool) -> Result<Option<Vec<i32>>, RuntimeError> {
        let path = self.path.join(PIDFILE);
        let untrusted = |reason: String| RuntimeError::UntrustedPidfile {
            path: path.clone(),
            reason,
        };
        let Some(dir) = self.open()? else {
            return Ok(None);
        };
        let Some(entry) = dir.list("run")?.into_iter().find(|e| e.name == "start.pid") else {
            return Ok(None);
        };
        if entry.kind != FileKind::File {
            return Err(untrusted("not a regular file".to_owned()));
        }
        if trusted_only && entry.mode & 0o022 != 0 {
            return Err(untrusted(format!(
                "writable by group or others (mode {:04o})",
                entry.mode
            )));
        }
        let me = nix::unistd::geteuid().as_raw();
        if trusted_only && entry.uid != me && entry.uid != 0 {
            return Err(untrusted(format!("owned by uid {}, not {me}", entry.uid)));
        }
        let bytes = match dir.read_file(PIDFILE, PIDFILE_LIMIT) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(RunDirError::Refused { reason, .. }) => return Err(untrusted(reason)),
            Err(err) => return Err(err.into()),
        };
        let text = String::from_utf8_lossy(&bytes);
        let lowest = if trusted_only { 2 } else { 1 };
        let mut pids = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.parse::<i32>() {
                Ok(pid) if pid >= lowest => pids.push(pid),
                _ => {
                    return Err(untrusted(format!(
                        "`{}` is not a pid",
                        escape_controls(line)
                    )));
                }
            }
        }
        Ok(Some(pids))
    }

    /// Removes `run/start.pid` if present (a link there is removed, never
    /// what it points at).
    pub fn clear_pidfile(&self) -> Result<(), RuntimeError> {
        if let Some(dir) = self.open()? {
            match dir.remove_file(PIDFILE) {
                Ok(_) => {}
                // No run/ (or a non-dir there): no pid file of ours to clear.
                Err(RunDirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Removes the whole runtime dir: renamed aside first, so a half-deleted
    /// dir is never seen under the service's name, then deleted by
    /// descriptor, so no link in it is ever followed.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        rundir::remove_all(&self.root, &self.relative)?;
        // The empty dirs a nested layout leaves above it go too, up to
        // (never including) the runtime root.
        rundir::remove_empty_parents(&self.root, &self.relative)?;
        Ok(())
    }

    /// Removes everything in the dir but `keep` (`data`, `etc`).
    pub fn remove_all_but(&self, keep: &[&str]) -> Result<(), RuntimeError> {
        if let Some(dir) = self.open()? {
            dir.remove_all_but(keep)?;
        }
        Ok(())
    }

    /// The last `limit` bytes of each regular file in `console/`, for
    /// reports; control characters the service wrote are escaped. Anything
    /// but a regular file (a link, a FIFO) is skipped, never opened.
    pub fn console_tail(&self, limit: u64) -> String {
        let Ok(Some(dir)) = self.open() else {
            return String::new();
        };
        let entries = dir.list("console").unwrap_or_default();
        let mut out = String::new();
        for entry in entries.iter().filter(|e| e.kind == FileKind::File) {
            let relative = format!("console/{}", entry.name.to_string_lossy());
            let Ok(Some(bytes)) = dir.tail(&relative, limit) else {
                continue;
            };
            let text = escape_controls(&String::from_utf8_lossy(&bytes));
            if !text.trim().is_empty() {
                // Every line the service wrote is marked as its own, so that
                // none can pass for one of copkg's.
                out.push_str(&format!(
                    "--- {} ---\n",
                    escape_controls(&self.path.join(&relative).display().to_string())
                ));
                for line in text.lines() {
                    out.push_str("| ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl RuntimeDir {
    /// The service's log files: the regular files in console/ and log/
    /// (not the compressed ones), as paths relative to the dir, sorted.
    pub fn log_files(&self) -> Result<Vec<String>, RuntimeError> {
        let Some(dir) = self.open()? else {
            return Ok(Vec::new());
        };
        let mut files = Vec::new();
        for sub in ["console", "log"] {
            for entry in dir.list(sub)? {
                let name = entry.name.to_string_lossy();
                if entry.kind == FileKind::File && !name.ends_with(".gz") {
                    files.push(format!("{sub}/{name}"));
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// See [`rundir::RunDir::read_from`]; `None` when the dir or the file
    /// is missing.
    pub fn read_log(
        &self,
        relative: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, u64, u64)>, RuntimeError> {
        let Some(dir) = self.open()? else {
            return Ok(None);
        };
        Ok(dir.read_from(relative, offset, limit)?)
    }
}

/// Text a service wrote, safe to print: control characters other than
/// newline and tab, and the invisible format characters that reorder or
/// hide text (bidirectional overrides, zero-width characters), are escaped,
/// so no escape sequence reaches a terminal and no text hides.
pub fn escape_controls(text: &str) -> String {
    let invisible = |c: char| {
        matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{00ad}')
    };
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\t') || invisible(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn prepare_makes_every_subdir_and_remove_takes_it_all() {
        let root = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::new(root.path(), "1.idee.prod.trd");
        dir.prepare().unwrap();
        for sub in SUBDIRS {
            assert!(dir.path().join(sub).is_dir(), "{sub}");
        }
        dir.remove().unwrap();
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn console_text_is_escaped_and_marked_as_the_services() {
        assert_eq!(
            escape_controls("ok\u{1b}[31m red \u{202e}cba \u{200b}x\tand\n"),
            "ok\\u{1b}[31m red \\u{202e}cba \\u{200b}x\tand\n"
        );
        let root = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::new(root.path(), "svc");
        dir.prepare().unwrap();
        std::fs::write(
            dir.path().join("console/stdout.log"),
            "started 1.svc (pid 1)\nerror: forged\n",
        )
        .unwrap();
        let tail = dir.console_tail(1024);
        assert!(
            tail.ends_with("---\n| started 1.svc (pid 1)\n| error: forged\n"),
            "{tail}"
        );
    }

    #[test]
    fn pidfile_trust_rules() {
        let root = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::new(root.path(), "svc");
        dir.prepare().unwrap();
        assert_eq!(dir.read_pidfile().unwrap(), None);
        let path = dir.path().join(PIDFILE);
        std::fs::write(&path, "123\n456\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(dir.read_pidfile().unwrap(), Some(vec![123, 456]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            dir.read_pidfile()
                .unwrap_err()
                .to_string()
                .contains("writable by group or others")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        for bad in ["abc\n", "1\n", "-5\n", "12 13\n"] {
            std::fs::write(&path, bad).unwrap();
            assert!(dir.read_pidfile().is_err(), "{bad:?}");
        }
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let err = dir.read_pidfile().unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
