//! The package store under a software root: verified, atomic, locked
//! installs; uninstall; listing. Its own state lives in `<root>/.copkg/`
//! (`locks/`, `tmp/`, `trash/`).
//!
//! An install is fetched into a fresh temp dir in `<root>/.copkg/tmp` — a
//! `.tar.gz` in one streaming pass, a `.zip` (where a repository has no
//! `.tar.gz`) downloaded to a temp file, verified, then unpacked — its digest
//! checked, its manifest recorded (`store/manifest.rs`), a completion marker
//! written last, everything made durable, and only then renamed into place,
//! all while holding a per-coordinate `flock`. [`Store::verify`] compares an
//! install dir with its manifest; [`Store::adopt`] takes over a package dir
//! the original copkg installed.

mod manifest;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError, Key, Tee};
use crate::coordinate::{PackageCoordinate, parse_sha256_hex};
use crate::exit::{Coded, ExitCode};
use crate::extract::{self, ExtractError, Limits, Unpacked};
use crate::lock::{FileLock, LockError, lock_exclusive};
pub use crate::repo::ChecksumPolicy;
use crate::repo::{
    Download, FetchError, Fetcher, Location, Repository, is_network_failure, is_restart_needed,
};
use crate::signature::{
    CheckingReader, FinishError, SIGNATURE_LIMIT, SIGNATURE_SUFFIX, SignatureError, SignatureMode,
    Signed,
};

#[doc(hidden)]
pub use manifest::read_entries as read_manifest;
pub use manifest::{
    Checked, Difference, DifferenceKind, MANIFEST_VERSION, ManifestEntry, mode_text,
};

/// The `source` of a package [`Store::adopt`] took over.
pub const ADOPTED: &str = "adopted";
/// The completion marker at the top of every install dir, written last.
pub const MARKER_FILE: &str = ".copkg-install.json";
/// The install manifest at the top of every install dir, written just
/// before the marker.
pub const MANIFEST_FILE: &str = ".copkg-manifest.json";
const STATE_DIR: &str = ".copkg";
/// The hidden dir at the top of a filesystem mounted inside the software
/// root that holds the temp and trash dirs of installs on it, so that
/// their renames never cross filesystems. No install path may use the name.
pub const MOUNT_TEMP_DIR: &str = ".copkg-tmp";
/// Largest checksum sidecar read.
const SIDECAR_LIMIT: u64 = 64 * 1024;
/// Largest completion marker read (copkg's are a few hundred bytes; a
/// package may hold a file of that name below its top).
const MARKER_LIMIT: u64 = 64 * 1024;
/// Times an install starts over when a server cannot resume a broken download.
const RESTARTS: u32 = 2;
/// Lock of the short step that checks for nested packages and renames an
/// install dir into (or out of) place.
const COMMIT_LOCK: &str = "commit.lock";
/// How deep a check for packages nested inside an install dir looks.
const NESTING_DEPTH: usize = 16;
/// How long a lock's holder may show no progress before a waiter gives
/// up, unless configured (`lockTimeoutSecs`).
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
const DOWNLOAD_BUFFER_BYTES: usize = 256 * 1024;

/// Where a package's files are, relative to a repository and to the software
/// root; produced by the layout policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLayout {
    /// Install dir relative to the software root, `/`-separated.
    pub install_path: String,
    /// Archive path relative to a repository base.
    pub archive: String,
    /// Checksum sidecar path relative to a repository base.
    pub sha256: String,
    /// The `.zip` installed where a repository has no `archive` (the
    /// original copkg's format), relative to a repository base; its sidecar
    /// is the same path with `.sha256` added.
    pub zip: Option<String>,
}

impl PackageLayout {
    /// The zip's checksum sidecar path, if the layout has a zip.
    pub fn zip_sha256(&self) -> Option<String> {
        self.zip.as_ref().map(|zip| format!("{zip}.sha256"))
    }

    /// What a repository is asked for, in order: the archive, then the zip.
    fn candidates(&self) -> Vec<(ArchiveFormat, &str, String)> {
        let mut candidates = vec![(
            ArchiveFormat::TarGz,
            self.archive.as_str(),
            self.sha256.clone(),
        )];
        if let (Some(zip), Some(sidecar)) = (&self.zip, self.zip_sha256()) {
            candidates.push((ArchiveFormat::Zip, zip.as_str(), sidecar));
        }
        candidates
    }
}

/// How a package archive is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A gzip-compressed tar stream, unpacked as it is read.
    TarGz,
    /// A zip archive, downloaded to a temp file and verified before it is
    /// unpacked from its central directory.
    Zip,
}

impl ArchiveFormat {
    /// `tar.gz` or `zip`.
    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::Zip => "zip",
        }
    }
}

/// A package archive opened in the first repository that has it.
#[derive(Debug)]
pub struct OpenedArchive {
    /// Its bytes, as a stream.
    pub download: Download,
    /// The digest it must have (from its sidecar or a pin), if any.
    pub expected: Option<String>,
    /// How it is packed.
    pub format: ArchiveFormat,
    /// Its signature by a key pinned for the repository, to be checked as
    /// it streams in; `None` where the repository's signatures are off or
    /// (`if-present`) it has none.
    pub signed: Option<Signed>,
    /// How it stands with the download cache (for archives of http(s)
    /// repositories, when the cache is on).
    pub cached: Option<Cached>,
}

/// An archive of an http(s) repository, as the download cache sees it.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The archive's URL in the repository (before any redirect).
    pub url: String,
    /// Whether it is read from the cache.
    pub hit: bool,
    /// The sidecar the repository served, to keep beside it.
    pub sidecar: Option<Vec<u8>>,
    /// The signature the repository served, to keep beside it.
    pub signature: Option<Vec<u8>>,
}

/// What asking one repository for one archive format found.
enum Probe {
    Found(Box<OpenedArchive>),
    /// The archive is not there (its URL): the next format is asked for.
    Absent(String),
    /// The repository cannot serve the package (why, and whether because it
    /// could not be reached): the next repository is asked.
    Skip(String, bool),
    /// The repository has the archive but not the signature it requires:
    /// the next repository is asked, and this is the error if none has it.
    Unsigned(SignatureError),
}

/// What a repository gave for an archive's signature.
enum Fetched {
    /// A signature by a pinned key, to check as the archive streams in,
    /// and its bytes.
    Signed(Box<Signed>, Vec<u8>),
    /// None, and none is asked for (signatures off, or `if-present`).
    None,
    /// None, but one is required.
    Missing(SignatureError),
}

/// What the completion marker records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// `group:artifact:version`.
    pub coordinate: String,
    /// sha256 of the archive; none for a package adopted from the original
    /// copkg (there was no archive to hash).
    pub sha256: Option<String>,
    /// Whether that digest was checked against a sidecar or pin.
    pub verified: bool,
    /// Where the archive came from, or [`ADOPTED`].
    pub source: String,
    /// The id of the key whose signature was checked (as minisign shows
    /// it), if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Seconds since the Unix epoch.
    pub installed_at: u64,
    /// Bytes of file content.
    pub unpacked_bytes: u64,
    /// Entries unpacked.
    pub entries: u64,
}

/// The outcome of an adopt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// This call recorded the package.
    Fresh {
        /// The install dir.
        dir: PathBuf,
        /// What was recorded.
        record: InstallRecord,
    },
    /// It was already a complete copkg install.
    Already {
        /// The install dir.
        dir: PathBuf,
    },
}

/// The outcome of an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// This call unpacked the package.
    Fresh {
        /// The install dir.
        dir: PathBuf,
        /// What was recorded.
        record: InstallRecord,
        /// Entries a service's account could not read.
        unreadable: Vec<String>,
    },
    /// It was already there (possibly put there by a concurrent install).
    Already {
        /// The install dir.
        dir: PathBuf,
    },
}

/// The state of a coordinate in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageState {
    /// Complete, with its record.
    Installed(InstallRecord),
    /// Nothing at the install dir.
    Absent,
    /// Something is at the install dir that copkg did not complete.
    Foreign,
}

/// What [`Store::verify`] found at an install dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The install dir.
    pub dir: PathBuf,
    /// Its completion marker's record.
    pub record: InstallRecord,
    /// How the disk compares with the manifest.
    pub outcome: VerifyOutcome,
}

/// How an install dir compares with its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// Compared; clean when there is no difference.
    Checked(Checked),
    /// Installed before copkg recorded manifests: nothing to compare with.
    NoManifest,
}

impl Verification {
    /// Whether the disk matches the manifest exactly.
    pub fn is_clean(&self) -> bool {
        match &self.outcome {
            VerifyOutcome::Checked(checked) => checked.differences.is_empty(),
            VerifyOutcome::NoManifest => false,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No repository has the package.
    #[error("{coordinate} was not found in any repository{}", list_tried(.tried))]
    NotFound {
        /// The coordinate.
        coordinate: String,
        /// What each repository answered.
        tried: Vec<String>,
    },
    /// No repository had the package, and not every one said so: some could
    /// not be reached.
    #[error("{coordinate}: not every repository could be reached{}", list_tried(.tried))]
    Unreachable {
        /// The coordinate.
        coordinate: String,
        /// What each repository answered.
        tried: Vec<String>,
    },
    /// A reinstall would replace the files of a running service.
    #[error(
        "{coordinate} is used by running service {service}; stop it first, or reinstall with --force"
    )]
    Reinstall {
        /// The package.
        coordinate: String,
        /// The running service.
        service: String,
    },
    /// No repository is configured.
    #[error("no repository is configured (use --repo, COPKG_REPO or a config file)")]
    NoRepository,
    /// The archive's digest is not the expected one.
    #[error(
        "checksum mismatch for {coordinate} from {url}: expected sha256 {expected}, got {actual}"
    )]
    ChecksumMismatch {
        /// The coordinate.
        coordinate: String,
        /// Where the archive came from.
        url: String,
        /// The digest expected (sidecar or pin).
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
    /// A signature is missing, by a key not pinned, bad, or for another file.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A checksum sidecar is unreadable.
    #[error("invalid checksum sidecar {url}: {reason}")]
    BadSidecar {
        /// The sidecar.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fetching failed in a way that trying another repository would not fix.
    #[error("cannot fetch {coordinate}")]
    Fetch {
        /// The coordinate.
        coordinate: String,
        /// The fetch error.
        #[source]
        source: Box<FetchError>,
    },
    /// The archive is unsafe, corrupt, or over a limit.
    #[error("cannot unpack {coordinate} from {url}")]
    Extract {
        /// The coordinate.
        coordinate: String,
        /// Where the archive came from.
        url: String,
        /// The extraction error.
        #[source]
        source: ExtractError,
    },
    /// Two packages' install dirs would nest.
    #[error("{} ({coordinate}) would {relation} {} ({other}); install dirs may not nest", dir.display(), other_dir.display())]
    Nested {
        /// The coordinate asked for.
        coordinate: String,
        /// Its install dir.
        dir: PathBuf,
        /// "lie inside" or "contain".
        relation: &'static str,
        /// The installed package in the way.
        other: String,
        /// Its install dir.
        other_dir: PathBuf,
    },
    /// The install dir holds something that is not a complete copkg install.
    #[error("{} exists but is not a complete copkg install; move it away first", path.display())]
    Foreign {
        /// The install dir.
        path: PathBuf,
    },
    /// An adopt found nothing at the install dir.
    #[error("nothing to adopt: {} does not exist or is empty", dir.display())]
    NothingToAdopt {
        /// The install dir.
        dir: PathBuf,
    },
    /// A package dir holds what copkg would not have installed.
    #[error("cannot adopt {}: `{entry}` {reason}", dir.display())]
    Unadoptable {
        /// The install dir.
        dir: PathBuf,
        /// The entry, relative to it (`.` for the dir itself).
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing is installed at an install dir.
    #[error("no package is installed at {}", dir.display())]
    NotInstalled {
        /// The install dir.
        dir: PathBuf,
    },
    /// An install dir holds another package than the one asked for (the
    /// layout policy maps both to it).
    #[error("{} holds {found}, not {coordinate}", dir.display())]
    OtherPackage {
        /// The coordinate asked for.
        coordinate: String,
        /// The install dir.
        dir: PathBuf,
        /// The coordinate its marker records.
        found: String,
    },
    /// An install manifest cannot be read as one: it was altered.
    #[error("invalid install manifest {}: {reason}", path.display())]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The download cache cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file operation of the store failed.
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
}

impl Coded for StoreError {
    fn exit_code(&self) -> ExitCode {
        match self {
            StoreError::NotFound { .. }
            | StoreError::NotInstalled { .. }
            | StoreError::NothingToAdopt { .. }
            | StoreError::OtherPackage { .. } => ExitCode::NotFound,
            StoreError::Unadoptable { .. } => ExitCode::UnsafeArchive,
            StoreError::BadManifest { .. } => ExitCode::VerifyDiffers,
            StoreError::Unreachable { .. } => ExitCode::Network,
            StoreError::Reinstall { .. } => ExitCode::InUse,
            StoreError::NoRepository | StoreError::Nested { .. } => ExitCode::Usage,
            StoreError::ChecksumMismatch { .. } | StoreError::BadSidecar { .. } => {
                ExitCode::ChecksumMismatch
            }
            StoreError::Fetch { source, .. } => source.exit_code(),
            StoreError::Signature(source) => source.exit_code(),
            // A body that stalled or stayed too slow after every resume.
            StoreError::Extract {
                source: ExtractError::Read(err),
                ..
            } if is_network_failure(err) => ExitCode::Network,
            StoreError::Extract { source, .. } => source.exit_code(),
            StoreError::Lock(source) => source.exit_code(),
            StoreError::Cache(source) => source.exit_code(),
            StoreError::Foreign { .. } | StoreError::Io { .. } => ExitCode::Failure,
        }
    }
}

fn list_tried(tried: &[String]) -> String {
    tried.iter().map(|t| format!("\n  {t}")).collect()
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// What `install` needs besides the store itself.
#[derive(Debug)]
pub struct InstallRequest<'a> {
    /// The package.
    pub coordinate: &'a PackageCoordinate,
    /// Its paths.
    pub layout: &'a PackageLayout,
    /// Repositories, tried in order, each with its checksum and signature
    /// rules.
    pub repositories: &'a [Repository],
    /// Unpacked-size limit; `None` for the default (max of 1 GiB and 50× compressed).
    pub max_unpacked_bytes: Option<u64>,
    /// Entry-count limit.
    pub max_entries: u64,
    /// Called with (bytes read, total if known) as the archive streams in.
    pub progress: Option<Progress<'a>>,
    /// Fetch and replace the package even when it is installed.
    pub reinstall: bool,
    /// Fetch nothing: http(s) repositories are served from the download
    /// cache only (file repositories are read as ever).
    pub offline: bool,
}

/// A download-progress callback: bytes read so far, and the total when known.
#[derive(Clone, Copy)]
pub struct Progress<'a>(pub &'a (dyn Fn(u64, Option<u64>) + Sync));

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Reports progress at most every 100 ms while the archive is read.
struct ProgressReader<'a, R> {
    inner: R,
    read: u64,
    total: Option<u64>,
    last: std::time::Instant,
    progress: Progress<'a>,
}

impl<R: io::Read> io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n == 0 || self.last.elapsed() >= std::time::Duration::from_millis(100) {
            self.last = std::time::Instant::now();
            (self.progress.0)(self.read, self.total);
        }
        Ok(n)
    }
}

/// A software root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    lock_timeout: std::time::Duration,
    cache: Option<Cache>,
}

impl Store {
    /// The store at `root` (nothing is created until it is written to).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store {
            root: root.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            cache: None,
        }
    }

    /// The same store, keeping the archives it fetches from http(s)
    /// repositories in `cache` and looking there first.
    pub fn with_cache(self, cache: Option<Cache>) -> Self {
        Store { cache, ..self }
    }

    /// The same store, whose lock waits give up once the holder has shown
    /// no progress for `timeout`.
    pub fn with_lock_timeout(self, timeout: std::time::Duration) -> Self {
        Store {
            lock_timeout: timeout,
            ..self
        }
    }

    /// The software root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The install dir of a layout.
    pub fn install_dir(&self, layout: &PackageLayout) -> PathBuf {
        self.root.join(&layout.install_path)
    }

    /// The name copkg's own files for an install dir are keyed by (its
    /// lock, temp and trash dirs): a fixed-length hash of the install path,
    /// so that no key is a prefix of another's and no name is too long.
    fn key(layout: &PackageLayout) -> String {
        use sha2::Digest;
        extract::hex(&sha2::Sha256::digest(layout.install_path.as_bytes()))[..32].to_owned()
    }

    fn state_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.root.join(STATE_DIR).join(name);
        std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
        Ok(dir)
    }

    /// Where the temp dirs (`name` = `tmp`) or dirs moved aside (`trash`)
    /// of an install dir go: `<root>/.copkg/<name>`, or, when the install
    /// dir will be on another filesystem (one mounted inside the root),
    /// [`MOUNT_TEMP_DIR`] at the top of that filesystem.
    fn scratch_dir(&self, layout: &PackageLayout, name: &str) -> Result<PathBuf, StoreError> {
        let own = self.state_dir(name)?;
        let Some(mount) = self.other_mount(layout, &own)? else {
            return Ok(own);
        };
        let dir = mount.join(MOUNT_TEMP_DIR);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(dir),
            Err(e) => Err(io_err("cannot create", &dir)(e)),
        }
    }

    /// The top (within the root) of the filesystem an install dir will be
    /// on, judged by its nearest existing parent, when that is not the
    /// filesystem of `state` (copkg's own dirs).
    fn other_mount(
        &self,
        layout: &PackageLayout,
        state: &Path,
    ) -> Result<Option<PathBuf>, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let device = |path: &Path| std::fs::metadata(path).map(|m| m.dev());
        let own = device(state).map_err(io_err("cannot inspect", state))?;
        let dir = self.install_dir(layout);
        let mut existing = dir.parent().unwrap_or(&self.root);
        let target = loop {
            match device(existing) {
                Ok(dev) => break dev,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) && existing != self.root =>
                {
                    existing = existing.parent().unwrap_or(&self.root);
                }
                Err(e) => return Err(io_err("cannot inspect", existing)(e)),
            }
        };
        if target == own {
            return Ok(None);
        }
        let mut top = existing;
        while let Some(parent) = top.parent().filter(|p| p.starts_with(&self.root)) {
            match device(parent) {
                Ok(dev) if dev == target => top = parent,
                Ok(_) => break,
                Err(e) => return Err(io_err("cannot inspect", parent)(e)),
            }
        }
        Ok(Some(top.to_owned()))
    }

    /// What is at a coordinate's install dir.
    pub fn state(&self, layout: &PackageLayout) -> Result<PackageState, StoreError> {
        state_at(&self.install_dir(layout))
    }

    /// Compares a package's install dir with the manifest recorded at
    /// install, never following a symlink. A package not installed, or an
    /// install dir holding another coordinate, is an error; one installed
    /// before manifests were recorded is [`VerifyOutcome::NoManifest`].
    pub fn verify(
        &self,
        coordinate: &PackageCoordinate,
        layout: &PackageLayout,
    ) -> Result<Verification, StoreError> {
        let verification = self.verify_dir(&self.install_dir(layout))?;
        if verification.record.coordinate != coordinate.id() {
            return Err(StoreError::OtherPackage {
                coordinate: coordinate.id(),
                dir: verification.dir,
                found: verification.record.coordinate,
            });
        }
        Ok(verification)
    }

    /// Compares an install dir (as [`Store::list`] returns them) with its
    /// manifest.
    pub fn verify_dir(&self, dir: &Path) -> Result<Verification, StoreError> {
        let record = match state_at(dir)? {
            PackageState::Installed(record) => record,
            PackageState::Absent => {
                return Err(StoreError::NotInstalled {
                    dir: dir.to_owned(),
                });
            }
            PackageState::Foreign => {
                return Err(StoreError::Foreign {
                    path: dir.to_owned(),
                });
            }
        };
        let outcome = match manifest::Reader::open(dir)? {
            Some(mut reader) => VerifyOutcome::Checked(manifest::check(dir, &mut reader)?),
            None => VerifyOutcome::NoManifest,
        };
        Ok(Verification {
            dir: dir.to_owned(),
            record,
            outcome,
        })
    }

    /// Takes the lock of one install dir, calling `on_wait` once if another
    /// process holds it.
    pub fn lock(
        &self,
        coordinate: &PackageCoordinate,
        layout: &PackageLayout,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<FileLock, StoreError> {
        let path = self
            .state_dir("locks")?
            .join(format!("{}.lock", Self::key(layout)));
        Ok(lock_exclusive(
            &path,
            &coordinate.id(),
            self.lock_timeout,
            on_wait,
        )?)
    }

    /// Takes the store-wide lock of the commit step (held for a check and a
    /// rename only).
    fn commit_lock(&self) -> Result<FileLock, StoreError> {
        let path = self.state_dir("locks")?.join(COMMIT_LOCK);
        Ok(lock_exclusive(
            &path,
            "the store's commit step",
            self.lock_timeout,
            &mut |_| {},
        )?)
    }

    /// Refuses an install dir that lies inside, or contains, another
    /// package's (H2): uninstalling one would delete the other. The caller
    /// holds the commit lock.
    fn check_nesting(
        &self,
        coordinate: &PackageCoordinate,
        layout: &PackageLayout,
    ) -> Result<(), StoreError> {
        let dir = self.install_dir(layout);
        let nested = |relation, other_dir: PathBuf, record: InstallRecord| StoreError::Nested {
            coordinate: coordinate.id(),
            dir: dir.clone(),
            relation,
            other: record.coordinate,
            other_dir,
        };
        let mut ancestor = dir.parent();
        while let Some(path) = ancestor.filter(|p| p.starts_with(&self.root) && *p != self.root) {
            if let Some(record) = read_marker(path) {
                return Err(nested("lie inside", path.to_owned(), record));
            }
            ancestor = path.parent();
        }
        if let Some((other_dir, record)) = find_marker_below(&dir, NESTING_DEPTH)
            // Its own marker (a reinstall) is no other package.
            && !(other_dir == dir && record.coordinate == coordinate.id())
        {
            return Err(nested("contain", other_dir, record));
        }
        Ok(())
    }

    /// Installs a package: a no-op when it is already installed.
    pub fn install(
        &self,
        fetcher: &Fetcher,
        request: &InstallRequest<'_>,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<Installed, StoreError> {
        let dir = self.install_dir(request.layout);
        if !request.reinstall
            && let Some(done) = self.already_installed(request)?
        {
            return Ok(done);
        }
        if request.repositories.is_empty() {
            return Err(StoreError::NoRepository);
        }
        let lock = self.lock(request.coordinate, request.layout, on_wait)?;
        if !request.reinstall
            && let Some(done) = self.already_installed(request)?
        {
            return Ok(done);
        }
        // Waiters on the lock time out only while it shows no progress: the
        // download marks it as it advances.
        let progress = |read: u64, total: Option<u64>| {
            lock.mark_progress();
            if let Some(progress) = request.progress {
                (progress.0)(read, total);
            }
        };
        let request = &InstallRequest {
            progress: Some(Progress(&progress)),
            ..*request
        };
        {
            let _commit = self.commit_lock()?;
            self.check_nesting(request.coordinate, request.layout)?;
        }
        self.clean_leftovers(request.layout)?;

        let mut restarts = 0;
        let (temp, record, unpacked) = loop {
            match self.fetch_and_unpack(fetcher, request) {
                Err(StoreError::Extract {
                    source: ExtractError::Read(err),
                    ..
                }) if is_restart_needed(&err) && restarts < RESTARTS => restarts += 1,
                other => break other?,
            }
        };
        if self.commit(temp, &record, Some(&unpacked.tree), request)? {
            Ok(Installed::Fresh {
                dir,
                record,
                unreadable: unpacked.unreadable,
            })
        } else {
            Ok(Installed::Already { dir })
        }
    }

    /// Installs every request, `jobs` at a time. `on_done` is called from
    /// the worker threads as each install ends; the results come back in
    /// the order of the requests.
    pub fn install_parallel(
        &self,
        fetcher: &Fetcher,
        requests: &[InstallRequest<'_>],
        jobs: usize,
        on_wait: &(dyn Fn(&PackageCoordinate, &Path) + Sync),
        on_done: &(dyn Fn(usize, &Result<Installed, StoreError>) + Sync),
    ) -> Vec<Result<Installed, StoreError>> {
        crate::parallel::in_parallel(
            requests.iter(),
            jobs.clamp(1, requests.len().max(1)),
            &|index, request| {
                let mut notice = |lock: &Path| on_wait(request.coordinate, lock);
                let result = self.install(fetcher, request, &mut notice);
                on_done(index, &result);
                result
            },
        )
        .into_iter()
        .map(|(_, result)| result)
        .collect()
    }

    fn already_installed(
        &self,
        request: &InstallRequest<'_>,
    ) -> Result<Option<Installed>, StoreError> {
        let mut state = self.state(request.layout)?;
        if state == PackageState::Foreign {
            // What looked foreign may be a package nested below that a
            // concurrent uninstall is removing: settle it under the lock.
            let _commit = self.commit_lock()?;
            state = self.state(request.layout)?;
            if state == PackageState::Foreign {
                self.check_nesting(request.coordinate, request.layout)?;
                return Err(StoreError::Foreign {
                    path: self.install_dir(request.layout),
                });
            }
        }
        match state {
            PackageState::Installed(record) => {
                if let Some(pin) = &request.coordinate.digest
                    && record.sha256.as_ref() != Some(pin)
                {
                    return Err(StoreError::ChecksumMismatch {
                        coordinate: request.coordinate.id(),
                        url: self.install_dir(request.layout).display().to_string(),
                        expected: pin.clone(),
                        actual: record
                            .sha256
                            .unwrap_or_else(|| "none (adopted, no archive)".to_owned()),
                    });
                }
                Ok(Some(Installed::Already {
                    dir: self.install_dir(request.layout),
                }))
            }
            PackageState::Absent | PackageState::Foreign => Ok(None),
        }
    }

    /// Removes what killed installs left in `tmp/` and `trash/` (and in
    /// the [`MOUNT_TEMP_DIR`] of the filesystem this install dir is on):
    /// this install dir's own (the caller holds its lock), and any other
    /// whose owner's lock is free, whatever its coordinate.
    fn clean_leftovers(&self, layout: &PackageLayout) -> Result<(), StoreError> {
        let own = Self::key(layout);
        let locks = self.state_dir("locks")?;
        let mut dirs = vec![
            self.root.join(STATE_DIR).join("tmp"),
            self.root.join(STATE_DIR).join("trash"),
        ];
        if let Some(mount) = self.other_mount(layout, &locks)? {
            dirs.push(mount.join(MOUNT_TEMP_DIR));
        }
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("cannot list", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err("cannot list", &dir))?;
                let name = entry.file_name();
                let Some((key, _)) = name.to_str().and_then(|n| n.split_once('.')) else {
                    continue;
                };
                if key.len() != own.len() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                // Another install dir's leftover is swept only while its
                // lock is ours: then no install of it is writing there.
                let _held = if key == own {
                    None
                } else {
                    match crate::lock::try_lock_exclusive(&locks.join(format!("{key}.lock")))? {
                        Some(lock) => Some(lock),
                        None => continue,
                    }
                };
                let path = entry.path();
                // A temp dir, or a zip downloaded to a temp file.
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("cannot remove leftover", &path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Opens a package's archive from the first repository that has it
    /// (with its checksum sidecar, unless a pin or the policy makes that
    /// unnecessary), and returns the stream with the digest it must have.
    /// A repository is asked for the `.tar.gz`, and for the layout's `.zip`
    /// only where it answers "not found" for the `.tar.gz`.
    pub fn open_archive(
        &self,
        fetcher: &Fetcher,
        request: &InstallRequest<'_>,
    ) -> Result<OpenedArchive, StoreError> {
        let coordinate = request.coordinate.id();
        let mut tried = Vec::new();
        let mut unreachable = false;
        let mut unsigned = None;
        for repo in request.repositories {
            for (format, archive, sidecar) in request.layout.candidates() {
                match self.probe(fetcher, repo, request, format, archive, &sidecar)? {
                    Probe::Found(opened) => return Ok(*opened),
                    Probe::Absent(why) => tried.push(why),
                    Probe::Skip(why, could_not_reach) => {
                        tried.push(why);
                        unreachable |= could_not_reach;
                        break;
                    }
                    Probe::Unsigned(err) => {
                        tried.push(err.to_string());
                        unsigned.get_or_insert(err);
                        break;
                    }
                }
            }
        }
        if request.repositories.is_empty() {
            return Err(StoreError::NoRepository);
        }
        // A repository had the archive without the signature it requires:
        // that, not "not found", is what stopped the install.
        if let Some(err) = unsigned {
            return Err(err.into());
        }
        // "Not found" only when every repository said so.
        if unreachable {
            return Err(StoreError::Unreachable { coordinate, tried });
        }
        Err(StoreError::NotFound { coordinate, tried })
    }

    /// Asks one repository for one format of the package: its sidecar, then
    /// the archive (from the download cache when it has a copy that passes
    /// this repository's checks). Offline, an http(s) repository is asked
    /// nothing: only the cache answers for it.
    fn probe(
        &self,
        fetcher: &Fetcher,
        repo: &Repository,
        request: &InstallRequest<'_>,
        format: ArchiveFormat,
        archive: &str,
        sidecar: &str,
    ) -> Result<Probe, StoreError> {
        let http = matches!(repo.location, Location::Http(_));
        if request.offline && http {
            return self.probe_offline(repo, request, format, archive, sidecar);
        }
        let cache = self.cache.as_ref().filter(|_| http);
        let coordinate = request.coordinate.id();
        let fetch_err = |source| StoreError::Fetch {
            coordinate: coordinate.clone(),
            source: Box::new(source),
        };
        let mut expected = request.coordinate.digest.clone();
        let mut missing_sidecar = None;
        let mut sidecar_bytes = None;
        // The sidecar, the signature and (where the download cache cannot
        // have it) the archive are asked for at once: a repository far away
        // costs one round trip, not three. What they say is weighed in the
        // same order as ever.
        // A file repository is read in place: no threads for it.
        let signature = || self.signature(fetcher, repo, &coordinate, archive);
        let sidecar_read = || fetcher.read_small(repo, sidecar, SIDECAR_LIMIT);
        let (sidecar_read, signature, mut prefetched) = if http {
            let prefetch = !self.may_be_cached(request, &repo.address(archive));
            std::thread::scope(|scope| {
                let signature = scope.spawn(signature);
                let opened = prefetch.then(|| scope.spawn(|| fetcher.open(repo, archive)));
                (sidecar_read(), joined(signature), opened.map(joined))
            })
        } else {
            (sidecar_read(), signature(), None)
        };
        let mut open_archive = || {
            prefetched
                .take()
                .unwrap_or_else(|| fetcher.open(repo, archive))
        };
        match sidecar_read {
            Ok(text) => {
                let url = repo.address(sidecar);
                let digest = parse_sidecar(&text).map_err(|reason| StoreError::BadSidecar {
                    url: url.clone(),
                    reason,
                })?;
                if let Some(pin) = &expected
                    && *pin != digest
                {
                    return Err(StoreError::ChecksumMismatch {
                        coordinate,
                        url,
                        expected: pin.clone(),
                        actual: digest,
                    });
                }
                expected = Some(digest);
                sidecar_bytes = Some(text);
            }
            Err(FetchError::NotFound { url }) => missing_sidecar = Some(url),
            Err(e) if e.try_next_repository() => {
                return Ok(Probe::Skip(crate::exit::one_line(&e), true));
            }
            Err(e) => return Err(fetch_err(e)),
        }
        let signature = match signature? {
            Ok(signature) => signature,
            Err(skip) => return Ok(skip),
        };
        let (signed, signature_bytes) = match signature {
            Fetched::Signed(signed, bytes) => (Some(*signed), Some(bytes)),
            Fetched::None => (None, None),
            Fetched::Missing(err) => {
                // Whether the archive is there decides between "unsigned"
                // and "not found".
                return match open_archive() {
                    Ok(_) => Ok(Probe::Unsigned(err)),
                    Err(FetchError::NotFound { url }) => {
                        Ok(Probe::Absent(format!("{url}: not found")))
                    }
                    Err(e) if e.try_next_repository() => {
                        Ok(Probe::Skip(crate::exit::one_line(&e), true))
                    }
                    Err(e) => Err(fetch_err(e)),
                };
            }
        };
        // A signature checked stands in for a missing sidecar.
        let unverifiable = missing_sidecar.is_some()
            && expected.is_none()
            && signed.is_none()
            && repo.checksum == ChecksumPolicy::Required;
        let address = repo.address(archive);
        let mut cached = cache.map(|_| Cached {
            url: address.clone(),
            hit: false,
            sidecar: sidecar_bytes,
            signature: signature_bytes,
        });
        if let (Some(cache), Some(note)) = (cache, &mut cached)
            && !unverifiable
        {
            // An archive without a digest is found by its URL, except when
            // asked to fetch it again (after a republish).
            let key = match &expected {
                Some(digest) => Some(Key::Digest(digest.clone())),
                None if !request.reinstall => Some(Key::Url(address.clone())),
                None => None,
            };
            if let Some(key) = key
                && let Some(mut hit) = cache.lookup(&key)?
            {
                let want = expected.clone().unwrap_or_else(|| hit.sha256.clone());
                if hit.holds(&want, signed.as_ref()) {
                    cache.used(&hit, &address, note.signature.as_deref());
                    note.hit = true;
                    return Ok(Probe::Found(Box::new(OpenedArchive {
                        download: Download::from_file(address, hit.file, hit.len),
                        expected,
                        format,
                        signed,
                        cached,
                    })));
                }
                // Altered, or not what this repository serves: fetched again.
                cache.remove(&hit);
            }
        }
        match open_archive() {
            Ok(_) if unverifiable => Ok(Probe::Skip(
                format!(
                    "{}: not found (a checksum sidecar is required)",
                    missing_sidecar.unwrap_or_default()
                ),
                false,
            )),
            Ok(download) => Ok(Probe::Found(Box::new(OpenedArchive {
                download,
                expected,
                format,
                signed,
                cached,
            }))),
            Err(FetchError::NotFound { url }) => Ok(Probe::Absent(format!("{url}: not found"))),
            Err(e) if e.try_next_repository() => Ok(Probe::Skip(crate::exit::one_line(&e), true)),
            Err(e) => Err(fetch_err(e)),
        }
    }

    /// Whether the download cache may hold the archive at `url` for this
    /// request (an entry under its pin, or one last fetched from `url`),
    /// so that it is not fetched before the cache is asked.
    fn may_be_cached(&self, request: &InstallRequest<'_>, url: &str) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        let key = match &request.coordinate.digest {
            Some(pin) => Some(Key::Digest(pin.clone())),
            None => cache.key_for_url(url).ok().flatten(),
        };
        key.is_some_and(|key| cache.has(&key))
    }

    /// Finds one format of the package of an http(s) repository in the
    /// download cache, without a request: by its pin, else by the entry
    /// last fetched from its URL. The entry must pass this repository's
    /// checks as a download would (its sidecar, the pin, a signature by a
    /// key pinned for this repository); one whose bytes fail them is
    /// removed.
    fn probe_offline(
        &self,
        repo: &Repository,
        request: &InstallRequest<'_>,
        format: ArchiveFormat,
        archive: &str,
        sidecar: &str,
    ) -> Result<Probe, StoreError> {
        let address = repo.address(archive);
        let Some(cache) = &self.cache else {
            return Ok(Probe::Absent(format!(
                "{address}: not fetched (offline, and the download cache is off)"
            )));
        };
        let miss = |altered: bool| {
            Probe::Absent(format!(
                "{address}: {} the download cache {} (offline)",
                if altered {
                    "altered (now removed) in"
                } else {
                    "not in"
                },
                cache.dir().display()
            ))
        };
        let pin = request.coordinate.digest.clone();
        let key = match &pin {
            Some(pin) => Some(Key::Digest(pin.clone())),
            None => cache.key_for_url(&address)?,
        };
        let Some(mut hit) = key.map(|key| cache.lookup(&key)).transpose()?.flatten() else {
            return Ok(miss(false));
        };
        let entry = |name: &str| format!("{} (cached {})", hit.path.display(), name);
        let mut expected = match hit.key() {
            Key::Digest(digest) => Some(digest.clone()),
            Key::Url(_) => None,
        };
        if let Some(text) = &hit.sidecar {
            let digest = parse_sidecar(text).map_err(|reason| StoreError::BadSidecar {
                url: entry(sidecar),
                reason,
            })?;
            if expected.as_ref().is_some_and(|e| *e != digest) {
                // The sidecar beside it says another digest: altered.
                cache.remove(&hit);
                return Ok(miss(true));
            }
            expected = Some(digest);
        }
        let file_name = archive.rsplit('/').next().unwrap_or(archive);
        let signature_url = entry(&format!("{archive}{SIGNATURE_SUFFIX}"));
        let policy = &repo.signatures;
        let signed = match (policy.mode, &hit.signature) {
            (SignatureMode::Off, _) => None,
            (_, Some(bytes)) => Some(policy.accept(bytes, &signature_url, file_name)?),
            (SignatureMode::Required, None) => {
                return Ok(Probe::Unsigned(SignatureError::Missing {
                    url: signature_url,
                    repository: repo.to_string(),
                    pinned: policy.key_ids(),
                }));
            }
            (SignatureMode::IfPresent, None) => None,
        };
        if expected.is_none() && signed.is_none() && repo.checksum == ChecksumPolicy::Required {
            return Ok(Probe::Skip(
                format!(
                    "{address}: cached without a checksum sidecar, which this repository requires"
                ),
                false,
            ));
        }
        let want = expected.clone().unwrap_or_else(|| hit.sha256.clone());
        if !hit.holds(&want, signed.as_ref()) {
            cache.remove(&hit);
            return Ok(miss(true));
        }
        cache.used(&hit, &address, None);
        Ok(Probe::Found(Box::new(OpenedArchive {
            download: Download::from_file(address.clone(), hit.file, hit.len),
            expected,
            format,
            signed,
            cached: Some(Cached {
                url: address,
                hit: true,
                sidecar: None,
                signature: None,
            }),
        })))
    }

    /// Fetches the signature of `archive` where the repository's policy
    /// asks for one, and accepts it (well-formed, prehashed, by a pinned
    /// key) before the archive is opened. `Err` carries a probe result
    /// that moves on to the next repository.
    fn signature(
        &self,
        fetcher: &Fetcher,
        repo: &Repository,
        coordinate: &str,
        archive: &str,
    ) -> Result<Result<Fetched, Probe>, StoreError> {
        let policy = &repo.signatures;
        if policy.mode == SignatureMode::Off {
            return Ok(Ok(Fetched::None));
        }
        let path = format!("{archive}{SIGNATURE_SUFFIX}");
        let url = repo.address(&path);
        let file_name = archive.rsplit('/').next().unwrap_or(archive);
        match fetcher.read_small(repo, &path, SIGNATURE_LIMIT) {
            Ok(bytes) => Ok(Ok(Fetched::Signed(
                Box::new(policy.accept(&bytes, &url, file_name)?),
                bytes,
            ))),
            Err(FetchError::NotFound { url }) => Ok(Ok(match policy.mode {
                SignatureMode::Required => Fetched::Missing(SignatureError::Missing {
                    url,
                    repository: repo.to_string(),
                    pinned: policy.key_ids(),
                }),
                SignatureMode::IfPresent | SignatureMode::Off => Fetched::None,
            })),
            Err(FetchError::TooLarge { url, .. }) => Err(SignatureError::Malformed {
                url,
                reason: "larger than a minisign signature can be",
            }
            .into()),
            Err(e) if e.try_next_repository() => {
                Ok(Err(Probe::Skip(crate::exit::one_line(&e), true)))
            }
            Err(e) => Err(StoreError::Fetch {
                coordinate: coordinate.to_owned(),
                source: Box::new(e),
            }),
        }
    }

    fn fetch_and_unpack(
        &self,
        fetcher: &Fetcher,
        request: &InstallRequest<'_>,
    ) -> Result<(tempfile::TempDir, InstallRecord, Unpacked), StoreError> {
        let coordinate = request.coordinate.id();
        let OpenedArchive {
            download,
            expected,
            format,
            signed,
            cached,
        } = self.open_archive(fetcher, request)?;
        let url = download.url.clone();
        let len = download.len;
        // A copy goes to the download cache as the archive streams in; it
        // is kept only once the install has checked it.
        let mut cache_writer = match (&self.cache, &cached) {
            (Some(cache), Some(note)) if !note.hit => cache.writer(),
            _ => None,
        };
        let download = Tee {
            inner: download,
            writer: &mut cache_writer,
        };
        let tmp = self.scratch_dir(request.layout, "tmp")?;
        let temp = tempfile::Builder::new()
            .prefix(&format!("{}.", Self::key(request.layout)))
            .tempdir_in(&tmp)
            .map_err(io_err("cannot create a temp dir in", &tmp))?;
        let mut limits = Limits::default_for(len);
        if let Some(max) = request.max_unpacked_bytes {
            limits.max_unpacked_bytes = max;
        }
        limits.max_entries = request.max_entries;
        let extract_err = |source| StoreError::Extract {
            coordinate: coordinate.clone(),
            url: url.clone(),
            source,
        };
        let check = |actual: &str| match &expected {
            Some(expected) if expected != actual => Err(StoreError::ChecksumMismatch {
                coordinate: coordinate.clone(),
                url: url.clone(),
                expected: expected.clone(),
                actual: actual.to_owned(),
            }),
            _ => Ok(()),
        };
        let reader: Box<dyn io::Read + '_> = match request.progress {
            Some(progress) => Box::new(ProgressReader {
                inner: download,
                read: 0,
                total: len,
                last: std::time::Instant::now(),
                progress,
            }),
            None => Box::new(download),
        };
        // The signature is checked on the bytes as they stream past, with
        // the sha256; both are settled once the whole archive is read,
        // before anything leaves the temp dir.
        let signature_check = signed.as_ref().map(Signed::check).transpose()?;
        let mut reader = CheckingReader::new(reader, signature_check);
        let signature_of = |reader: CheckingReader<'_, _>| {
            reader.finish(&url).map_err(|err| match err {
                FinishError::Read(source) => extract_err(ExtractError::Read(source)),
                FinishError::Signature(err) => err.into(),
            })
        };
        let (sha256, unpacked, signed_by): (String, Unpacked, _) = match format {
            // Hashed, inflated and unpacked in one pass; checked at its end,
            // before anything becomes visible.
            ArchiveFormat::TarGz => {
                let done = extract::unpack_tar_gz(&mut reader, temp.path(), &limits)
                    .map_err(extract_err)?;
                let signed_by = signature_of(reader)?;
                check(&done.sha256)?;
                (done.sha256, done.unpacked, signed_by)
            }
            // A zip is read from its end: downloaded whole, and checked
            // before a byte of it is unpacked.
            ArchiveFormat::Zip => {
                let (file, sha256) = self
                    .download(&mut reader, len, request.layout, limits.max_unpacked_bytes)
                    .map_err(extract_err)?;
                let signed_by = signature_of(reader)?;
                check(&sha256)?;
                let unpacked = extract::unpack_zip(file.as_file(), temp.path(), &limits)
                    .map_err(extract_err)?;
                (sha256, unpacked, signed_by)
            }
        };
        if let (Some(writer), Some(cache), Some(note)) = (cache_writer, &self.cache, &cached) {
            let key = match &expected {
                Some(_) => Key::Digest(sha256.clone()),
                None => Key::Url(note.url.clone()),
            };
            writer.commit(
                cache,
                &key,
                &sha256,
                &note.url,
                note.sidecar.as_deref(),
                note.signature.as_deref(),
            );
        }
        let record = InstallRecord {
            coordinate,
            sha256: Some(sha256),
            verified: expected.is_some() || signed_by.is_some(),
            signed_by: signed_by.map(|id| id.to_string()),
            source: url,
            installed_at: now(),
            unpacked_bytes: unpacked.unpacked_bytes,
            entries: unpacked.entries,
        };
        Ok((temp, record, unpacked))
    }

    /// Downloads an archive to a temp file in `<root>/.copkg/tmp` (swept
    /// with the install's other leftovers), at most `max` bytes, hashing it
    /// on the way; returns the file and its sha256.
    fn download(
        &self,
        mut source: impl io::Read,
        len: Option<u64>,
        layout: &PackageLayout,
        max: u64,
    ) -> Result<(tempfile::NamedTempFile, String), ExtractError> {
        use sha2::Digest;
        use std::io::Write;
        let too_large = ExtractError::Limit {
            what: "download size",
            limit: max,
        };
        if len.is_some_and(|len| len > max) {
            return Err(too_large);
        }
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ExtractError::Write { path, source }
        };
        let tmp = self.root.join(STATE_DIR).join("tmp");
        let mut file = tempfile::Builder::new()
            .prefix(&format!("{}.", Self::key(layout)))
            .suffix(".zip")
            .tempfile_in(&tmp)
            .map_err(write_err(&tmp))?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0; DOWNLOAD_BUFFER_BYTES];
        let mut total = 0u64;
        loop {
            let n = match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ExtractError::Read(e)),
            };
            total += n as u64;
            if total > max {
                return Err(too_large);
            }
            hasher.update(&buffer[..n]);
            let path = file.path().to_owned();
            file.write_all(&buffer[..n]).map_err(write_err(&path))?;
        }
        Ok((file, extract::hex(&hasher.finalize())))
    }

    /// Writes the manifest and then the marker, makes everything durable, and renames the temp dir
    /// into place. Returns false when a complete install was already there.
    fn commit(
        &self,
        temp: tempfile::TempDir,
        record: &InstallRecord,
        tree: Option<&[(String, extract::TreeEntry)]>,
        request: &InstallRequest<'_>,
    ) -> Result<bool, StoreError> {
        let dir = self.install_dir(request.layout);
        seal(temp.path(), record, tree)?;
        let parent = dir.parent().unwrap_or(&self.root).to_owned();
        {
            // Another package may have been installed around or inside this
            // one since the check before the download.
            let _commit = self.commit_lock()?;
            self.check_nesting(request.coordinate, request.layout)?;
            std::fs::create_dir_all(&parent).map_err(io_err("cannot create", &parent))?;
            if request.reinstall
                && let Some(installed) = read_marker(&dir)
            {
                if installed.coordinate != request.coordinate.id() {
                    return Err(StoreError::Foreign { path: dir });
                }
                // One atomic swap: the new tree takes the install dir's
                // name and the old one the temp dir's, which then goes.
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    temp.path(),
                    nix::fcntl::AT_FDCWD,
                    &dir,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .map_err(|e| io_err("cannot swap into place", &dir)(e.into()))?;
                drop(temp);
                sync_dirs_up_to(&parent, &self.root)?;
                return Ok(true);
            }
            match std::fs::rename(temp.path(), &dir) {
                Ok(()) => {
                    let _ = temp.keep();
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(nix::libc::ENOTEMPTY | nix::libc::EEXIST)
                    ) =>
                {
                    // Someone got there first despite the lock (a deleted lock
                    // file): theirs stands when complete.
                    drop(temp);
                    return match read_marker(&dir) {
                        Some(_) => Ok(false),
                        None => Err(StoreError::Foreign { path: dir }),
                    };
                }
                Err(e) => return Err(io_err("cannot move into place", &dir)(e)),
            }
        }
        sync_dirs_up_to(&parent, &self.root)?;
        Ok(true)
    }

    /// Takes over a package dir the original copkg installed (files there,
    /// no completion marker): checks that it lies inside no other package
    /// and holds none, and that every entry is one an install could have
    /// made (names, types, symlinks staying inside, modes, owners), then
    /// writes its manifest and a marker recording it as adopted and
    /// unverified. A no-op for a package copkg already installed.
    pub fn adopt(
        &self,
        coordinate: &PackageCoordinate,
        layout: &PackageLayout,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<Adopted, StoreError> {
        let dir = self.install_dir(layout);
        let _lock = self.lock(coordinate, layout, on_wait)?;
        // Held throughout: no install may commit a package around or inside
        // this one between the check and the marker.
        let _commit = self.commit_lock()?;
        match self.state(layout)? {
            PackageState::Installed(record) if record.coordinate == coordinate.id() => {
                return Ok(Adopted::Already { dir });
            }
            PackageState::Installed(record) => {
                return Err(StoreError::OtherPackage {
                    coordinate: coordinate.id(),
                    dir,
                    found: record.coordinate,
                });
            }
            PackageState::Absent => return Err(StoreError::NothingToAdopt { dir }),
            PackageState::Foreign => {}
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::Unadoptable {
                    dir,
                    entry: ".".to_owned(),
                    reason: "is not a directory (a symlink or a file)".to_owned(),
                });
            }
            Err(e) => return Err(io_err("cannot inspect", &dir)(e)),
        }
        self.check_nesting(coordinate, layout)?;
        // What an adopt killed before its marker was complete left behind.
        for name in [MARKER_FILE, MANIFEST_FILE] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot remove", &path)(e)),
            }
        }
        let (unpacked_bytes, entries) = check_adoptable(&dir)?;
        let record = InstallRecord {
            coordinate: coordinate.id(),
            sha256: None,
            verified: false,
            source: ADOPTED.to_owned(),
            signed_by: None,
            installed_at: now(),
            unpacked_bytes,
            entries,
        };
        seal(&dir, &record, None)?;
        Ok(Adopted::Fresh { dir, record })
    }

    /// Uninstalls a package: renames its dir aside, then deletes it. Returns
    /// false when it was not installed. Only a dir carrying copkg's
    /// completion marker is ever removed, and never one holding another
    /// package.
    pub fn uninstall(
        &self,
        coordinate: &PackageCoordinate,
        layout: &PackageLayout,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<bool, StoreError> {
        let _lock = self.lock(coordinate, layout, on_wait)?;
        let dir = self.install_dir(layout);
        let trash = self.scratch_dir(layout, "trash")?;
        let aside = {
            let _commit = self.commit_lock()?;
            match self.state(layout)? {
                PackageState::Absent => return Ok(false),
                PackageState::Installed(record) if record.coordinate == coordinate.id() => {}
                PackageState::Installed(_) | PackageState::Foreign => {
                    self.check_nesting(coordinate, layout)?;
                    return Err(StoreError::Foreign { path: dir });
                }
            }
            if let Some((other_dir, record)) =
                find_marker_below(&dir, NESTING_DEPTH).filter(|(other, _)| *other != dir)
            {
                return Err(StoreError::Nested {
                    coordinate: coordinate.id(),
                    dir,
                    relation: "contain",
                    other: record.coordinate,
                    other_dir,
                });
            }
            let aside = tempfile::Builder::new()
                .prefix(&format!("{}.", Self::key(layout)))
                .tempdir_in(&trash)
                .map_err(io_err("cannot create a temp dir in", &trash))?
                .keep();
            std::fs::rename(&dir, aside.join("package"))
                .map_err(io_err("cannot move aside", &dir))?;
            // Parents left empty would read as another package's leftovers.
            let mut parent = dir.parent();
            while let Some(path) = parent.filter(|p| p.starts_with(&self.root) && *p != self.root) {
                if std::fs::remove_dir(path).is_err() {
                    break;
                }
                parent = path.parent();
            }
            aside
        };
        sync_dirs_up_to(dir.parent().unwrap_or(&self.root), &self.root)?;
        std::fs::remove_dir_all(&aside).map_err(io_err("cannot delete", &aside))?;
        Ok(true)
    }

    /// Every complete install under the root, sorted by coordinate.
    pub fn list(&self) -> Result<Vec<(PathBuf, InstallRecord)>, StoreError> {
        let mut found = Vec::new();
        if self.root.is_dir() {
            self.walk(&self.root, 0, &mut found)?;
        }
        found.sort_by(|a, b| a.1.coordinate.cmp(&b.1.coordinate));
        Ok(found)
    }

    fn walk(
        &self,
        dir: &Path,
        depth: usize,
        found: &mut Vec<(PathBuf, InstallRecord)>,
    ) -> Result<(), StoreError> {
        const MAX_DEPTH: usize = 32;
        let marker = dir.join(MARKER_FILE);
        if let Ok(bytes) = read_marker_file(&marker) {
            if let Ok(record) = serde_json::from_slice::<InstallRecord>(&bytes) {
                found.push((dir.to_owned(), record));
            }
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        // A dir removed under a concurrent uninstall is skipped, not an error.
        let vanished = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            )
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if depth > 0 && vanished(&e) => return Ok(()),
            Err(e) => return Err(io_err("cannot list", dir)(e)),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(io_err("cannot list", dir)(e)),
            };
            if (depth == 0 && entry.file_name() == STATE_DIR) || entry.file_name() == MOUNT_TEMP_DIR
            {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.walk(&entry.path(), depth + 1, found)?;
            }
        }
        Ok(())
    }
}

/// What a scoped thread returned; its panic, if it panicked, goes on here.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the manifest of the package tree at `dir` (from `tree`, what
/// unpacking made there, or else read from the disk), then its completion
/// marker (last), and makes both and everything in the tree durable with
/// one `syncfs`, far faster than a per-file fsync.
fn seal(
    dir: &Path,
    record: &InstallRecord,
    tree: Option<&[(String, extract::TreeEntry)]>,
) -> Result<(), StoreError> {
    use std::io::Write;
    manifest::write(dir, tree)?;
    let marker = dir.join(MARKER_FILE);
    let json =
        serde_json::to_vec_pretty(record).map_err(|e| io_err("cannot write", &marker)(e.into()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .and_then(|mut file| file.write_all(&json))
        .map_err(io_err("cannot write", &marker))?;
    let handle = File::open(dir).map_err(io_err("cannot open", dir))?;
    nix::unistd::syncfs(&handle).map_err(|e| io_err("cannot sync", dir)(e.into()))?;
    Ok(())
}

/// Checks every entry of a package dir the original copkg installed by the
/// rules an install applies (`extract.rs`): names, types, symlink targets
/// staying inside, modes an install would give as they are; and that only
/// copkg's user or root owns it, so no one else can change it. Returns the
/// bytes of file content and the entries.
fn check_adoptable(dir: &Path) -> Result<(u64, u64), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let refuse = |entry: &str, reason: String| StoreError::Unadoptable {
        dir: dir.to_owned(),
        entry: entry.to_owned(),
        reason,
    };
    let check_meta = |entry: &str, meta: &std::fs::Metadata| -> Result<(), StoreError> {
        if meta.uid() != me && meta.uid() != 0 {
            return Err(refuse(
                entry,
                format!(
                    "is owned by uid {}, not by copkg's user or root: its owner could change the package",
                    meta.uid()
                ),
            ));
        }
        let mode = meta.mode() & 0o7777;
        let installed = if meta.is_dir() {
            extract::dir_mode(mode)
        } else {
            extract::file_mode(mode)
        };
        if !meta.is_symlink() && installed != mode {
            return Err(refuse(
                entry,
                format!(
                    "has mode {}, which an install would make {}: change it (chmod) and adopt again",
                    mode_text(mode),
                    mode_text(installed)
                ),
            ));
        }
        Ok(())
    };
    let top = std::fs::symlink_metadata(dir).map_err(io_err("cannot inspect", dir))?;
    check_meta(".", &top)?;
    let (mut bytes, mut entries) = (0u64, 0u64);
    manifest::visit(dir, |relative, path, meta| {
        let name = relative.as_os_str().as_bytes();
        let shown = relative.to_string_lossy();
        let unsafe_entry = |err: ExtractError| match err {
            ExtractError::Unsafe { reason, .. } => refuse(&shown, reason),
            other => refuse(&shown, other.to_string()),
        };
        let components = extract::entry_components(name).map_err(unsafe_entry)?;
        check_meta(&shown, meta)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err("cannot read link", path))?;
            extract::check_symlink_target(name, &components, target.as_os_str().as_bytes())
                .map_err(unsafe_entry)?;
        } else if kind.is_file() {
            bytes += meta.len();
        } else if !kind.is_dir() {
            use std::os::unix::fs::FileTypeExt;
            let what = if kind.is_fifo() {
                "a fifo"
            } else if kind.is_socket() {
                "a socket"
            } else if kind.is_char_device() {
                "a character device"
            } else {
                "a block device"
            };
            return Err(refuse(&shown, format!("is {what}")));
        }
        entries += 1;
        Ok(())
    })?;
    Ok((bytes, entries))
}

/// What is at an install dir.
fn state_at(dir: &Path) -> Result<PackageState, StoreError> {
    let marker = dir.join(MARKER_FILE);
    match read_marker_file(&marker) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(PackageState::Installed(record)),
            Err(_) => Ok(PackageState::Foreign),
        },
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            match std::fs::symlink_metadata(dir) {
                // An empty dir (left by an uninstalled package nested
                // below it) holds nothing to lose.
                Ok(meta) if meta.is_dir() && is_empty_dir(dir) => Ok(PackageState::Absent),
                Ok(_) => Ok(PackageState::Foreign),
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::NotADirectory =>
                {
                    Ok(PackageState::Absent)
                }
                Err(e) => Err(io_err("cannot inspect", dir)(e)),
            }
        }
        Err(e) => Err(io_err("cannot read", &marker)(e)),
    }
}

/// Whether `dir` holds nothing but, at the top of a mount, copkg's
/// [`MOUNT_TEMP_DIR`].
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == MOUNT_TEMP_DIR)))
}

/// A completion marker's bytes: a regular file of at most [`MARKER_LIMIT`].
fn read_marker_file(marker: &Path) -> io::Result<Vec<u8>> {
    crate::bounded::read_file(marker, MARKER_LIMIT)
}

/// The completion marker's record in `dir`, if it has a readable one.
fn read_marker(dir: &Path) -> Option<InstallRecord> {
    let bytes = read_marker_file(&dir.join(MARKER_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The first install found at or below `dir` (to `depth` levels), if any.
fn find_marker_below(dir: &Path, depth: usize) -> Option<(PathBuf, InstallRecord)> {
    if let Some(record) = read_marker(dir) {
        return Some((dir.to_owned(), record));
    }
    if depth == 0 {
        return None;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            // Temp dirs hold markers before they are renamed into place.
            (e.file_type().ok()?.is_dir() && e.file_name() != MOUNT_TEMP_DIR).then(|| e.path())
        })
        .collect();
    entries.sort();
    entries
        .iter()
        .find_map(|child| find_marker_below(child, depth - 1))
}

/// fsyncs `dir` and each of its ancestors up to and including `root`, so that
/// new directory entries along the way survive a power loss.
fn sync_dirs_up_to(dir: &Path, root: &Path) -> Result<(), StoreError> {
    let mut current = Some(dir);
    while let Some(path) = current {
        match File::open(path) {
            Ok(handle) => handle.sync_all().map_err(io_err("cannot sync", path))?,
            // Removed meanwhile (an empty parent an uninstall pruned): its
            // parent's entry is what is synced next.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot open", path)(e)),
        }
        if path == root {
            break;
        }
        current = path.parent().filter(|p| p.starts_with(root));
    }
    Ok(())
}

/// Reads a `.sha256` sidecar: the first non-blank line holds 64 hex digits,
/// optionally followed by whitespace and a file name (`hex  file`, `hex *file`).
pub fn parse_sidecar(bytes: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text")?;
    let text = text.trim_start_matches('\u{feff}');
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .ok_or("empty")?;
    let digest = line.split_whitespace().next().ok_or("empty")?;
    parse_sha256_hex(digest).ok_or("expected 64 hex digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounts_temp_dir_is_neither_a_package_nor_content() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().join("com/example");
        // A temp dir about to be renamed into place already has its marker.
        let temp = mount.join(MOUNT_TEMP_DIR).join("0123.x1");
        std::fs::create_dir_all(&temp).unwrap();
        let record = InstallRecord {
            coordinate: "com.example:hello:1".into(),
            sha256: Some("0".repeat(64)),
            verified: true,
            source: "s".into(),
            signed_by: None,
            installed_at: 0,
            unpacked_bytes: 0,
            entries: 0,
        };
        std::fs::write(temp.join(MARKER_FILE), serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(find_marker_below(root.path(), NESTING_DEPTH), None);
        assert_eq!(state_at(&mount).unwrap(), PackageState::Absent);
        assert_eq!(Store::new(root.path()).list().unwrap(), []);
        // Anything else there is content.
        std::fs::create_dir(mount.join("other")).unwrap();
        assert_eq!(state_at(&mount).unwrap(), PackageState::Foreign);
        std::fs::write(
            mount.join("other").join(MARKER_FILE),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        assert_eq!(
            find_marker_below(root.path(), NESTING_DEPTH),
            Some((mount.join("other"), record))
        );
    }

    #[test]
    fn an_oversized_marker_is_refused_naming_it_and_the_limit() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("com/example/hello/1");
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join(MARKER_FILE);
        std::fs::write(&marker, vec![b' '; MARKER_LIMIT as usize + 1]).unwrap();
        let err = state_at(&dir).unwrap_err();
        assert_eq!(
            crate::exit::one_line(&err),
            format!("cannot read {}: larger than 65536 bytes", marker.display())
        );
        // Elsewhere it is no marker at all.
        assert_eq!(read_marker(&dir), None);
        assert_eq!(Store::new(root.path()).list().unwrap(), []);
    }

    #[test]
    fn sidecar_formats() {
        let hex = "0123456789abcdef".repeat(4);
        let upper = hex.to_ascii_uppercase();
        let accepted = [
            hex.clone(),
            format!("{hex}\n"),
            format!("{hex}  pkg-1.0-copkg.tar.gz\n"),
            format!("{hex} *pkg-1.0-copkg.tar.gz\n"),
            format!("{upper}\r\n"),
            format!("\n\n  \r\n{hex}\r\n"),
        ];
        for text in accepted {
            assert_eq!(
                parse_sidecar(text.as_bytes()).as_deref(),
                Ok(hex.as_str()),
                "{text:?}"
            );
        }
        let refused = [
            String::new(),
            "\n\n".into(),
            "not-hex".into(),
            hex[..63].to_string(),
            format!("{hex}0"),
            format!("g{}", &hex[1..]),
        ];
        for text in refused {
            assert!(parse_sidecar(text.as_bytes()).is_err(), "{text:?}");
        }
        assert!(parse_sidecar(b"\xff\xfe").is_err());
    }
}
