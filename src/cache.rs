//! The download cache: archives fetched from http(s) repositories, kept
//! with the checksum sidecar and signature they were served with, so that a
//! reinstall, or an install into another software root, fetches no archive
//! again. File repositories are read in place and never cached.
//!
//! Layout under the cache dir (`cacheDir`):
//!
//! ```text
//! entries/sha256-<hex>/      an archive whose digest was known (sidecar or pin)
//! entries/url-<hex>/         an archive without one, keyed by the sha256 of its URL
//!     archive                its bytes
//!     archive.sha256         its sidecar, as served (when it had one)
//!     archive.minisig        its signature, as served (when it had one)
//!     entry.json             where it came from, its size and sha256
//! urls/<sha256 of a URL>     the entry last fetched from that URL (for --offline)
//! tmp/                       entries being written
//! lock                       held while the cache is trimmed to its size bound
//! ```
//!
//! An entry is written into `tmp/` and renamed into place whole, so a
//! reader never sees half of one, and two writers of the same entry leave
//! one. The cache is never trusted: every hit is hashed (and its signature
//! checked) against what the repository that asked for it requires before
//! it is used, and an entry that fails is removed. Writing to the cache is
//! best effort: a full disk costs the cache entry, never the install.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::exit::{Coded, ExitCode};
use crate::signature::{SIGNATURE_LIMIT, Signed};

/// Default size bound of the cache: 2 GiB of archives.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;
/// The cache dir of root.
pub const SYSTEM_CACHE_DIR: &str = "/var/cache/copkg";
const ARCHIVE: &str = "archive";
const SIDECAR: &str = "archive.sha256";
const SIGNATURE: &str = "archive.minisig";
const META: &str = "entry.json";
/// Largest sidecar or `entry.json` read back.
const SMALL_LIMIT: u64 = 64 * 1024;
/// Temp dirs older than this are leftovers of killed writers.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache dir is not copkg's user's own, or others may write it.
    #[error("refusing the download cache {}: {reason} (fix it, or set cacheDir / COPKG_CACHE_DIR)", dir.display())]
    Unsafe {
        /// The cache dir.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The cache dir cannot be created or inspected.
    #[error("cannot use the download cache {}", dir.display())]
    Io {
        /// The cache dir.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Coded for CacheError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CacheError::Unsafe { .. } | CacheError::Io { .. } => ExitCode::Failure,
        }
    }
}

/// What an entry is found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// The archive's sha256 (hex), from its sidecar or a pin.
    Digest(String),
    /// The URL of an archive whose digest was not known before it was read.
    Url(String),
}

impl Key {
    /// The entry's directory name.
    fn name(&self) -> String {
        match self {
            Key::Digest(hex) => format!("sha256-{hex}"),
            Key::Url(url) => format!("url-{}", sha256_hex(url.as_bytes())),
        }
    }
}

/// What `entry.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    url: String,
    sha256: String,
    bytes: u64,
}

/// An entry found in the cache, not yet checked.
#[derive(Debug)]
pub struct Hit {
    /// The archive, opened.
    pub file: File,
    /// Its size.
    pub len: u64,
    /// Its sha256 as the entry records it (checked by [`Hit::holds`]).
    pub sha256: String,
    /// The sidecar it was served with, if any.
    pub sidecar: Option<Vec<u8>>,
    /// The signature it was served with, if any.
    pub signature: Option<Vec<u8>>,
    /// Where the entry lives (for messages).
    pub path: PathBuf,
    key: Key,
}

impl Hit {
    /// Whether the archive's bytes hash to `sha256` and, when `signed` is
    /// given, carry that signature; the file is rewound after.
    pub fn holds(&mut self, sha256: &str, signed: Option<&Signed>) -> bool {
        let check = match signed.map(Signed::check).transpose() {
            Ok(check) => check,
            Err(_) => return false,
        };
        let mut reader = crate::signature::CheckingReader::new(&mut self.file, check);
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0; 256 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let signed_ok = reader.finish(&self.path.display().to_string()).is_ok();
        let hashed = crate::extract::hex(&hasher.finalize());
        signed_ok && hashed == sha256 && self.file.rewind().is_ok()
    }

    /// The key the entry was found by.
    pub fn key(&self) -> &Key {
        &self.key
    }
}

/// The download cache (nothing is created until it is used).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Looked into, never written (a dry run): nothing is created, marked
    /// used, removed or added.
    read_only: bool,
}

impl Cache {
    /// The cache at `dir`, trimmed to `max_bytes` of archives.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Cache {
            dir: dir.into(),
            max_bytes,
            read_only: false,
        }
    }

    /// The same cache, only looked into: lookups answer as they would, and
    /// nothing in the cache dir is created or changed (for `--dry-run`).
    pub fn read_only(self) -> Self {
        Cache {
            read_only: true,
            ..self
        }
    }

    /// The cache dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The default cache dir: [`SYSTEM_CACHE_DIR`] for root, else
    /// `$XDG_CACHE_HOME/copkg`, else `~/.cache/copkg`.
    pub fn default_dir(
        is_root: bool,
        xdg_cache_home: Option<&Path>,
        home: Option<&Path>,
    ) -> Option<PathBuf> {
        if is_root {
            return Some(PathBuf::from(SYSTEM_CACHE_DIR));
        }
        match xdg_cache_home.filter(|p| p.is_absolute()) {
            Some(dir) => Some(dir.join("copkg")),
            None => home.map(|home| home.join(".cache/copkg")),
        }
    }

    /// Creates the cache dir (0700) if missing, and refuses one that is not
    /// this user's or that others may write. A read-only cache creates
    /// nothing: `Ok(false)` when it has no dir yet.
    fn ensure(&self) -> Result<bool, CacheError> {
        let io_err = |source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        };
        if !self.read_only {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(io_err)?;
        }
        let meta = match std::fs::metadata(&self.dir) {
            Ok(meta) => meta,
            Err(e) if self.read_only && e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(e)),
        };
        let euid = nix::unistd::geteuid().as_raw();
        let refuse = |reason: String| CacheError::Unsafe {
            dir: self.dir.clone(),
            reason,
        };
        if !meta.is_dir() {
            return Err(refuse("not a directory".to_owned()));
        }
        if meta.uid() != euid {
            return Err(refuse(format!(
                "owned by uid {}, not by copkg's user (uid {euid})",
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "writable by group or others (mode {:o})",
                meta.permissions().mode() & 0o7777
            )));
        }
        if self.read_only {
            return Ok(true);
        }
        for sub in ["entries", "urls", "tmp"] {
            match std::fs::DirBuilder::new()
                .mode(0o700)
                .create(self.dir.join(sub))
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(true)
    }

    /// The entry for `key`, if the cache has a readable one.
    pub fn lookup(&self, key: &Key) -> Result<Option<Hit>, CacheError> {
        if !self.ensure()? {
            return Ok(None);
        }
        let path = self.dir.join("entries").join(key.name());
        let meta: Meta = match crate::bounded::read_file(&path.join(META), SMALL_LIMIT)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            Some(meta) => meta,
            None => return Ok(None),
        };
        // Not through a symlink, and a FIFO put there is not waited on.
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
            .open(path.join(ARCHIVE))
        else {
            return Ok(None);
        };
        let Some(len) = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
        else {
            return Ok(None);
        };
        let read = |name: &str, limit| crate::bounded::read_file(&path.join(name), limit).ok();
        Ok(Some(Hit {
            file,
            len,
            sha256: meta.sha256,
            sidecar: read(SIDECAR, SMALL_LIMIT),
            signature: read(SIGNATURE, SIGNATURE_LIMIT),
            path,
            key: key.clone(),
        }))
    }

    /// Whether an entry for `key` is there, without opening it (a hint:
    /// [`Cache::lookup`] says whether it is sound).
    pub fn has(&self, key: &Key) -> bool {
        self.dir
            .join("entries")
            .join(key.name())
            .join(META)
            .is_file()
    }

    /// The key of the entry last fetched from `url` (for --offline, where
    /// no sidecar can be asked for).
    pub fn key_for_url(&self, url: &str) -> Result<Option<Key>, CacheError> {
        if !self.ensure()? {
            return Ok(None);
        }
        let index = self.dir.join("urls").join(sha256_hex(url.as_bytes()));
        let Ok(bytes) = crate::bounded::read_file(&index, 256) else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        Ok(match text.strip_prefix("sha256-") {
            Some(hex) if crate::coordinate::parse_sha256_hex(hex).is_some() => {
                Some(Key::Digest(hex.to_owned()))
            }
            Some(_) => None,
            None if text == Key::Url(url.to_owned()).name() => Some(Key::Url(url.to_owned())),
            None => None,
        })
    }

    /// Removes an entry that failed its checks.
    pub fn remove(&self, hit: &Hit) {
        if !self.read_only {
            self.discard(&hit.path);
        }
    }

    /// Marks an entry as just used (eviction takes the oldest first), and
    /// records that `url` serves it and, when it changed, the signature
    /// it was served with this time.
    pub fn used(&self, hit: &Hit, url: &str, signature: Option<&[u8]>) {
        if self.read_only {
            return;
        }
        let _ = File::open(hit.path.join(META)).and_then(|f| f.set_modified(SystemTime::now()));
        if let Some(bytes) = signature
            && hit.signature.as_deref() != Some(bytes)
        {
            let _ = self.replace(&hit.path.join(SIGNATURE), bytes);
        }
        let _ = self.index(url, &hit.key);
    }

    /// A writer for an archive about to be downloaded from `url`; `None`
    /// when the cache cannot take it (best effort).
    pub fn writer(&self) -> Option<Writer> {
        if self.read_only {
            return None;
        }
        self.ensure().ok()?;
        let temp = tempfile::Builder::new()
            .prefix("entry.")
            .tempdir_in(self.dir.join("tmp"))
            .ok()?;
        let file = File::create(temp.path().join(ARCHIVE)).ok()?;
        Some(Writer {
            temp,
            file: io::BufWriter::with_capacity(256 * 1024, file),
            bytes: 0,
            failed: false,
        })
    }

    /// Writes `bytes` to `path` through a temp file and a rename.
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut temp = tempfile::NamedTempFile::new_in(self.dir.join("tmp"))?;
        temp.write_all(bytes)?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Records that `url` last served the entry `key`.
    fn index(&self, url: &str, key: &Key) -> io::Result<()> {
        let path = self.dir.join("urls").join(sha256_hex(url.as_bytes()));
        let name = key.name();
        if std::fs::read(&path).is_ok_and(|b| b == name.as_bytes()) {
            return Ok(());
        }
        self.replace(&path, name.as_bytes())
    }

    /// Moves an entry (or temp dir) aside and deletes it; readers holding
    /// its archive open keep reading it.
    fn discard(&self, path: &Path) {
        let aside = self.dir.join("tmp").join(format!(
            "gone.{}.{}",
            std::process::id(),
            sha256_hex(path.as_os_str().as_encoded_bytes())
        ));
        if std::fs::rename(path, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }

    /// Trims the cache to its bound, oldest use first, and sweeps stale
    /// temp dirs and URL records of entries no longer there. One process
    /// trims at a time; the others skip it.
    fn trim(&self) {
        let Ok(Some(_lock)) = crate::lock::try_lock_exclusive(&self.dir.join("lock")) else {
            return;
        };
        let now = SystemTime::now();
        if let Ok(temps) = std::fs::read_dir(self.dir.join("tmp")) {
            for temp in temps.flatten() {
                let stale = temp
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TEMP);
                if stale {
                    let _ = std::fs::remove_dir_all(temp.path())
                        .or_else(|_| std::fs::remove_file(temp.path()));
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(self.dir.join("entries")) else {
            return;
        };
        let mut sized: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .map(|entry| {
                let path = entry.path();
                let used = std::fs::metadata(path.join(META))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let bytes = std::fs::metadata(path.join(ARCHIVE)).map_or(0, |m| m.len());
                (used, bytes, path)
            })
            .collect();
        let mut total: u64 = sized.iter().map(|(_, bytes, _)| bytes).sum();
        sized.sort();
        for (_, bytes, path) in sized {
            if total <= self.max_bytes {
                break;
            }
            self.discard(&path);
            total -= bytes;
        }
        // URL records whose entry has gone.
        if let Ok(urls) = std::fs::read_dir(self.dir.join("urls")) {
            for record in urls.flatten() {
                let gone = std::fs::read(record.path()).is_ok_and(|name| {
                    let name = String::from_utf8_lossy(&name).into_owned();
                    !self.dir.join("entries").join(name).exists()
                });
                if gone {
                    let _ = std::fs::remove_file(record.path());
                }
            }
        }
    }
}

/// An archive being written to the cache as it is downloaded.
#[derive(Debug)]
pub struct Writer {
    temp: tempfile::TempDir,
    file: io::BufWriter<File>,
    bytes: u64,
    failed: bool,
}

impl Writer {
    /// Appends the next bytes of the archive (a write error gives up on
    /// the entry, never on the download).
    pub fn write(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        self.bytes += bytes.len() as u64;
        if self.file.write_all(bytes).is_err() {
            self.failed = true;
        }
    }

    /// Puts the entry in place under `key`, with the sidecar and signature
    /// it was served with, once the install checked that the bytes it read
    /// (the very bytes written here, as they streamed past) hash to
    /// `sha256`. Not hashed again here: every hit is hashed before it is
    /// used, and one that does not match is removed. A concurrent writer
    /// of the same entry wins; the cache is then trimmed to its bound.
    pub fn commit(
        mut self,
        cache: &Cache,
        key: &Key,
        sha256: &str,
        url: &str,
        sidecar: Option<&[u8]>,
        signature: Option<&[u8]>,
    ) {
        if self.failed || self.file.flush().is_err() {
            return;
        }
        let meta = Meta {
            url: url.to_owned(),
            sha256: sha256.to_owned(),
            bytes: self.bytes,
        };
        let dir = self.temp.path();
        let written = (|| -> io::Result<()> {
            if let Some(bytes) = sidecar {
                std::fs::write(dir.join(SIDECAR), bytes)?;
            }
            if let Some(bytes) = signature {
                std::fs::write(dir.join(SIGNATURE), bytes)?;
            }
            std::fs::write(dir.join(META), serde_json::to_vec(&meta)?)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        })();
        if written.is_err() {
            return;
        }
        let target = cache.dir.join("entries").join(key.name());
        match std::fs::rename(dir, &target) {
            Ok(()) => {
                let _ = self.temp.keep();
            }
            // A concurrent install of the same archive put it there first.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOTEMPTY | nix::libc::EEXIST)
                ) => {}
            Err(_) => return,
        }
        let _ = cache.index(url, key);
        cache.trim();
    }
}

/// A reader that copies what it reads into a cache [`Writer`].
pub struct Tee<'a, R> {
    /// What is read.
    pub inner: R,
    /// Where a copy goes, if anywhere.
    pub writer: &'a mut Option<Writer>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(writer) = self.writer.as_mut() {
            writer.write(&buf[..n]);
        }
        Ok(n)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::extract::hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> String {
        sha256_hex(bytes)
    }

    fn put(cache: &Cache, url: &str, bytes: &[u8]) -> Key {
        let key = Key::Digest(digest(bytes));
        let mut writer = cache.writer().unwrap();
        writer.write(bytes);
        writer.commit(cache, &key, &digest(bytes), url, Some(b"x"), None);
        key
    }

    #[test]
    fn default_dir_is_system_wide_for_root_and_per_user_otherwise() {
        let home = Path::new("/home/u");
        let cases = [
            (true, None, Some(home), Some("/var/cache/copkg")),
            (false, None, Some(home), Some("/home/u/.cache/copkg")),
            (
                false,
                Some(Path::new("/xdg")),
                Some(home),
                Some("/xdg/copkg"),
            ),
            // A relative XDG_CACHE_HOME is ignored, as the spec says.
            (
                false,
                Some(Path::new("rel")),
                Some(home),
                Some("/home/u/.cache/copkg"),
            ),
            (false, None, None, None),
        ];
        for (root, xdg, home, want) in cases {
            assert_eq!(
                Cache::default_dir(root, xdg, home).as_deref(),
                want.map(Path::new),
                "{root} {xdg:?}"
            );
        }
    }

    #[test]
    fn entries_are_found_by_digest_and_by_url_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"), 1 << 20);
        let key = put(&cache, "http://r/a.tar.gz", b"archive one");
        let mut hit = cache.lookup(&key).unwrap().unwrap();
        assert_eq!(hit.sidecar.as_deref(), Some(&b"x"[..]));
        assert!(hit.holds(&digest(b"archive one"), None));
        assert!(!hit.holds(&digest(b"something else"), None));
        assert_eq!(
            cache.key_for_url("http://r/a.tar.gz").unwrap(),
            Some(key.clone())
        );
        assert_eq!(cache.key_for_url("http://r/other.tar.gz").unwrap(), None);
        // An entry whose bytes are not its digest (written wrong, or
        // altered since) is never used: a hit is hashed before it is.
        let mut writer = cache.writer().unwrap();
        writer.write(b"tampered");
        let other = Key::Digest(digest(b"expected"));
        writer.commit(
            &cache,
            &other,
            &digest(b"expected"),
            "http://r/b",
            None,
            None,
        );
        let mut hit = cache.lookup(&other).unwrap().unwrap();
        assert!(!hit.holds(&digest(b"expected"), None));
        let mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn the_oldest_entries_go_first_when_over_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"), 25);
        let first = put(&cache, "http://r/1", &[1; 10]);
        std::thread::sleep(Duration::from_millis(20));
        let second = put(&cache, "http://r/2", &[2; 10]);
        std::thread::sleep(Duration::from_millis(20));
        // Using the first makes the second the oldest.
        let hit = cache.lookup(&first).unwrap().unwrap();
        cache.used(&hit, "http://r/1", None);
        std::thread::sleep(Duration::from_millis(20));
        let third = put(&cache, "http://r/3", &[3; 10]);
        assert!(cache.lookup(&first).unwrap().is_some());
        assert!(cache.lookup(&second).unwrap().is_none());
        assert!(cache.lookup(&third).unwrap().is_some());
        assert_eq!(cache.key_for_url("http://r/2").unwrap(), None);
    }

    #[test]
    fn an_archive_that_is_a_link_or_a_fifo_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"), 1 << 20);
        let key = put(&cache, "http://r/a", b"bytes");
        let archive = cache.dir().join("entries").join(key.name()).join(ARCHIVE);
        std::fs::remove_file(&archive).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &archive).unwrap();
        assert!(cache.lookup(&key).unwrap().is_none());
        std::fs::remove_file(&archive).unwrap();
        nix::unistd::mkfifo(&archive, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(cache.lookup(&key).unwrap().is_none());
    }

    #[test]
    fn a_cache_dir_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"), 1 << 20);
        cache.ensure().unwrap();
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = cache.lookup(&Key::Url("http://x".into())).unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
    }
}
