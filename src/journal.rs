//! The audit journal: one JSON line for every change copkg makes to this
//! machine (installs, starts, stops, …), in `<runtime root>/.copkg/`
//! beside copkg's records, where only copkg's own user can write.
//!
//! Each entry is appended with one `write` to a file opened `O_APPEND`, and
//! no line is longer than [`LINE_LIMIT`], so concurrent copkg processes
//! never interleave parts of lines. The file is rotated to `journal.jsonl.1`
//! (and on, [`KEEP`] files kept) once it would grow past [`ROTATE_AT`],
//! under a lock so that two processes never both rotate. Files are opened
//! without following symlinks and created 0600.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit::{Coded, ExitCode};
use crate::state::{StateDir, StateError};

/// The journal's file name in the state dir.
pub const FILE_NAME: &str = "journal.jsonl";
/// Longest line written, newline included; longer fields are truncated.
pub const LINE_LIMIT: usize = 4096;
/// Size past which the journal is rotated.
pub const ROTATE_AT: u64 = 8 << 20;
/// Rotated files kept (`journal.jsonl.1` … `journal.jsonl.KEEP`).
pub const KEEP: usize = 3;
/// How long an append or a read waits for a rotation in progress.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// What a truncated field ends with.
const ELLIPSIS: &str = "…";

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The state dir could not be opened.
    #[error("cannot open copkg's state dir for the journal")]
    State(#[from] StateError),
    /// A journal file could not be opened, written or read.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Something other than a regular file (a symlink, a FIFO) is where a
    /// journal file should be.
    #[error("{} is not a regular file; it is left alone", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The lock that serializes rotations could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

impl Coded for JournalError {
    fn exit_code(&self) -> ExitCode {
        match self {
            JournalError::State(source) => source.exit_code(),
            JournalError::Lock(source) => source.exit_code(),
            JournalError::Io { .. } | JournalError::NotAFile { .. } => ExitCode::Failure,
        }
    }
}

/// One change copkg made, or tried to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it ended, RFC 3339 in UTC (`2024-05-01T12:00:00Z`).
    pub time: String,
    /// The same, in seconds since the Unix epoch.
    pub epoch: u64,
    /// The real uid of whoever ran copkg.
    pub uid: u32,
    /// That uid's name, when the system knows it.
    #[serde(default)]
    pub user: Option<String>,
    /// `SUDO_USER` when copkg ran under sudo: the person behind it. Taken
    /// from the environment, so only as honest as the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// The process that made the change.
    pub pid: u32,
    /// The change: `install`, `start`, `stop`, ….
    pub action: String,
    /// copkg's command line, credentials in URLs redacted.
    pub command: String,
    /// The service or package coordinate changed.
    pub target: String,
    /// `ok`, `unchanged` (a no-op) or `error`.
    pub result: String,
    /// Whether anything changed.
    pub changed: bool,
    /// The error, on one line, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code of this change (the command's exit code when it was
    /// the command's only target).
    pub exit_code: u8,
}

/// How a change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded; `changed` is false for a no-op.
    Done {
        /// Whether anything changed.
        changed: bool,
    },
    /// It failed.
    Failed {
        /// The error on one line.
        message: String,
        /// Its exit code.
        code: ExitCode,
    },
}

impl Outcome {
    /// The outcome of a result: `changed` says whether its value is a change.
    pub fn of<T, E: Coded>(result: &Result<T, E>, changed: impl FnOnce(&T) -> bool) -> Outcome {
        match result {
            Ok(value) => Outcome::Done {
                changed: changed(value),
            },
            Err(err) => Outcome::failed(err),
        }
    }

    /// The outcome of an error.
    pub fn failed<E: Coded>(err: &E) -> Outcome {
        Outcome::Failed {
            message: crate::exit::one_line(err),
            code: err.exit_code(),
        }
    }
}

impl Entry {
    /// An entry for `action` on `target` made now by this process.
    pub fn now(action: &str, target: &str, outcome: &Outcome) -> Entry {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let actor = actor();
        let (result, changed, error, exit_code) = match outcome {
            Outcome::Done { changed: true } => ("ok", true, None, ExitCode::Success),
            Outcome::Done { changed: false } => ("unchanged", false, None, ExitCode::Success),
            Outcome::Failed { message, code } => ("error", false, Some(message.clone()), *code),
        };
        Entry {
            time: rfc3339(epoch),
            epoch,
            uid: actor.uid,
            user: actor.user.clone(),
            sudo_user: actor.sudo_user.clone(),
            pid: std::process::id(),
            action: action.to_owned(),
            command: command_line().to_owned(),
            target: target.to_owned(),
            result: result.to_owned(),
            changed,
            error: error.map(|e| one_line(&e)),
            exit_code: exit_code.code(),
        }
    }

    /// The entry as one JSON line (newline included) of at most
    /// [`LINE_LIMIT`] bytes: the longest text field is cut in half until it fits.
    pub fn to_line(&self) -> Vec<u8> {
        let mut entry = self.clone();
        loop {
            let mut line = serde_json::to_vec(&entry).unwrap_or_default();
            line.push(b'\n');
            if line.len() <= LINE_LIMIT {
                return line;
            }
            let fields: [&mut String; 5] = [
                &mut entry.command,
                &mut entry.target,
                entry.error.get_or_insert_with(String::new),
                entry.user.get_or_insert_with(String::new),
                entry.sudo_user.get_or_insert_with(String::new),
            ];
            let longest = fields
                .into_iter()
                .max_by_key(|f| f.len())
                .filter(|f| f.len() > ELLIPSIS.len());
            let Some(field) = longest else {
                // Nothing left to cut: cannot happen with short fixed fields.
                return line;
            };
            let keep = floor_char_boundary(field, field.len() / 2);
            field.truncate(keep);
            field.push_str(ELLIPSIS);
            for empty in [&mut entry.error, &mut entry.user, &mut entry.sudo_user] {
                if empty.as_deref() == Some("") {
                    *empty = None;
                }
            }
        }
    }
}

/// The largest char boundary at or below `index`.
fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// A message on one line: line breaks become spaces.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Who runs this process.
struct Actor {
    uid: u32,
    user: Option<String>,
    sudo_user: Option<String>,
}

fn actor() -> &'static Actor {
    static ACTOR: OnceLock<Actor> = OnceLock::new();
    ACTOR.get_or_init(|| {
        let uid = nix::unistd::getuid();
        Actor {
            uid: uid.as_raw(),
            user: nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name),
            sudo_user: std::env::var_os("SUDO_USER")
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty()),
        }
    })
}

/// This process's command line after the program name, each argument with
/// any `user:password@` of a URL redacted, quoted where it needs to be.
fn command_line() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    LINE.get_or_init(|| {
        std::env::args_os()
            .skip(1)
            .map(|arg| quote(&crate::repo::redact_url(&arg.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// An argument as a shell would need it: bare when it is plain, else in
/// single quotes.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=@+%".contains(&b) || b >= 0x80);
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Seconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The journal in a state dir.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    rotate_at: u64,
    keep: usize,
}

impl Journal {
    /// The journal of the state dir under `runtime_root` (made if missing).
    pub fn open(runtime_root: &Path) -> Result<Journal, JournalError> {
        Ok(Journal::in_state_dir(&StateDir::open(runtime_root)?))
    }

    /// The journal in an opened state dir.
    pub fn in_state_dir(state: &StateDir) -> Journal {
        Journal {
            dir: state.path().to_owned(),
            rotate_at: ROTATE_AT,
            keep: KEEP,
        }
    }

    /// The same journal with other rotation limits (for tests).
    pub fn with_limits(mut self, rotate_at: u64, keep: usize) -> Journal {
        self.rotate_at = rotate_at;
        self.keep = keep.max(1);
        self
    }

    /// The current file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.{n}"))
    }

    fn lock(&self) -> Result<crate::lock::FileLock, JournalError> {
        let path = self.dir.join("locks").join("journal.lock");
        Ok(crate::lock::lock_exclusive(
            &path,
            "the journal",
            LOCK_TIMEOUT,
            &mut |_| {},
        )?)
    }

    /// Appends an entry as one line, rotating first when the file would
    /// grow past its limit.
    pub fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let line = entry.to_line();
        let path = self.path();
        let mut rotated = false;
        loop {
            let mut file = open_for_append(&path)?;
            let size = file
                .metadata()
                .map_err(io_err("cannot inspect", &path))?
                .len();
            if !rotated && size > 0 && size + line.len() as u64 > self.rotate_at {
                let _lock = self.lock()?;
                // Another process may have rotated since this one opened.
                match std::fs::symlink_metadata(&path) {
                    Ok(now)
                        if now.ino() == file.metadata().map_or(0, |m| m.ino())
                            && now.len() + line.len() as u64 > self.rotate_at =>
                    {
                        self.rotate()?;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("cannot inspect", &path)(e)),
                }
                rotated = true;
                continue;
            }
            // One write: O_APPEND puts the whole line at the end at once.
            let written = file.write(&line).map_err(io_err("cannot write", &path))?;
            if written != line.len() {
                return Err(io_err("cannot write", &path)(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("only {written} of {} bytes written", line.len()),
                )));
            }
            return Ok(());
        }
    }

    /// Shifts the rotated files up by one (the oldest falls off) and the
    /// current file to `.1`. Renames never follow a symlink.
    fn rotate(&self) -> Result<(), JournalError> {
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            match std::fs::rename(&from, self.rotated(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot rotate", &from)(e)),
            }
        }
        let path = self.path();
        std::fs::rename(&path, self.rotated(1)).map_err(io_err("cannot rotate", &path))
    }

    /// Opens every journal file, oldest first, under the rotation lock so
    /// that no rotation falls between two opens; reading them afterwards
    /// needs no lock.
    pub fn snapshot(&self) -> Result<Vec<JournalFile>, JournalError> {
        let _lock = self.lock()?;
        let mut files = Vec::new();
        let paths = (1..=self.keep)
            .rev()
            .map(|n| self.rotated(n))
            .chain([self.path()]);
        for path in paths {
            match open_for_read(&path) {
                Ok(file) => files.push(JournalFile { path, file }),
                Err(JournalError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(files)
    }
}

/// One journal file, opened.
#[derive(Debug)]
pub struct JournalFile {
    /// Its path.
    pub path: PathBuf,
    file: File,
}

/// What reading the journal found besides its entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadReport {
    /// Lines that were not entries (too long, not JSON, missing fields).
    pub corrupt: usize,
}

/// Reads the entries of `files` in order, line by line (memory bounded by
/// [`LINE_LIMIT`]), giving each to `each`; corrupt lines are counted and
/// skipped.
pub fn read_entries(
    files: Vec<JournalFile>,
    each: &mut dyn FnMut(Entry),
) -> Result<ReadReport, JournalError> {
    let mut report = ReadReport::default();
    for JournalFile { path, file } in files {
        let mut reader = BufReader::new(file);
        loop {
            let mut line = Vec::new();
            let n = reader
                .by_ref()
                .take(LINE_LIMIT as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(io_err("cannot read", &path))?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') && line.len() > LINE_LIMIT {
                // Too long: skip the rest of it.
                report.corrupt += 1;
                skip_line(&mut reader).map_err(io_err("cannot read", &path))?;
                continue;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Entry>(text) {
                Ok(entry) => each(entry),
                Err(_) => report.corrupt += 1,
            }
        }
    }
    Ok(report)
}

fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let len = buffer.len();
                reader.consume(len);
            }
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating, 0600) a journal file for appending: never through a
/// symlink, never blocking on a FIFO, refused unless a regular file.
fn open_for_append(path: &Path) -> Result<File, JournalError> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(io_err("cannot open", path))?;
    let meta = regular(&file, path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("cannot restrict the mode of", path))?;
    }
    Ok(file)
}

fn open_for_read(path: &Path) -> Result<File, JournalError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => JournalError::NotAFile {
                path: path.to_owned(),
            },
            _ => io_err("cannot open", path)(source),
        })?;
    regular(&file, path)?;
    Ok(file)
}

fn libc_flags() -> i32 {
    use nix::fcntl::OFlag;
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()
}

fn regular(file: &File, path: &Path) -> Result<std::fs::Metadata, JournalError> {
    let meta = file.metadata().map_err(io_err("cannot inspect", path))?;
    if !meta.is_file() {
        return Err(JournalError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(meta)
}

/// The journal of one runtime root for this process: opened on first use,
/// and its failures reported once, so that a command whose journal cannot
/// be written still works and warns a single time.
#[derive(Debug)]
pub struct Recorder {
    runtime_root: PathBuf,
    journal: OnceLock<Result<Journal, Arc<JournalError>>>,
    warned: AtomicBool,
}

impl Recorder {
    /// A recorder for the journal under `runtime_root`, opened on first use.
    pub fn new(runtime_root: &Path) -> Recorder {
        Recorder {
            runtime_root: runtime_root.to_owned(),
            journal: OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// The process-wide recorder of `runtime_root`, shared by the commands
    /// and the Lua module so that a failure is reported once.
    pub fn shared(runtime_root: &Path) -> Arc<Recorder> {
        static RECORDERS: OnceLock<Mutex<Vec<Arc<Recorder>>>> = OnceLock::new();
        let mut recorders = RECORDERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(found) = recorders.iter().find(|r| r.runtime_root == runtime_root) {
            return found.clone();
        }
        let recorder = Arc::new(Recorder::new(runtime_root));
        recorders.push(recorder.clone());
        recorder
    }

    /// Appends an entry for `action` on `target`; returns the failure only
    /// the first time one happens, for the caller to report.
    pub fn record(&self, action: &str, target: &str, outcome: &Outcome) -> Option<String> {
        let journal = self
            .journal
            .get_or_init(|| Journal::open(&self.runtime_root).map_err(Arc::new));
        let failure = match journal {
            Ok(journal) => match journal.append(&Entry::now(action, target, outcome)) {
                Ok(()) => return None,
                Err(err) => crate::exit::one_line(&err),
            },
            Err(err) => crate::exit::one_line(&**err),
        };
        (!self.warned.swap(true, Ordering::SeqCst)).then_some(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: &str) -> Entry {
        Entry::now("start", target, &Outcome::Done { changed: true })
    }

    #[test]
    fn rfc3339_by_hand() {
        for (epoch, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_164_799, "2024-02-28T23:59:59Z"),
            (1_709_251_200, "2024-03-01T00:00:00Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
            (1_735_689_599, "2024-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(epoch), text, "{epoch}");
        }
    }

    #[test]
    fn quoting() {
        for (arg, quoted) in [
            ("install", "install"),
            ("a:b:1", "a:b:1"),
            (
                "--repo=https://<redacted>@h/x",
                "'--repo=https://<redacted>@h/x'",
            ),
            ("--repo=https://h/x", "--repo=https://h/x"),
            ("two words", "'two words'"),
            ("it's", r"'it'\''s'"),
            ("", "''"),
            ("a\nb", "'a\nb'"),
        ] {
            assert_eq!(quote(arg), quoted);
        }
    }

    #[test]
    fn long_fields_are_cut_to_the_line_limit() {
        let mut long = entry(&"t".repeat(10_000));
        long.error = Some("é".repeat(5_000));
        long.command = "\u{1}".repeat(3_000);
        let line = long.to_line();
        assert!(line.len() <= LINE_LIMIT, "{}", line.len());
        assert!(line.ends_with(b"\n"));
        let back: Entry = serde_json::from_slice(&line).unwrap();
        assert!(back.target.starts_with("ttt") && back.target.ends_with(ELLIPSIS));
        assert!(back.error.unwrap().ends_with(ELLIPSIS));
        assert_eq!(back.action, "start");
        // A short entry is left whole.
        let short = entry("1.svc.a.b");
        let back: Entry = serde_json::from_slice(&short.to_line()).unwrap();
        assert_eq!(back, short);
    }

    #[test]
    fn outcomes_map_to_result_fields() {
        let ok = Entry::now("stop", "x", &Outcome::Done { changed: true });
        assert_eq!(
            (ok.result.as_str(), ok.changed, ok.exit_code),
            ("ok", true, 0)
        );
        let noop = Entry::now("stop", "x", &Outcome::Done { changed: false });
        assert_eq!(
            (noop.result.as_str(), noop.changed, noop.exit_code),
            ("unchanged", false, 0)
        );
        let failed = Entry::now(
            "stop",
            "x",
            &Outcome::Failed {
                message: "no\nsuch".into(),
                code: ExitCode::NoSuchService,
            },
        );
        assert_eq!(failed.result, "error");
        assert_eq!(failed.error.as_deref(), Some("no such"));
        assert_eq!(failed.exit_code, 11);
        assert_eq!(failed.uid, nix::unistd::getuid().as_raw());
    }

    fn read_all(journal: &Journal) -> (Vec<Entry>, ReadReport) {
        let mut entries = Vec::new();
        let report = read_entries(journal.snapshot().unwrap(), &mut |e| entries.push(e)).unwrap();
        (entries, report)
    }

    #[test]
    fn concurrent_appends_rotate_and_stay_whole() {
        let root = tempfile::tempdir().unwrap();
        let journal = Journal::open(root.path()).unwrap().with_limits(16 << 10, 3);
        let threads = 8;
        let per_thread = 200;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let journal = journal.clone();
                scope.spawn(move || {
                    for i in 0..per_thread {
                        let mut e = entry(&format!("{t}.{i}"));
                        e.error = Some("x".repeat(i % 300));
                        journal.append(&e).unwrap();
                    }
                });
            }
        });
        let (entries, report) = read_all(&journal);
        assert_eq!(report.corrupt, 0);
        // Rotated: the oldest fell off, and what is kept is bounded.
        assert!(entries.len() < threads * per_thread);
        assert!(!entries.is_empty());
        let mut total = 0;
        for n in 1..=3 {
            let size = std::fs::metadata(journal.rotated(n)).unwrap().len();
            assert!(size <= (16 << 10) + LINE_LIMIT as u64, "{n}: {size}");
            total += size;
        }
        assert!(!journal.rotated(4).exists());
        total += std::fs::metadata(journal.path()).unwrap().len();
        assert!(total <= 4 * ((16 << 10) + LINE_LIMIT as u64));
        // Rotation drops the oldest lines only: what is kept of each
        // thread is its last entries, in order, with no hole.
        for t in 0..threads {
            let seen: Vec<usize> = entries
                .iter()
                .filter_map(|e| e.target.strip_prefix(&format!("{t}.")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert!(seen.windows(2).all(|w| w[0] + 1 == w[1]), "{t}: {seen:?}");
            assert!(
                seen.last().is_none_or(|&i| i == per_thread - 1),
                "{t}: {seen:?}"
            );
        }
        assert!(
            entries
                .last()
                .unwrap()
                .target
                .ends_with(&format!(".{}", per_thread - 1))
        );
    }

    #[test]
    fn corrupt_lines_are_skipped_and_counted() {
        let root = tempfile::tempdir().unwrap();
        let journal = Journal::open(root.path()).unwrap();
        journal.append(&entry("1.a.b.c")).unwrap();
        let mut file = open_for_append(&journal.path()).unwrap();
        file.write_all(b"{not json\n").unwrap();
        file.write_all(&vec![b'x'; 3 * LINE_LIMIT]).unwrap();
        file.write_all(b"\n\n{\"time\": 1}\n").unwrap();
        journal.append(&entry("2.a.b.c")).unwrap();
        let (entries, report) = read_all(&journal);
        let targets: Vec<&str> = entries.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, ["1.a.b.c", "2.a.b.c"]);
        assert_eq!(report.corrupt, 3);
    }

    #[test]
    fn a_symlink_at_the_journal_path_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let journal = Journal::open(&root.path().join("runtime")).unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, journal.path()).unwrap();
        assert!(journal.append(&entry("1.a.b.c")).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(matches!(
            journal.snapshot(),
            Err(JournalError::NotAFile { .. })
        ));
    }

    #[test]
    fn the_journal_is_created_0600_and_a_wider_mode_is_narrowed() {
        let root = tempfile::tempdir().unwrap();
        let journal = Journal::open(root.path()).unwrap();
        journal.append(&entry("1.a.b.c")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&journal.path()), 0o600);
        std::fs::set_permissions(journal.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        journal.append(&entry("1.a.b.c")).unwrap();
        assert_eq!(mode(&journal.path()), 0o600);
    }

    #[test]
    fn a_recorder_reports_its_failure_once() {
        let root = tempfile::tempdir().unwrap();
        // A file where the runtime root should be: the state dir cannot open.
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        let recorder = Recorder::new(&file.join("runtime"));
        let done = Outcome::Done { changed: true };
        let first = recorder.record("install", "g:a:1", &done);
        assert!(first.is_some_and(|m| m.contains("state dir")));
        assert_eq!(recorder.record("install", "g:a:2", &done), None);
        let good = Recorder::new(&root.path().join("runtime"));
        assert_eq!(good.record("install", "g:a:1", &done), None);
        let text =
            std::fs::read_to_string(root.path().join("runtime/.copkg").join(FILE_NAME)).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
