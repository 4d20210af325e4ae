//! Runtime directories of service instances: their layout (log, etc,
//! console, data, run), the service's own `run/start.pid` and console
//! output. The service's account may write anything here, so copkg keeps
//! its own records and locks elsewhere (`state.rs`).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::exit::{Coded, ExitCode};

/// The subdirectories every runtime dir has.
pub const SUBDIRS: [&str; 5] = ["log", "etc", "console", "data", "run"];
/// The pid file the service's start script writes, inside the runtime dir.
pub const PIDFILE: &str = "run/start.pid";
/// Largest pid file read.
const PIDFILE_LIMIT: u64 = 4096;

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

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// Creates the dir and its subdirectories (mode 0755) where missing.
    pub fn prepare(&self) -> Result<(), RuntimeError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(0o755);
        builder
            .create(&self.path)
            .map_err(io_err("cannot create runtime dir", &self.path))?;
        for sub in SUBDIRS {
            let dir = self.path.join(sub);
            builder
                .create(&dir)
                .map_err(io_err("cannot create", &dir))?;
        }
        Ok(())
    }

    /// The pids in `run/start.pid` (one a line), or `None` when there is no
    /// pid file. A pid file that is a symlink, writable by group or others,
    /// or owned by another user (not root) is not trusted.
    pub fn read_pidfile(&self) -> Result<Option<Vec<i32>>, RuntimeError> {
        let path = self.path.join(PIDFILE);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot inspect", &path)(e)),
        };
        let untrusted = |reason: String| RuntimeError::UntrustedPidfile {
            path: path.clone(),
            reason,
        };
        if !meta.file_type().is_file() {
            return Err(untrusted("not a regular file".to_owned()));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(untrusted(format!(
                "writable by group or others (mode {:04o})",
                meta.permissions().mode() & 0o7777
            )));
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(untrusted(format!("owned by uid {}, not {me}", meta.uid())));
        }
        if meta.len() > PIDFILE_LIMIT {
            return Err(untrusted(format!("larger than {PIDFILE_LIMIT} bytes")));
        }
        let text = std::fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
        let mut pids = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.parse::<i32>() {
                Ok(pid) if pid > 1 => pids.push(pid),
                _ => return Err(untrusted(format!("`{}` is not a pid", line.escape_debug()))),
            }
        }
        Ok(Some(pids))
    }

    /// Removes `run/start.pid` if present.
    pub fn clear_pidfile(&self) -> Result<(), RuntimeError> {
        let path = self.path.join(PIDFILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove", &path)(e)),
        }
    }

    /// Removes the whole runtime dir: renamed aside first, so a half-deleted
    /// dir is never seen under the service's name.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = self
            .path
            .with_file_name(format!(".{name}.removing.{}", std::process::id()));
        std::fs::rename(&self.path, &aside).map_err(io_err("cannot move aside", &self.path))?;
        std::fs::remove_dir_all(&aside).map_err(io_err("cannot remove", &aside))
    }

    /// The last `limit` bytes of each file in `console/`, for reports.
    pub fn console_tail(&self, limit: u64) -> String {
        let dir = self.path.join("console");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        names.sort();
        let mut out = String::new();
        for path in names {
            let text = tail_of_file(&path, limit);
            if !text.trim().is_empty() {
                out.push_str(&format!("--- {} ---\n{}", path.display(), text));
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// The last `limit` bytes of a file, lossily decoded.
pub fn tail_of_file(path: &Path, limit: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(limit)));
    let mut bytes = Vec::new();
    let _ = file.take(limit).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Writes `bytes` to a temp file beside `path`, syncs it, and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io_err("cannot create a temp file in", dir))?;
    temp.write_all(bytes)
        .map_err(io_err("cannot write", path))?;
    temp.as_file()
        .sync_all()
        .map_err(io_err("cannot sync", path))?;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(io_err("cannot write", path))?;
    temp.persist(path)
        .map_err(|e| io_err("cannot write", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            dir.read_pidfile()
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
    }
}
