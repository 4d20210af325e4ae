//! copkg's own state of services: the registry of records (what copkg
//! started, from which package, with which arguments, as which processes)
//! and the per-service locks. It lives in `<runtime root>/.copkg/`, a dir
//! only copkg's own user can write, never inside a runtime dir, which the
//! service's account may rewrite at will (SECURITY.md F1).

use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit::{Coded, ExitCode};
use crate::lock::{FileLock, LockError, lock_exclusive};

/// The state dir's name under the runtime root.
pub const STATE_DIR: &str = ".copkg";
/// Largest record read.
const RECORD_LIMIT: u64 = 1 << 20;

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
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
    /// The state dir, or the runtime root above it, could be changed by
    /// someone other than copkg's user.
    #[error("{} is not safe for copkg's state: {reason}", path.display())]
    Unsafe {
        /// The dir.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A record is unreadable.
    #[error("{} is corrupt: {reason}", path.display())]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A service's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl Coded for StateError {
    fn exit_code(&self) -> ExitCode {
        match self {
            StateError::Unsafe { .. } => ExitCode::Usage,
            StateError::Lock(source) => source.exit_code(),
            StateError::Io { .. } | StateError::BadRecord { .. } => ExitCode::Failure,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
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

/// What copkg records about a service it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// The service coordinate.
    pub service: String,
    /// The runtime dir, relative to the runtime root.
    pub runtime_path: String,
    /// The package coordinate, `group:artifact:version`.
    pub package: String,
    /// The package's install dir.
    pub package_dir: PathBuf,
    /// Arguments given to the start script.
    pub args: Vec<String>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// The processes started.
    pub processes: Vec<RecordedProcess>,
    /// The service's main processes: those of [`Self::processes`] that
    /// `run/start.pid` named (a forking daemon's master). When none of them
    /// lives any more, the service has crashed, whatever else of it is left
    /// (an nginx master killed leaves its workers serving, unsupervised).
    /// Empty when the start named none: then any process left counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub main: Vec<RecordedProcess>,
    /// Seconds since the Unix epoch when copkg stopped it, if it did.
    pub stopped_at: Option<u64>,
    /// The cgroup its processes are in, when copkg made one.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// Whether a start is (or was, when copkg died during it) in progress.
    #[serde(default)]
    pub starting: bool,
    /// Why the last start failed, when it did.
    #[serde(default)]
    pub failed: Option<String>,
    /// The account it runs as (none: as copkg's own user).
    #[serde(default)]
    pub account: Option<crate::account::AccountRecord>,
    /// The settings it was started with (its package's service.lua, as the
    /// site's `service_settings` hook left them).
    #[serde(default)]
    pub settings: crate::declared::ServiceSettings,
    /// The boot it was started in (`/proc/sys/kernel/random/boot_id`);
    /// none in records written before copkg kept it.
    #[serde(default)]
    pub boot_id: Option<String>,
}

impl ServiceRecord {
    /// Whether the record was written in another boot than this one: then
    /// none of its pids and start times name a process of this boot, and
    /// the service is simply not running (a reboot is not a crash).
    pub fn from_another_boot(&self) -> bool {
        match (&self.boot_id, crate::process::boot_id()) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => false,
        }
    }
}

/// Whether a service should run, and after which others: what `copkg
/// enable`/`disable` record, apart from the record each start rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitFile {
    /// The service coordinate.
    pub service: String,
    /// Whether `boot` starts it and `reconcile` brings it back.
    pub enabled: bool,
    /// Services it starts after (sorted, no duplicates).
    #[serde(default)]
    pub after: Vec<String>,
}

/// What `reconcile` keeps of its restarts of one service in one boot: the
/// start limit's window, the back-off, and what status shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervision {
    /// The service coordinate.
    pub service: String,
    /// The boot these counts belong to; another boot's count for nothing.
    pub boot_id: Option<String>,
    /// When it was found crashed or a start failed (ms since the epoch),
    /// within the start limit's window.
    #[serde(default)]
    pub failures: Vec<u64>,
    /// When reconcile restarted it (ms since the epoch), within the window.
    #[serde(default)]
    pub attempts: Vec<u64>,
    /// Restarts reconcile made in this boot.
    #[serde(default)]
    pub restarts: u32,
    /// When it was last found crashed (seconds since the epoch).
    #[serde(default)]
    pub last_crashed_at: Option<u64>,
    /// The start (its record's start time and first process) whose end was
    /// counted, so one crash counts once however often reconcile runs.
    #[serde(default)]
    pub counted: Option<(u64, u64)>,
    /// When it hit the start limit (seconds since the epoch): from then on
    /// it is `failed` and left alone until `start` or `reset-failed`.
    #[serde(default)]
    pub failed_at: Option<u64>,
}

/// The state dir's dir of records kept by `cleanup --keep-data`.
const KEPT: &str = "kept";

/// copkg's state dir under a runtime root.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens the state dir under `runtime_root`, making both where missing.
    /// Refused when the runtime root or the state dir is a symlink, owned by
    /// another user, or writable by group or others: whoever could change
    /// them could forge what copkg believes it started.
    pub fn open(runtime_root: &Path) -> Result<StateDir, StateError> {
        let mut builder = std::fs::DirBuilder::new();
        builder
            .recursive(true)
            .mode(0o755)
            .create(runtime_root)
            .map_err(io_err("cannot create the runtime root", runtime_root))?;
        check_owned(runtime_root)?;
        let path = runtime_root.join(STATE_DIR);
        for dir in [
            path.clone(),
            path.join("services"),
            path.join("locks"),
            path.join("units"),
            path.join("supervision"),
            path.join("pids"),
            path.join(KEPT),
        ] {
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("cannot create", &dir)(e)),
            }
            check_owned(&dir)?;
            sweep_temp_files(&dir);
        }
        Ok(StateDir { path })
    }

    /// The state dir under `runtime_root` when there is one, checked as
    /// [`Self::open`] checks it, making nothing: for `--dry-run`, where no
    /// state dir means copkg has started nothing here.
    pub fn peek(runtime_root: &Path) -> Result<Option<StateDir>, StateError> {
        match std::fs::symlink_metadata(runtime_root.join(STATE_DIR)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            _ => StateDir::open(runtime_root).map(Some),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record_path(&self, service: &str) -> PathBuf {
        self.file("services", service, "json")
    }

    /// Takes the lock that serializes start, stop and cleanup of `service`,
    /// giving up once its holder has shown no progress for `timeout`.
    pub fn lock(
        &self,
        service: &str,
        timeout: Duration,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<FileLock, StateError> {
        let path = self.path.join("locks").join(format!("{service}.lock"));
        Ok(lock_exclusive(&path, service, timeout, on_wait)?)
    }

    /// The record of `service`, if copkg has one.
    pub fn read(&self, service: &str) -> Result<Option<ServiceRecord>, StateError> {
        let record: Option<ServiceRecord> = self.read_json(&self.record_path(service))?;
        self.check_names(record, service, |r| &r.service, "services")
    }

    /// Writes the record of a service atomically (renamed into place; not
    /// fsynced: it describes processes, and none survives a power loss).
    pub fn write(&self, record: &ServiceRecord) -> Result<(), StateError> {
        self.write_json("services", &record.service, record)
    }

    /// Keeps the record of a service whose data/ and etc/ `cleanup
    /// --keep-data` kept: the service is no longer registered, and the
    /// record says which package the data belongs to.
    pub fn keep(&self, record: &ServiceRecord) -> Result<(), StateError> {
        self.write_json(KEPT, &record.service, record)?;
        self.remove(&record.service)?;
        Ok(())
    }

    /// The record kept for `service` by `cleanup --keep-data`, if any.
    pub fn kept(&self, service: &str) -> Result<Option<ServiceRecord>, StateError> {
        let record: Option<ServiceRecord> = self.read_json(&self.file(KEPT, service, "json"))?;
        self.check_names(record, service, |r| &r.service, KEPT)
    }

    /// Forgets the kept record of `service` (its data is in use again, or gone).
    pub fn forget_kept(&self, service: &str) -> Result<bool, StateError> {
        let path = self.file(KEPT, service, "json");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("cannot remove", &path)(e)),
        }
    }

    /// The desired state of `service` (`copkg enable`), if any.
    pub fn read_unit(&self, service: &str) -> Result<Option<UnitFile>, StateError> {
        let unit: Option<UnitFile> = self.read_json(&self.file("units", service, "json"))?;
        self.check_names(unit, service, |u| &u.service, "units")
    }

    /// Writes the desired state of a service atomically.
    pub fn write_unit(&self, unit: &UnitFile) -> Result<(), StateError> {
        self.write_json("units", &unit.service, unit)
    }

    /// The names of every service with a unit file, sorted.
    pub fn units(&self) -> Result<Vec<String>, StateError> {
        self.names("units")
    }

    /// What reconcile keeps of `service`'s restarts, if anything.
    pub fn read_supervision(&self, service: &str) -> Result<Option<Supervision>, StateError> {
        let kept: Option<Supervision> =
            self.read_json(&self.file("supervision", service, "json"))?;
        self.check_names(kept, service, |s| &s.service, "supervision")
    }

    /// Writes what reconcile keeps of a service's restarts atomically.
    pub fn write_supervision(&self, kept: &Supervision) -> Result<(), StateError> {
        self.write_json("supervision", &kept.service, kept)
    }

    /// Takes the lock that serializes changes to the unit files (enable,
    /// disable), so that two of them cannot make a cycle between them.
    pub fn lock_units(
        &self,
        timeout: Duration,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<FileLock, StateError> {
        let path = self.path.join("locks").join(".units.lock");
        Ok(lock_exclusive(&path, "the unit files", timeout, on_wait)?)
    }

    /// Takes the lock of `service` only if nobody holds it.
    pub fn try_lock(&self, service: &str) -> Result<Option<FileLock>, StateError> {
        let path = self.path.join("locks").join(format!("{service}.lock"));
        Ok(crate::lock::try_lock_exclusive(&path)?)
    }

    /// Where the main pid of a running service is kept for a supervisor
    /// such as systemd (`PIDFile=`): in copkg's state dir, which only
    /// copkg's user can write, never in the runtime dir, which the
    /// service's account could point at any process.
    pub fn pid_file(&self, service: &str) -> PathBuf {
        self.file("pids", service, "pid")
    }

    /// Writes the main pid of `service` atomically (mode 0644, readable by
    /// a supervisor running as another user).
    pub fn write_pid(&self, service: &str, pid: i32) -> Result<(), StateError> {
        use std::io::Write;
        let path = self.pid_file(service);
        let dir = self.path.join("pids");
        let mut temp = temp_file_in(&dir).map_err(io_err("cannot create a temp file in", &dir))?;
        temp.write_all(format!("{pid}\n").as_bytes())
            .map_err(io_err("cannot write", &path))?;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err("cannot write", &path))?;
        temp.persist(&path)
            .map_err(|e| io_err("cannot write", &path)(e.error))?;
        Ok(())
    }

    /// Removes everything copkg keeps of `service` besides its record: its
    /// unit file, what reconcile kept, and its pid file.
    pub fn remove_extras(&self, service: &str) -> Result<(), StateError> {
        for path in [
            self.file("units", service, "json"),
            self.file("supervision", service, "json"),
            self.pid_file(service),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot remove", &path)(e)),
            }
        }
        Ok(())
    }

    /// Removes the pid file of `service`, if there is one.
    pub fn remove_pid(&self, service: &str) -> Result<(), StateError> {
        let path = self.pid_file(service);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove", &path)(e)),
        }
    }

    fn file(&self, dir: &str, service: &str, extension: &str) -> PathBuf {
        self.path.join(dir).join(format!("{service}.{extension}"))
    }

    /// Reads a JSON file of the state dir, bounded; `None` when missing.
    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, StateError> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(RECORD_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("cannot read", path))?;
        if bytes.len() as u64 > RECORD_LIMIT {
            return Err(StateError::BadRecord {
                path: path.to_owned(),
                reason: format!("larger than {RECORD_LIMIT} bytes"),
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::BadRecord {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Refuses a file that names another service than its file name.
    fn check_names<T>(
        &self,
        value: Option<T>,
        service: &str,
        name: impl Fn(&T) -> &String,
        dir: &str,
    ) -> Result<Option<T>, StateError> {
        match value {
            Some(value) if name(&value) != service => Err(StateError::BadRecord {
                path: self.file(dir, service, "json"),
                reason: format!("it names service `{}`", name(&value).escape_debug()),
            }),
            other => Ok(other),
        }
    }

    /// Writes a JSON file of the state dir atomically (renamed into place).
    fn write_json(
        &self,
        dir: &str,
        service: &str,
        value: &impl Serialize,
    ) -> Result<(), StateError> {
        use std::io::Write;
        let path = self.file(dir, service, "json");
        let dir = self.path.join(dir);
        let json = serde_json::to_vec_pretty(value)
            .map_err(|e| io_err("cannot write", &path)(e.into()))?;
        let mut temp = temp_file_in(&dir).map_err(io_err("cannot create a temp file in", &dir))?;
        temp.write_all(&json)
            .map_err(io_err("cannot write", &path))?;
        temp.persist(&path)
            .map_err(|e| io_err("cannot write", &path)(e.error))?;
        Ok(())
    }

    /// The services with a `.json` file in one of the state dir's dirs, sorted.
    fn names(&self, dir: &str) -> Result<Vec<String>, StateError> {
        let dir = self.path.join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io_err("cannot read", &dir))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let service = name.strip_suffix(".json")?;
                (!service.starts_with('.')).then(|| service.to_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes the record of `service`; whether there was one.
    pub fn remove(&self, service: &str) -> Result<bool, StateError> {
        let path = self.record_path(service);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("cannot remove", &path)(e)),
        }
    }

    /// The names of every service with a record, sorted.
    pub fn services(&self) -> Result<Vec<String>, StateError> {
        self.names("services")
    }
}

/// The prefix of copkg's temp files in the state dir: `.tmp-<pid>-`, so that
/// one a killed copkg left is known for a leftover by its writer's pid.
fn temp_prefix() -> String {
    format!(".tmp-{}-", std::process::id())
}

/// A temp file in `dir`, renamed into place once written.
fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&temp_prefix())
        .tempfile_in(dir)
}

/// Removes the temp files a copkg killed mid-write left in `dir` (its pid
/// is gone); an error only leaves them for the next sweep.
fn sweep_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(".tmp-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Refuses a dir that is a symlink, not owned by copkg's user (or root), or
/// writable by group or others.
fn check_owned(path: &Path) -> Result<(), StateError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err("cannot inspect", path))?;
    let unsafe_because = |reason: String| StateError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    if meta.file_type().is_symlink() {
        // The runtime root given may be reached through the administrator's
        // links; only what copkg makes below it must not be one.
        if path.file_name().is_some_and(|n| n == STATE_DIR)
            || path
                .parent()
                .is_some_and(|p| p.file_name().is_some_and(|n| n == STATE_DIR))
        {
            return Err(unsafe_because("it is a symlink".to_owned()));
        }
        let target = std::fs::metadata(path).map_err(io_err("cannot inspect", path))?;
        return check_meta(&target, unsafe_because);
    }
    if !meta.is_dir() {
        return Err(unsafe_because("it is not a directory".to_owned()));
    }
    check_meta(&meta, unsafe_because)
}

fn check_meta(
    meta: &std::fs::Metadata,
    unsafe_because: impl Fn(String) -> StateError,
) -> Result<(), StateError> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_because(format!(
            "owned by uid {}, not {me}",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(unsafe_because(format!(
            "writable by group or others (mode {:04o})",
            mode & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(service: &str) -> ServiceRecord {
        ServiceRecord {
            service: service.into(),
            runtime_path: service.into(),
            package: "g:a:1".into(),
            package_dir: "/p".into(),
            args: vec!["--port=1".into()],
            started_at: 5,
            processes: vec![RecordedProcess {
                pid: 10,
                start_time: 20,
                pgrp: 10,
            }],
            main: Vec::new(),
            stopped_at: None,
            cgroup: None,
            starting: false,
            failed: None,
            account: None,
            settings: Default::default(),
            boot_id: None,
        }
    }

    #[test]
    fn temp_files_a_killed_copkg_left_are_swept_at_the_next_open() {
        let root = tempfile::tempdir().unwrap();
        let runtime = root.path().join("runtime");
        let state = StateDir::open(&runtime).unwrap();
        let services = state.path().join("services");
        // A writer that is gone (pid_max is at most 2^22), and one that lives.
        let dead = services.join(".tmp-4194999-abcdef");
        let live = services.join(format!("{}x", temp_prefix()));
        std::fs::write(&dead, "{").unwrap();
        std::fs::write(&live, "{").unwrap();
        StateDir::open(&runtime).unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        assert_eq!(state.services().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn records_round_trip_and_list() {
        let root = tempfile::tempdir().unwrap();
        let state = StateDir::open(&root.path().join("runtime")).unwrap();
        assert_eq!(state.read("1.a.b.c").unwrap(), None);
        state.write(&record("1.a.b.c")).unwrap();
        state.write(&record("2.a.b.c")).unwrap();
        assert_eq!(state.read("1.a.b.c").unwrap(), Some(record("1.a.b.c")));
        assert_eq!(state.services().unwrap(), ["1.a.b.c", "2.a.b.c"]);
        assert!(state.remove("1.a.b.c").unwrap());
        assert!(!state.remove("1.a.b.c").unwrap());
        assert_eq!(state.services().unwrap(), ["2.a.b.c"]);
        let mode = std::fs::metadata(state.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_record_under_another_name_or_oversized_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let state = StateDir::open(root.path()).unwrap();
        let path = state.path().join("services/1.a.b.c.json");
        std::fs::write(&path, serde_json::to_vec(&record("9.x.y.z")).unwrap()).unwrap();
        let err = state.read("1.a.b.c").unwrap_err().to_string();
        assert!(
            err.ends_with("is corrupt: it names service `9.x.y.z`"),
            "{err}"
        );
        std::fs::write(&path, vec![b' '; RECORD_LIMIT as usize + 10]).unwrap();
        let err = state.read("1.a.b.c").unwrap_err().to_string();
        assert!(err.ends_with("larger than 1048576 bytes"), "{err}");
    }

    #[test]
    fn unsafe_state_dirs_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let runtime = root.path().join("runtime");
        StateDir::open(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = StateDir::open(&runtime).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(
            err.to_string()
                .contains("writable by group or others (mode 0777)"),
            "{err}"
        );
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();

        let state = runtime.join(STATE_DIR);
        std::fs::rename(&state, root.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(root.path().join("elsewhere"), &state).unwrap();
        let err = StateDir::open(&runtime).unwrap_err().to_string();
        assert!(
            err.ends_with("is not safe for copkg's state: it is a symlink"),
            "{err}"
        );
    }
}
