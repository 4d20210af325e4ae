//! Runtime directories of service instances: their layout (log, etc,
//! console, data, run), the start/stop lock in run/, copkg's record of what
//! it started, and the service's own `run/start.pid`.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{Coded, ExitCode};
use crate::lock::{FileLock, LockError, lock_exclusive};

/// The subdirectories every runtime dir has.
pub const SUBDIRS: [&str; 5] = ["log", "etc", "console", "data", "run"];
/// copkg's record of a started service, inside the runtime dir.
pub const RECORD_FILE: &str = "run/copkg.json";
/// The pid file the service's start script writes, inside the runtime dir.
pub const PIDFILE: &str = "run/start.pid";
const LOCK_FILE: &str = "run/copkg.lock";
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
    /// The run lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The pid file may have been written by someone else, or is malformed.
    #[error("{} is not trusted: {reason}", path.display())]
    UntrustedPidfile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// copkg's record is unreadable.
    #[error("{} is corrupt: {reason}", path.display())]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// serde's message.
        reason: String,
    },
}

impl Coded for RuntimeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RuntimeError::UntrustedPidfile { .. } => ExitCode::ScriptFailed,
            RuntimeError::Lock(source) => source.exit_code(),
            RuntimeError::Io { .. } | RuntimeError::BadRecord { .. } => ExitCode::Failure,
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

/// One process copkg started, identified beyond its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    /// Its pid.
    pub pid: i32,
    /// Its start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start_time: u64,
    /// Its process group.
    pub pgrp: i32,
}

/// What copkg records in run/ about a service it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The package coordinate, `group:artifact:version`.
    pub package: String,
    /// The package's install dir.
    pub package_dir: PathBuf,
    /// The service coordinate.
    pub service: String,
    /// Arguments given to the start script.
    pub args: Vec<String>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// The processes named by `run/start.pid` after start.
    pub processes: Vec<RecordedProcess>,
    /// Seconds since the Unix epoch when copkg stopped it, if it did.
    pub stopped_at: Option<u64>,
}

/// A service instance's runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// The runtime dir at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RuntimeDir { path: path.into() }
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

    /// Takes the lock that serializes start, stop and cleanup of this
    /// service (creating `run/` if needed).
    pub fn lock(&self, on_wait: &mut dyn FnMut(&Path)) -> Result<FileLock, RuntimeError> {
        let run = self.path.join("run");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&run)
            .map_err(io_err("cannot create", &run))?;
        Ok(lock_exclusive(&self.path.join(LOCK_FILE), on_wait)?)
    }

    /// copkg's record, if there is one.
    pub fn read_record(&self) -> Result<Option<ServiceRecord>, RuntimeError> {
        let path = self.path.join(RECORD_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| RuntimeError::BadRecord {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    /// Writes copkg's record atomically.
    pub fn write_record(&self, record: &ServiceRecord) -> Result<(), RuntimeError> {
        let path = self.path.join(RECORD_FILE);
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| io_err("cannot write", &path)(e.into()))?;
        write_atomically(&path, &json)
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

/// Every runtime dir under `root` that holds a copkg record (searched to a
/// depth of 8, for hierarchical layouts), sorted by path.
pub fn find_runtime_dirs(root: &Path) -> Vec<RuntimeDir> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<RuntimeDir>) {
        if dir.join(RECORD_FILE).is_file() {
            out.push(RuntimeDir::new(dir));
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, 8, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_makes_every_subdir_and_record_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::new(root.path().join("1.idee.prod.trd"));
        dir.prepare().unwrap();
        for sub in SUBDIRS {
            assert!(dir.path().join(sub).is_dir(), "{sub}");
        }
        assert_eq!(dir.read_record().unwrap(), None);
        let record = ServiceRecord {
            package: "g:a:1".into(),
            package_dir: "/p".into(),
            service: "1.idee.prod.trd".into(),
            args: vec!["--port=1".into()],
            started_at: 5,
            processes: vec![RecordedProcess {
                pid: 10,
                start_time: 20,
                pgrp: 10,
            }],
            stopped_at: None,
        };
        dir.write_record(&record).unwrap();
        assert_eq!(dir.read_record().unwrap(), Some(record));
        assert_eq!(find_runtime_dirs(root.path()), vec![dir.clone()]);
        dir.remove().unwrap();
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn pidfile_trust_rules() {
        let root = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::new(root.path());
        dir.prepare().unwrap();
        assert_eq!(dir.read_pidfile().unwrap(), None);
        let path = root.path().join(PIDFILE);
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
