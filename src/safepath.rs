//! Paths resolved as root safely: by descriptor from `/` (or the cwd for a
//! relative path), following a symlink only where it sits in a directory
//! that no other user can write, so no link an account planted ever steers
//! copkg elsewhere.
//!
//! Site hooks and scripts run as root on paths that cross dirs service
//! accounts write (their runtime dirs, `/tmp`), and those accounts may
//! change anything there between any two system calls (SECURITY.md part
//! F). So a path is never handed to the kernel whole: it is walked one
//! component at a time, each opened with `openat(O_PATH | O_DIRECTORY |
//! O_NOFOLLOW)` in the descriptor of the one before. A component that is a
//! symlink is followed (its target walked the same way, at most
//! [`MAX_LINKS`] links in all) only when the dir holding it is *trusted*:
//! owned by copkg's effective uid or by root, and writable by neither group
//! nor others. A link anywhere else is refused, naming it. The
//! administrator's links (`/var/run -> /run`, `/etc/alternatives`) keep
//! working; none an account could plant is followed.
//!
//! `..` goes back to the dir the walk came from, by the descriptor it
//! holds, so it never climbs through a link; it may not climb above `/`.
//!
//! What a path resolves to is a [`Resolved`]: the descriptor of the dir
//! holding the final name, and that name. Every operation on it is a `*at`
//! call on that descriptor, and what it opens is judged by `fstat` on the
//! descriptor it then uses. Paths are kept only to name things in errors.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;

use crate::exit::{Coded, ExitCode};
use crate::rundir::{self, RunDirError, Want};

/// How many symlinks one resolution follows at most, as the kernel's
/// `MAXSYMLINKS`.
pub const MAX_LINKS: usize = 40;
/// How many dirs deep a walk goes; each level holds a descriptor open, so
/// that `..` returns to it.
const MAX_DEPTH: usize = 256;
/// How often one component is tried again when it keeps changing under the
/// walk (made by a racing creator, swapped, removed).
const ROUNDS: usize = 8;
/// How many temp names are tried before giving up.
const TEMP_ROUNDS: usize = 16;

/// Why a path could not be resolved or used.
#[derive(Debug, thiserror::Error)]
pub enum SafePathError {
    /// A system call failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path of what it was done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A symlink in a directory that another user can write: never followed.
    #[error(
        "refusing {}: it is a symlink in a directory other users can write ({why}); not followed",
        path.display()
    )]
    UntrustedLink {
        /// The link's path.
        path: PathBuf,
        /// Who else can write its directory: `owned by uid 65534`.
        why: String,
    },
    /// More symlinks than [`MAX_LINKS`] on the way (a loop, most likely).
    #[error("refusing {}: more than {MAX_LINKS} symlinks to follow", path.display())]
    TooManyLinks {
        /// The link that would have been one too many.
        path: PathBuf,
    },
    /// What is at a path is not what copkg may use there (a FIFO where a
    /// file belongs, a file over the size limit, a path climbing above `/`).
    #[error("refusing {}: it {reason}", path.display())]
    Refused {
        /// The path refused.
        path: PathBuf,
        /// Why, completing "it …": `is a FIFO, not a regular file`.
        reason: String,
    },
    /// A rename failed.
    #[error("cannot rename {} to {}", from.display(), to.display())]
    Rename {
        /// What was renamed.
        from: PathBuf,
        /// Its new name.
        to: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Listing or removing a tree by descriptor failed.
    #[error(transparent)]
    Dir(#[from] RunDirError),
}

impl SafePathError {
    /// Whether the path, or a dir on the way to it, does not exist (or is
    /// not a dir where one was needed): what a test for existence answers
    /// with `false`.
    pub fn is_missing(&self) -> bool {
        match self {
            SafePathError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
            }
            SafePathError::UntrustedLink { .. }
            | SafePathError::TooManyLinks { .. }
            | SafePathError::Refused { .. }
            | SafePathError::Rename { .. }
            | SafePathError::Dir(_) => false,
        }
    }
}

impl Coded for SafePathError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SafePathError::Io { .. }
            | SafePathError::UntrustedLink { .. }
            | SafePathError::TooManyLinks { .. }
            | SafePathError::Refused { .. }
            | SafePathError::Rename { .. }
            | SafePathError::Dir(_) => ExitCode::Failure,
        }
    }
}

/// A path resolved to the descriptor of the dir that holds its final name,
/// and that name. The name is `.` when the path names a dir by no name of
/// its own (`/`, or a path ending in `..`).
#[derive(Debug)]
pub struct Resolved {
    dir: OwnedFd,
    name: OsString,
    /// Only for naming things in errors.
    path: PathBuf,
}

/// Resolves `path` to its parent dir and final name, the final name NOT
/// followed when it is a symlink: for operations on the name itself
/// (remove, rename, replace, `lstat`). Every dir on the way is reached as
/// the module doc says.
pub fn parent_of(path: &Path) -> Result<Resolved, SafePathError> {
    Walk::start(path)?.finish_at_name(false)
}

/// Resolves `path` to the dir and name of what it leads to: a final symlink
/// is followed too, under the same rule as every other (only where its dir
/// is trusted), for operations on the file itself (read, hash, compress).
pub fn resolve(path: &Path) -> Result<Resolved, SafePathError> {
    Walk::start(path)?.finish_at_name(true)
}

/// Opens the dir at `path` (`O_PATH`: for `*at` calls, not for reading),
/// following links only by the trusted-dir rule. With `create`, missing dirs
/// are made on the way with mode 0755 (less the umask); a racing creator is
/// no error. Something there that is not a dir fails with ENOTDIR.
pub fn open_dir(path: &Path, create: bool) -> Result<OwnedFd, SafePathError> {
    let (dir, _) = Walk::start(path)?.run(None, create)?;
    Ok(dir.fd)
}

/// Why a dir with `stat` is not trusted, so that a symlink in it is not
/// followed: someone other than copkg's effective uid and root may write
/// it. `None` when it is trusted.
fn distrust(stat: &FileStat) -> Option<String> {
    let me = nix::unistd::geteuid().as_raw();
    if stat.st_uid != me && stat.st_uid != 0 {
        return Some(format!("owned by uid {}", stat.st_uid));
    }
    if stat.st_mode & 0o022 != 0 {
        return Some(format!("mode {:04o}", stat.st_mode & 0o7777));
    }
    None
}

impl Resolved {
    /// The descriptor of the dir holding the final name.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The final name (`.` for a dir named by no name of its own).
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The path walked, for messages only: the file is reached through
    /// [`Resolved::dir`], never through this path. Without links on the way
    /// it is the path given, without `.` components and doubled slashes;
    /// through a link it is the link's target.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final name, refused when the path names no entry of a dir (`/`,
    /// or ending in `..`): what is created, removed or renamed must be one.
    fn entry(&self) -> Result<&OsStr, SafePathError> {
        if self.name == "." {
            return Err(refused(&self.path, "names no entry of a directory"));
        }
        Ok(&self.name)
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)` of the final name: a symlink is
    /// reported as one, never followed. `Ok(None)` when it does not exist.
    pub fn lstat(&self) -> Result<Option<FileStat>, SafePathError> {
        match nix::sys::stat::fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(io_error("cannot inspect", &self.path, errno)),
        }
    }

    /// Opens the final name for reading, and checks on the descriptor that
    /// it is a regular file: `O_NOFOLLOW` (a link swapped in since the walk
    /// is refused), `O_NONBLOCK` (a FIFO or device is refused without
    /// blocking). A file with more than one hard link in a dir others can
    /// write is refused too: it may be a file from elsewhere (`/etc/shadow`)
    /// that an account linked in.
    pub fn open_file(&self) -> Result<(File, FileStat), SafePathError> {
        self.open_file_with(OFlag::O_RDONLY)
    }

    /// [`Resolved::open_file`] for reading and writing (truncating a log
    /// the service keeps open).
    pub fn open_file_rw(&self) -> Result<(File, FileStat), SafePathError> {
        self.open_file_with(OFlag::O_RDWR)
    }

    fn open_file_with(&self, access: OFlag) -> Result<(File, FileStat), SafePathError> {
        let flags =
            access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let fd = match nix::fcntl::openat(&self.dir, self.name.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(errno) => return Err(self.open_failure(errno)),
        };
        let stat = nix::sys::stat::fstat(&fd)
            .map_err(|errno| io_error("cannot inspect", &self.path, errno))?;
        if let Some(reason) = rundir::mismatch(stat.st_mode, Want::File) {
            return Err(refused(&self.path, reason));
        }
        if stat.st_nlink > 1 {
            let dir = nix::sys::stat::fstat(&self.dir)
                .map_err(|errno| io_error("cannot inspect the directory of", &self.path, errno))?;
            if let Some(why) = distrust(&dir) {
                return Err(refused(
                    &self.path,
                    format!(
                        "has {} hard links in a directory other users can write ({why}), so it may be a file from elsewhere linked in",
                        stat.st_nlink
                    ),
                ));
            }
        }
        Ok((File::from(fd), stat))
    }

    /// Why opening the final name failed with `errno`: a symlink (which
    /// `O_NOFOLLOW` answers with ELOOP) or another type is refused, naming
    /// it; anything else is the I/O error.
    fn open_failure(&self, errno: Errno) -> SafePathError {
        let stat = nix::sys::stat::fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        match stat {
            Ok(stat) if stat.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                // Swapped in after the walk looked: followed by no one.
                match nix::sys::stat::fstat(&self.dir).map(|dir| distrust(&dir)) {
                    Ok(Some(why)) => SafePathError::UntrustedLink {
                        path: self.path.clone(),
                        why,
                    },
                    _ => refused(&self.path, "is a symlink"),
                }
            }
            Ok(stat) => match rundir::mismatch(stat.st_mode, Want::File) {
                Some(reason) => refused(&self.path, reason),
                None => io_error("cannot open", &self.path, errno),
            },
            Err(_) => io_error("cannot open", &self.path, errno),
        }
    }

    /// Reads the regular file at the final name whole, as
    /// [`Resolved::open_file`] opens it. A file over `limit` bytes is
    /// refused: at most `limit + 1` bytes are read, whatever its size claims.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, SafePathError> {
        let (file, _) = self.open_file()?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| SafePathError::Io {
                action: "cannot read",
                path: self.path.clone(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(refused(&self.path, format!("is larger than {limit} bytes")));
        }
        Ok(bytes)
    }

    /// Creates a new temp file with `mode` (less the umask) in the dir of
    /// the final name, under a random name (`O_CREAT | O_EXCL |
    /// O_NOFOLLOW`: nothing already there, link or not, is ever opened). It
    /// is removed when dropped unless [`TempFile::persist`]ed.
    pub fn create_temp(&self, mode: u32) -> Result<TempFile<'_>, SafePathError> {
        let target = self.entry()?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        let mut last = Errno::EEXIST;
        for _ in 0..TEMP_ROUNDS {
            let name = temp_name();
            match nix::fcntl::openat(
                &self.dir,
                name.as_os_str(),
                flags,
                Mode::from_bits_truncate(mode),
            ) {
                Ok(fd) => {
                    return Ok(TempFile {
                        dir: self.dir.as_fd(),
                        name,
                        file: File::from(fd),
                        target: self.path.clone(),
                        target_name: target.to_owned(),
                        persisted: false,
                    });
                }
                Err(errno @ Errno::EEXIST) => last = errno,
                Err(errno) => {
                    return Err(io_error(
                        "cannot create a temp file beside",
                        &self.path,
                        errno,
                    ));
                }
            }
        }
        Err(io_error(
            "cannot create a temp file beside",
            &self.path,
            last,
        ))
    }

    /// Writes `bytes` to a temp file beside the final name (mode 0644),
    /// syncs it, and renames it over the name: a symlink there is replaced,
    /// never written through, and readers see the old content or the new.
    pub fn write_atomically(&self, bytes: &[u8]) -> Result<(), SafePathError> {
        let mut temp = self.create_temp(0o600)?;
        let write_error = |source| SafePathError::Io {
            action: "cannot write",
            path: self.path.clone(),
            source,
        };
        temp.file.write_all(bytes).map_err(write_error)?;
        nix::sys::stat::fchmod(&temp.file, Mode::from_bits_truncate(0o644))
            .map_err(|errno| write_error(errno.into()))?;
        temp.file.sync_all().map_err(write_error)?;
        temp.persist()
    }

    /// Removes the final name when it is a file, a symlink (never its
    /// target) or anything but a dir; `Ok(false)` when nothing was there. A
    /// dir is refused.
    pub fn unlink(&self) -> Result<bool, SafePathError> {
        let name = self.entry()?;
        match nix::unistd::unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(Errno::EISDIR) => Err(refused(&self.path, "is a directory, not a file")),
            Err(errno) => Err(io_error("cannot remove", &self.path, errno)),
        }
    }

    /// Removes the final name, and when it is a dir everything in it, by
    /// descriptor: a symlink anywhere is removed as a link and never
    /// followed. `Ok(false)` when nothing was there.
    pub fn remove(&self) -> Result<bool, SafePathError> {
        let name = self.entry()?;
        match nix::unistd::unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(Errno::EISDIR) => {
                rundir::remove_tree(self.dir.as_fd(), name, &self.path)?;
                Ok(true)
            }
            Err(errno) => Err(io_error("cannot remove", &self.path, errno)),
        }
    }

    /// Renames the final name to `to`'s final name (`renameat`), each in
    /// its own dir's descriptor; a link at either is renamed or replaced,
    /// never followed.
    pub fn rename_to(&self, to: &Resolved) -> Result<(), SafePathError> {
        nix::fcntl::renameat(&self.dir, self.entry()?, &to.dir, to.entry()?).map_err(|errno| {
            SafePathError::Rename {
                from: self.path.clone(),
                to: to.path.clone(),
                source: errno.into(),
            }
        })
    }
}

/// A temp file made by [`Resolved::create_temp`] in a dir, removed when
/// dropped unless persisted.
#[derive(Debug)]
pub struct TempFile<'a> {
    dir: BorrowedFd<'a>,
    name: OsString,
    file: File,
    /// The path it is renamed to, for messages.
    target: PathBuf,
    target_name: OsString,
    persisted: bool,
}

impl TempFile<'_> {
    /// The open temp file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Renames the temp file over the final name it was made for
    /// (`renameat`, so a link there is replaced, never written through).
    pub fn persist(mut self) -> Result<(), SafePathError> {
        self.persist_as(None)
    }

    /// Renames the temp file to `name` in the same dir instead (`app.log.gz`
    /// for `app.log`); `path` names it in errors.
    pub fn persist_beside(mut self, name: &OsStr, path: &Path) -> Result<(), SafePathError> {
        self.persist_as(Some((name, path)))
    }

    fn persist_as(&mut self, to: Option<(&OsStr, &Path)>) -> Result<(), SafePathError> {
        let (name, path) = to.unwrap_or((&self.target_name, &self.target));
        nix::fcntl::renameat(self.dir, self.name.as_os_str(), self.dir, name)
            .map_err(|errno| io_error("cannot write", path, errno))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: a leftover temp file is only untidy.
            let _ =
                nix::unistd::unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// A fresh name for a temp file: fixed length (whatever the final name's),
/// hidden, and hard to guess.
fn temp_name() -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    OsString::from(format!(".copkg-{:016x}.tmp", hasher.finish()))
}

/// A dir the walk went through, held open so that `..` returns to it.
struct Level {
    fd: OwnedFd,
    path: PathBuf,
}

/// One resolution in progress.
struct Walk<'a> {
    /// The path given, for errors about it as a whole.
    given: &'a Path,
    /// Where the walk started: `/`, or the cwd (or above it, after `..`).
    base: Level,
    /// Whether `base` is `/`.
    base_is_root: bool,
    /// The dirs walked through below `base`.
    levels: Vec<Level>,
    /// Components still to walk, a followed link's target first.
    pending: VecDeque<Vec<u8>>,
    /// Symlinks followed so far.
    links: usize,
}

impl<'a> Walk<'a> {
    fn start(given: &'a Path) -> Result<Walk<'a>, SafePathError> {
        let bytes = given.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(refused(given, "is an empty path"));
        }
        if bytes.contains(&0) {
            return Err(refused(given, "holds a NUL byte"));
        }
        let absolute = bytes[0] == b'/';
        let base = if absolute {
            root()?
        } else {
            let fd = nix::fcntl::open(".", path_flags(), Mode::empty())
                .map_err(|errno| io_error("cannot open", Path::new("."), errno))?;
            Level {
                fd,
                path: PathBuf::new(),
            }
        };
        Ok(Walk {
            given,
            base,
            base_is_root: absolute,
            levels: Vec::new(),
            pending: components(bytes),
            links: 0,
        })
    }

    /// The dir the walk is in.
    fn top(&self) -> &Level {
        self.levels.last().unwrap_or(&self.base)
    }

    /// Walks to the final name, following it when it is a symlink and
    /// `follow` (by the trusted-dir rule, as every other).
    fn finish_at_name(self, follow: bool) -> Result<Resolved, SafePathError> {
        let (dir, name) = self.run(Some(follow), false)?;
        let (name, path) = match name {
            Some(name) => {
                let path = dir.path.join(&name);
                (name, path)
            }
            // The path names a dir by no name of its own (`/`, `a/..`).
            None => (OsString::from("."), dir.path),
        };
        Ok(Resolved {
            dir: dir.fd,
            name,
            path: if path.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                path
            },
        })
    }

    /// Walks every component: with `last` (whether to follow it) the final
    /// one is a name, returned with the dir holding it, else a dir to enter
    /// (made when missing with `create`). Returns the dir the walk ends in
    /// and the final name, if any.
    fn run(
        mut self,
        last: Option<bool>,
        create: bool,
    ) -> Result<(Level, Option<OsString>), SafePathError> {
        while let Some(part) = self.pending.pop_front() {
            if part == b".." {
                self.up()?;
                continue;
            }
            let name = OsStr::from_bytes(&part);
            match last {
                Some(follow) if self.pending.is_empty() => {
                    if follow && self.is_link(name)? {
                        self.follow(name)?;
                        continue;
                    }
                    let name = name.to_owned();
                    return Ok((self.into_top(), Some(name)));
                }
                _ => self.enter(name, create)?,
            }
        }
        Ok((self.into_top(), None))
    }

    fn into_top(mut self) -> Level {
        self.levels.pop().unwrap_or(self.base)
    }

    /// Whether `name` in the current dir is a symlink (not when missing).
    fn is_link(&self, name: &OsStr) -> Result<bool, SafePathError> {
        let top = self.top();
        match nix::sys::stat::fstatat(&top.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(stat.st_mode & libc::S_IFMT == libc::S_IFLNK),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(io_error("cannot inspect", &top.path.join(name), errno)),
        }
    }

    /// Goes into the dir `name` of the current dir, following it by the
    /// trusted-dir rule when it is a symlink; with `create`, makes it when
    /// missing.
    fn enter(&mut self, name: &OsStr, create: bool) -> Result<(), SafePathError> {
        let path = self.top().path.join(name);
        let mut last = Errno::EAGAIN;
        for _ in 0..ROUNDS {
            let parent = &self.top().fd;
            match nix::fcntl::openat(parent, name, path_flags(), Mode::empty()) {
                Ok(fd) => return self.push(fd, path),
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o755)) {
                        // EEXIST: a racing creator, or something else that
                        // the next open judges.
                        Ok(()) | Err(Errno::EEXIST) => last = Errno::EEXIST,
                        Err(errno) => return Err(io_error("cannot create", &path, errno)),
                    }
                }
                Err(errno @ Errno::ENOENT) => {
                    return Err(io_error("cannot open", self.given, errno));
                }
                // A symlink (O_NOFOLLOW), or not a dir.
                Err(errno @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                    match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(stat) if stat.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                            return self.follow(name);
                        }
                        // Swapped back since: opened next round.
                        Ok(stat) if stat.st_mode & libc::S_IFMT == libc::S_IFDIR => last = errno,
                        Ok(_) => {
                            return Err(io_error("cannot open", self.given, Errno::ENOTDIR));
                        }
                        Err(Errno::ENOENT) => last = Errno::ENOENT,
                        Err(errno) => return Err(io_error("cannot inspect", &path, errno)),
                    }
                }
                Err(errno) => return Err(io_error("cannot open", &path, errno)),
            }
        }
        // It kept changing under the walk.
        Err(io_error("cannot open", &path, last))
    }

    fn push(&mut self, fd: OwnedFd, path: PathBuf) -> Result<(), SafePathError> {
        if self.levels.len() >= MAX_DEPTH {
            return Err(refused(
                &path,
                format!("is nested more than {MAX_DEPTH} dirs deep"),
            ));
        }
        self.levels.push(Level { fd, path });
        Ok(())
    }

    /// Follows the symlink `name` of the current dir, when that dir is
    /// trusted: its target's components are walked next, from `/` when it
    /// is absolute, else from this dir.
    fn follow(&mut self, name: &OsStr) -> Result<(), SafePathError> {
        let top = self.top();
        let link = top.path.join(name);
        let dir = nix::sys::stat::fstat(&top.fd)
            .map_err(|errno| io_error("cannot inspect", &top.path, errno))?;
        if let Some(why) = distrust(&dir) {
            return Err(SafePathError::UntrustedLink { path: link, why });
        }
        if self.links == MAX_LINKS {
            return Err(SafePathError::TooManyLinks { path: link });
        }
        let target = nix::fcntl::readlinkat(&top.fd, name)
            .map_err(|errno| io_error("cannot read the symlink", &link, errno))?
            .into_vec();
        self.links += 1;
        if target.is_empty() {
            return Err(io_error("cannot follow the symlink", &link, Errno::ENOENT));
        }
        if target[0] == b'/' {
            self.base = root()?;
            self.base_is_root = true;
            self.levels.clear();
        }
        let mut next = components(&target);
        next.extend(self.pending.drain(..));
        self.pending = next;
        Ok(())
    }

    /// `..`: back to the dir the walk came from; above the start (the cwd)
    /// to its real parent, by descriptor; never above `/`.
    fn up(&mut self) -> Result<(), SafePathError> {
        if self.levels.pop().is_some() {
            return Ok(());
        }
        let climbs = |given| refused(given, "climbs above `/` with `..`");
        if self.base_is_root {
            return Err(climbs(self.given));
        }
        let parent = nix::fcntl::openat(&self.base.fd, "..", path_flags(), Mode::empty())
            .map_err(|errno| io_error("cannot open", &self.base.path.join(".."), errno))?;
        let inspect = |fd: &OwnedFd| {
            nix::sys::stat::fstat(fd).map_err(|errno| io_error("cannot inspect", self.given, errno))
        };
        let (here, above) = (inspect(&self.base.fd)?, inspect(&parent)?);
        if (here.st_dev, here.st_ino) == (above.st_dev, above.st_ino) {
            return Err(climbs(self.given));
        }
        let path = self.base.path.join("..");
        self.base = Level { fd: parent, path };
        Ok(())
    }
}

/// `/`, opened as the start of a walk.
fn root() -> Result<Level, SafePathError> {
    let fd = nix::fcntl::open("/", path_flags(), Mode::empty())
        .map_err(|errno| io_error("cannot open", Path::new("/"), errno))?;
    Ok(Level {
        fd,
        path: PathBuf::from("/"),
    })
}

/// The components of a path or link target, without empty ones and `.`.
fn components(bytes: &[u8]) -> VecDeque<Vec<u8>> {
    bytes
        .split(|&b| b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// Flags for the dirs of a walk: only a place to resolve names from, never
/// through a symlink.
fn path_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn io_error(action: &'static str, path: &Path, errno: Errno) -> SafePathError {
    SafePathError::Io {
        action,
        path: path.to_owned(),
        source: errno.into(),
    }
}

fn refused(path: &Path, reason: impl Into<String>) -> SafePathError {
    SafePathError::Refused {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    //! These run as root: they give dirs to uid 65534 to play the service
    //! account.

    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::sync::mpsc;
    use std::time::Duration;

    /// The account that owns the "runtime dir" in these tests.
    const NOBODY: u32 = 65534;

    /// A temp dir (root's, 0700: trusted) holding `outside/` with a file
    /// `secret` and a dir `deep/`: what no planted link may lead to.
    struct Fixture {
        _temp: tempfile::TempDir,
        base: PathBuf,
        outside: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let temp = tempfile::tempdir().unwrap();
            let base = temp.path().to_owned();
            let outside = base.join("outside");
            fs::create_dir_all(outside.join("deep")).unwrap();
            fs::write(outside.join("secret"), "secret\n").unwrap();
            Fixture {
                _temp: temp,
                base,
                outside,
            }
        }

        /// A dir `name` in the base, owned by `uid` with `mode`, holding
        /// `file -> outside/secret` and `dir -> outside`.
        fn dir(&self, name: &str, uid: u32, mode: u32) -> PathBuf {
            let dir = self.base.join(name);
            fs::create_dir(&dir).unwrap();
            symlink(self.outside.join("secret"), dir.join("file")).unwrap();
            symlink(&self.outside, dir.join("dir")).unwrap();
            std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            dir
        }

        /// Every path below `outside`, with its content for files.
        fn outside_state(&self) -> Vec<(PathBuf, String)> {
            fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
                let mut entries: Vec<_> = fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                entries.sort();
                for path in entries {
                    let meta = fs::symlink_metadata(&path).unwrap();
                    let content = if meta.is_file() {
                        fs::read_to_string(&path).unwrap()
                    } else {
                        String::new()
                    };
                    out.push((path.clone(), content));
                    if meta.is_dir() {
                        walk(&path, out);
                    }
                }
            }
            let mut out = Vec::new();
            walk(&self.outside, &mut out);
            out
        }
    }

    fn assert_untrusted<T: std::fmt::Debug>(
        result: Result<T, SafePathError>,
        link: &Path,
        case: &str,
    ) {
        match result {
            Err(SafePathError::UntrustedLink { path, .. }) => {
                assert_eq!(path, link, "{case}: wrong link named");
            }
            other => panic!("{case}: {other:?}, not a refused link"),
        }
    }

    fn assert_refused<T: std::fmt::Debug>(
        result: Result<T, SafePathError>,
        want_path: &Path,
        reason_part: &str,
        case: &str,
    ) {
        match result {
            Err(SafePathError::Refused { path, reason }) => {
                assert_eq!(path, want_path, "{case}: wrong path named");
                assert!(reason.contains(reason_part), "{case}: {reason}");
            }
            other => panic!("{case}: {other:?}, not refused"),
        }
    }

    #[test]
    fn links_in_trusted_dirs_are_followed_at_the_end_and_on_the_way() {
        let f = Fixture::new();
        for (name, uid, mode) in [("root", 0, 0o755), ("mine-0700", 0, 0o700)] {
            let dir = f.dir(name, uid, mode);
            symlink("../outside/secret", dir.join("relative")).unwrap();
            for link in ["file", "relative"] {
                let resolved = resolve(&dir.join(link)).unwrap();
                assert_eq!(resolved.path(), f.outside.join("secret"), "{name}/{link}");
                assert_eq!(resolved.read(1024).unwrap(), b"secret\n", "{name}/{link}");
            }
            let through = resolve(&dir.join("dir/secret")).unwrap();
            assert_eq!(through.path(), f.outside.join("secret"));
            assert_eq!(through.read(1024).unwrap(), b"secret\n");
            let opened = nix::sys::stat::fstat(open_dir(&dir.join("dir"), false).unwrap()).unwrap();
            let outside = fs::metadata(&f.outside).unwrap();
            assert_eq!(
                (opened.st_dev, opened.st_ino),
                (outside.dev(), outside.ino())
            );
            // The final name itself, when not to be followed, is the link.
            let named = parent_of(&dir.join("file")).unwrap();
            assert_eq!(named.name(), "file");
            let stat = named.lstat().unwrap().unwrap();
            assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFLNK);
        }
        // An administrator's link to a dir that holds one more.
        fs::create_dir(f.base.join("etc")).unwrap();
        symlink(f.base.join("root/file"), f.base.join("etc/alternative")).unwrap();
        assert_eq!(
            resolve(&f.base.join("etc/alternative")).unwrap().path(),
            f.outside.join("secret")
        );
    }

    #[test]
    fn links_in_dirs_others_can_write_are_refused_at_the_end_and_on_the_way() {
        let f = Fixture::new();
        let cases = [
            ("world", 0, 0o777, "mode 0777"),
            ("sticky", 0, 0o1777, "mode 1777"),
            ("group", 0, 0o775, "mode 0775"),
            ("nobody", NOBODY, 0o755, "owned by uid 65534"),
        ];
        let before = f.outside_state();
        for (name, uid, mode, why) in cases {
            let dir = f.dir(name, uid, mode);
            let file = dir.join("file");
            match resolve(&file) {
                Err(SafePathError::UntrustedLink { path, why: got }) => {
                    assert_eq!(path, file, "{name}");
                    assert_eq!(got, why, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
            let link = dir.join("dir");
            assert_untrusted(resolve(&link.join("secret")), &link, name);
            assert_untrusted(parent_of(&link.join("secret")), &link, name);
            assert_untrusted(parent_of(&link.join("deep/x")), &link, name);
            assert_untrusted(open_dir(&link, false), &link, name);
            assert_untrusted(open_dir(&link.join("made"), true), &link, name);
            // A trusted link that leads into the dir: still refused there.
            let hop = f.base.join(format!("hop-{name}"));
            symlink(&dir, &hop).unwrap();
            assert_untrusted(resolve(&hop.join("file")), &file, name);
            assert_untrusted(resolve(&hop.join("dir/secret")), &link, name);
            // Not followed, a link is there to be seen (and replaced).
            let named = parent_of(&file).unwrap();
            let stat = named.lstat().unwrap().unwrap();
            assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFLNK, "{name}");
        }
        assert_eq!(f.outside_state(), before, "something outside changed");
        let message = resolve(&f.base.join("nobody/file"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!(
                "refusing {}: it is a symlink in a directory other users can write (owned by uid 65534); not followed",
                f.base.join("nobody/file").display()
            )
        );
    }

    #[test]
    fn link_loops_and_long_chains_are_bounded() {
        let f = Fixture::new();
        let dir = f.base.join("links");
        fs::create_dir(&dir).unwrap();
        symlink("a", dir.join("b")).unwrap();
        symlink("b", dir.join("a")).unwrap();
        symlink("self", dir.join("self")).unwrap();
        symlink("loop/x", dir.join("loop")).unwrap();
        for name in ["a", "self", "loop"] {
            match resolve(&dir.join(name)) {
                Err(SafePathError::TooManyLinks { .. }) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            open_dir(&dir.join("a/x"), true),
            Err(SafePathError::TooManyLinks { .. })
        ));
        // A chain of exactly MAX_LINKS is followed; one more is not.
        for (chain, ok) in [(MAX_LINKS, true), (MAX_LINKS + 1, false)] {
            let dir = f.base.join(format!("chain-{chain}"));
            fs::create_dir(&dir).unwrap();
            for i in 0..chain {
                let target = if i + 1 == chain {
                    f.outside.join("secret")
                } else {
                    PathBuf::from(format!("l{}", i + 1))
                };
                symlink(target, dir.join(format!("l{i}"))).unwrap();
            }
            let result = resolve(&dir.join("l0"));
            if ok {
                assert_eq!(result.unwrap().path(), f.outside.join("secret"));
            } else {
                match result {
                    Err(SafePathError::TooManyLinks { path }) => {
                        assert_eq!(path, dir.join(format!("l{MAX_LINKS}")));
                    }
                    other => panic!("chain of {chain}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn dotdot_goes_back_by_descriptor_and_never_above_the_root() {
        let f = Fixture::new();
        for path in ["/..", "/../etc", "/tmp/../../etc"] {
            assert_refused(
                resolve(Path::new(path)),
                Path::new(path),
                "climbs above `/`",
                path,
            );
        }
        // Plain dirs: `..` is the dir before.
        fs::create_dir_all(f.base.join("a/b")).unwrap();
        fs::write(f.base.join("a/c"), "c").unwrap();
        let plain = resolve(&f.base.join("a/b/../c")).unwrap();
        assert_eq!(plain.path(), f.base.join("a/c"));
        assert_eq!(plain.read(16).unwrap(), b"c");
        // After a trusted link, `..` is the parent of where it led (as the
        // kernel has it), not of the link.
        let trusted = f.dir("trusted", 0, 0o755);
        symlink(f.outside.join("deep"), trusted.join("deep")).unwrap();
        fs::write(trusted.join("secret"), "decoy\n").unwrap();
        let through = resolve(&trusted.join("deep/../secret")).unwrap();
        assert_eq!(through.path(), f.outside.join("secret"));
        assert_eq!(through.read(16).unwrap(), b"secret\n");
        // After an untrusted link, nothing: `..` never makes one harmless.
        let nobody = f.dir("nobody", NOBODY, 0o755);
        symlink(f.outside.join("deep"), nobody.join("deep")).unwrap();
        let link = nobody.join("deep");
        assert_untrusted(parent_of(&link.join("../secret")), &link, "deep/..");
        assert_untrusted(
            resolve(&nobody.join("dir/..")),
            &nobody.join("dir"),
            "dir/..",
        );
        // A path that ends in `..` names a dir, which has no name to remove.
        let up = parent_of(&f.base.join("a/b/..")).unwrap();
        assert_eq!(
            (up.name(), up.path()),
            (OsStr::new("."), f.base.join("a").as_path())
        );
        assert_refused(up.remove(), &f.base.join("a"), "names no entry", "a/b/..");
        assert!(f.base.join("a/b").is_dir());
        assert_refused(
            parent_of(Path::new("/")).unwrap().remove(),
            Path::new("/"),
            "names no entry",
            "/",
        );
        // Relative paths start at the cwd and climb from it by descriptor.
        let cwd = std::env::current_dir().unwrap();
        let depth = cwd.components().count() - 1;
        let to_root = "../".repeat(depth);
        let back = format!(
            "{to_root}{}/Cargo.toml",
            cwd.display().to_string().trim_start_matches('/')
        );
        let found = resolve(Path::new(&back)).unwrap();
        assert_eq!(
            found.read(1 << 20).unwrap(),
            fs::read(cwd.join("Cargo.toml")).unwrap()
        );
        assert!(resolve(Path::new("src/../Cargo.toml")).is_ok());
        let above = format!("../{to_root}etc");
        assert_refused(
            resolve(Path::new(&above)),
            Path::new(&above),
            "climbs above `/`",
            "relative",
        );
    }

    #[test]
    fn files_are_judged_on_the_descriptor_without_blocking() {
        let f = Fixture::new();
        let nobody = f.dir("nobody", NOBODY, 0o755);
        nix::unistd::mkfifo(&nobody.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        fs::write(nobody.join("big"), "0123456789").unwrap();
        fs::hard_link(f.outside.join("secret"), nobody.join("shadow")).unwrap();
        fs::hard_link(f.outside.join("secret"), f.base.join("mine")).unwrap();
        let (nobody_dir, base) = (nobody.clone(), f.base.clone());
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let fifo = resolve(&nobody_dir.join("fifo")).unwrap().read(1024);
            let dir = resolve(&nobody_dir).unwrap().read(1024);
            let big = resolve(&nobody_dir.join("big")).unwrap().read(4);
            let shadow = resolve(&nobody_dir.join("shadow")).unwrap().read(1024);
            let mine = resolve(&base.join("mine")).unwrap().read(1024);
            done.send((fifo, dir, big, shadow, mine)).unwrap();
        });
        let (fifo, dir, big, shadow, mine) = outcome
            .recv_timeout(Duration::from_secs(10))
            .expect("a read blocked");
        assert_refused(
            fifo,
            &nobody.join("fifo"),
            "is a FIFO, not a regular file",
            "fifo",
        );
        assert_refused(dir, &nobody, "is a directory, not a regular file", "dir");
        assert_refused(big, &nobody.join("big"), "is larger than 4 bytes", "big");
        assert_refused(
            shadow,
            &nobody.join("shadow"),
            "has 3 hard links in a directory other users can write",
            "hard link",
        );
        // In a trusted dir, a second name is the owner's own doing.
        assert_eq!(mine.unwrap(), b"secret\n");
    }

    #[test]
    fn names_are_replaced_removed_and_renamed_never_followed() {
        let f = Fixture::new();
        let nobody = f.dir("nobody", NOBODY, 0o755);
        fs::create_dir_all(nobody.join("tree/sub")).unwrap();
        symlink(&f.outside, nobody.join("tree/sub/out")).unwrap();
        symlink(f.outside.join("secret"), nobody.join("tree/secret")).unwrap();
        let before = f.outside_state();

        parent_of(&nobody.join("file"))
            .unwrap()
            .write_atomically(b"mine\n")
            .unwrap();
        let meta = fs::symlink_metadata(nobody.join("file")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o644);
        assert_eq!(fs::read_to_string(nobody.join("file")).unwrap(), "mine\n");

        let dir = parent_of(&nobody.join("dir")).unwrap();
        dir.rename_to(&parent_of(&nobody.join("moved")).unwrap())
            .unwrap();
        assert!(
            fs::symlink_metadata(nobody.join("moved"))
                .unwrap()
                .is_symlink()
        );
        assert!(parent_of(&nobody.join("moved")).unwrap().remove().unwrap());
        assert!(parent_of(&nobody.join("tree")).unwrap().remove().unwrap());
        assert!(!parent_of(&nobody.join("tree")).unwrap().remove().unwrap());
        let mut left: Vec<_> = fs::read_dir(&nobody)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["file"]);
        assert_eq!(f.outside_state(), before, "something outside changed");
        // No temp file is left behind, even by a failed write.
        fs::create_dir(nobody.join("a-dir")).unwrap();
        assert!(
            parent_of(&nobody.join("a-dir"))
                .unwrap()
                .write_atomically(b"x")
                .is_err()
        );
        let mut left: Vec<_> = fs::read_dir(&nobody)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["a-dir", "file"]);
    }

    #[test]
    fn errors_name_the_whole_path_and_are_failures() {
        let f = Fixture::new();
        let missing = f.base.join("nope/deeper/file");
        let err = resolve(&missing).unwrap_err();
        assert!(err.is_missing());
        assert_eq!(
            crate::exit::one_line(&err),
            format!(
                "cannot open {}: {}",
                missing.display(),
                io::Error::from(Errno::ENOENT)
            )
        );
        assert_eq!(err.exit_code(), ExitCode::Failure);
        let through_file = f.outside.join("secret/x");
        assert!(parent_of(&through_file).unwrap_err().is_missing());
        for path in ["", "a\0b"] {
            let err = resolve(Path::new(path)).unwrap_err();
            assert!(
                matches!(err, SafePathError::Refused { .. }),
                "{path:?}: {err:?}"
            );
            assert_eq!(err.exit_code(), ExitCode::Failure);
        }
    }
}
