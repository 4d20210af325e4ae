//! Every access copkg makes inside a service's runtime dir: by directory
//! descriptor (openat/openat2), never following a symlink, never blocking on
//! a FIFO or device, with the file type checked on the descriptor and every
//! read size-bounded. No other code holds a path inside a runtime dir.
//!
//! The service's account can write its runtime dir and may change anything
//! in it between any two system calls (SECURITY.md part F). So nothing here
//! checks a path and then uses it: each call works from a descriptor opened
//! without following links, and judges what it opened by `fstat` on the
//! descriptor it will use. Paths are kept only to name things in errors.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag, OpenHow, ResolveFlag};
use nix::libc;
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;

use crate::exit::{Coded, ExitCode};

/// How often [`remove_all`] tries one entry again when it keeps changing
/// under it (a dir swapped for a link, entries added while it is emptied).
const REMOVE_ROUNDS: usize = 8;

/// Set once openat2 is found missing (an old kernel, or a seccomp filter
/// that refuses it), so later calls go straight to the component walk.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Why an access inside a runtime dir failed.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A system call failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The full path of what it was done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// What is at a path is not what copkg may use there (a symlink, a FIFO
    /// where a file belongs, a file over the size limit, …).
    #[error("refusing {}: it {reason}", path.display())]
    Refused {
        /// The full path of what was refused.
        path: PathBuf,
        /// Why, completing "it …": `is a symlink`.
        reason: String,
    },
}

impl Coded for RunDirError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RunDirError::Io { .. } | RunDirError::Refused { .. } => ExitCode::Failure,
        }
    }
}

/// How a relative path below a directory descriptor is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// openat2 with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel
    /// has it, else as [`Resolve::Components`].
    Openat2,
    /// One `openat(O_NOFOLLOW | O_DIRECTORY)` per component.
    Components,
}

impl Resolve {
    /// openat2, unless it was already found missing.
    fn preferred() -> Resolve {
        if OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
            Resolve::Components
        } else {
            Resolve::Openat2
        }
    }
}

/// A service's runtime dir, open as a directory descriptor.
#[derive(Debug)]
pub struct RunDir {
    fd: OwnedFd,
    /// Only for naming things in errors.
    path: PathBuf,
    resolve: Resolve,
}

/// What [`RunDir::list`] reports of one entry, as `fstatat` saw it without
/// following a symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: OsString,
    /// Its type (a symlink is reported as one, never as its target).
    pub kind: FileKind,
    /// Its size in bytes, as the file system reports it (a sparse file's
    /// apparent size).
    pub size: u64,
    /// Its permission bits (`0o7777` at most).
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its modification time, in seconds since the Unix epoch.
    pub mtime: i64,
}

/// The type of a [`DirEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl FileKind {
    /// The kind of a file of type `mode` (`st_mode`).
    pub(crate) fn of(mode: u32) -> FileKind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }
}

impl RunDir {
    /// Opens the runtime dir at `relative` (a `/`-separated relative path
    /// such as `trd/prod/idee/1`) below `root`.
    ///
    /// `root` itself is opened normally: it and the links above it are the
    /// administrator's. Every component below it is resolved without
    /// following any symlink, by openat2 (`RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`) where the kernel has it,
    /// else component by component with `openat(O_NOFOLLOW | O_DIRECTORY)`.
    /// With `create`, missing components (and a missing `root`) are made
    /// with that mode, less the umask; a racing creator is no error. Returns
    /// `Ok(None)` when it is missing and `create` is `None`. A component
    /// that is a symlink or not a dir is refused, naming it, as is a
    /// `relative` with an empty, `.` or `..` component. An empty `relative`
    /// opens `root` itself.
    pub fn open(
        root: &Path,
        relative: &str,
        create: Option<u32>,
    ) -> Result<Option<RunDir>, RunDirError> {
        RunDir::open_with(root, relative, create, Resolve::preferred())
    }

    fn open_with(
        root: &Path,
        relative: &str,
        create: Option<u32>,
        resolve: Resolve,
    ) -> Result<Option<RunDir>, RunDirError> {
        components(root, relative)?;
        let Some(root_fd) = open_root(root, create)? else {
            return Ok(None);
        };
        let fd = open_below(root_fd.as_fd(), root, relative, create, resolve)?;
        Ok(fd.map(|fd| RunDir {
            fd,
            path: join(root, relative),
            resolve,
        }))
    }

    /// Its path, for messages only: the dir is reached through its
    /// descriptor, never through this path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives it to `uid`:`gid` (fchown on its descriptor, never a path).
    pub fn chown(&self, uid: u32, gid: u32) -> Result<(), RunDirError> {
        nix::unistd::fchown(
            &self.fd,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|errno| io_error("cannot change the owner of", self.path.clone(), errno))
    }

    /// Its owner and group, from `fstat` on its descriptor.
    pub fn owner(&self) -> Result<(u32, u32), RunDirError> {
        let stat = nix::sys::stat::fstat(&self.fd)
            .map_err(|errno| io_error("cannot inspect", self.path.clone(), errno))?;
        Ok((stat.st_uid, stat.st_gid))
    }

    /// Makes each subdir in `names` that is missing (with `mode`, less the
    /// umask), and checks that every one is a real directory, not a link.
    pub fn ensure_subdirs(&self, names: &[&str], mode: u32) -> Result<(), RunDirError> {
        for name in names {
            if open_below(self.fd.as_fd(), &self.path, name, Some(mode), self.resolve)?.is_none() {
                // Only a missing component gives None, and it was just made.
                return Err(io_error(
                    "cannot create",
                    join(&self.path, name),
                    Errno::ENOENT,
                ));
            }
        }
        Ok(())
    }

    /// Opens a subdir (`run`, `log/app`) below this dir, no symlink
    /// followed; `Ok(None)` when it is missing. An empty `relative` opens
    /// this dir again.
    pub fn subdir(&self, relative: &str) -> Result<Option<RunDir>, RunDirError> {
        let fd = open_below(self.fd.as_fd(), &self.path, relative, None, self.resolve)?;
        Ok(fd.map(|fd| RunDir {
            fd,
            path: join(&self.path, relative),
            resolve: self.resolve,
        }))
    }

    /// Reads the regular file at `relative` (`run/start.pid`) whole;
    /// `Ok(None)` when it does not exist. A file over `limit` bytes is
    /// refused: at most `limit + 1` bytes are read, whatever its size claims.
    /// Anything but a regular file (a symlink, FIFO, socket, device or dir)
    /// is refused without being read, and without blocking; so is a file
    /// with more than one hard link.
    pub fn read_file(&self, relative: &str, limit: u64) -> Result<Option<Vec<u8>>, RunDirError> {
        let Some((file, _, path)) = self.open_regular(relative, OFlag::O_RDONLY, 0)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| RunDirError::Io {
                action: "cannot read",
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(refused(path, format!("is larger than {limit} bytes")));
        }
        Ok(Some(bytes))
    }

    /// The last `limit` bytes of the regular file at `relative` (fewer when
    /// it is shorter); `Ok(None)` when it does not exist. It reads from
    /// `limit` bytes before its end, so a sparse file of an apparent TiB
    /// costs only `limit` bytes. Anything but a regular file is refused, as
    /// by [`RunDir::read_file`].
    pub fn tail(&self, relative: &str, limit: u64) -> Result<Option<Vec<u8>>, RunDirError> {
        let Some((mut file, stat, path)) = self.open_regular(relative, OFlag::O_RDONLY, 0)? else {
            return Ok(None);
        };
        let read_error = |source| RunDirError::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        };
        let len = u64::try_from(stat.st_size).unwrap_or(0);
        file.seek(SeekFrom::Start(len.saturating_sub(limit)))
            .map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        Ok(Some(bytes))
    }

    /// Up to `limit` bytes of the regular file at `relative` from `offset`,
    /// with the file's size and inode now (to notice a rotation or a
    /// truncation); `Ok(None)` when it does not exist. Refused as by
    /// [`RunDir::read_file`].
    pub fn read_from(
        &self,
        relative: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, u64, u64)>, RunDirError> {
        let Some((mut file, stat, path)) = self.open_regular(relative, OFlag::O_RDONLY, 0)? else {
            return Ok(None);
        };
        let read_error = |source| RunDirError::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        };
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let mut bytes = Vec::new();
        if offset < size {
            file.seek(SeekFrom::Start(offset)).map_err(read_error)?;
            file.take(limit)
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
        }
        Ok(Some((bytes, size, stat.st_ino)))
    }

    /// Opens the regular file at `relative` for appending (the service's
    /// `console/stdout.log`), creating it with `mode` (less the umask) when
    /// missing; its dir must exist. A symlink there is refused, never
    /// followed nor created through, and so is anything but a regular file,
    /// or a file with more than one hard link.
    /// The returned file blocks as usual (`O_NONBLOCK` is cleared once its
    /// type is checked).
    pub fn open_append(&self, relative: &str, mode: u32) -> Result<File, RunDirError> {
        let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT;
        let Some((file, _, path)) = self.open_regular(relative, flags, mode)? else {
            return Err(io_error(
                "cannot open",
                join(&self.path, relative),
                Errno::ENOENT,
            ));
        };
        let fcntl_error = |errno| io_error("cannot set flags of", path.clone(), errno);
        let flags = nix::fcntl::fcntl(&file, FcntlArg::F_GETFL).map_err(fcntl_error)?;
        let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&file, FcntlArg::F_SETFL(flags)).map_err(fcntl_error)?;
        Ok(file)
    }

    /// Removes the file at `relative` (a symlink there is removed, never its
    /// target), with `unlinkat` in its dir's descriptor; `Ok(false)` when it
    /// was not there. A dir there is refused.
    pub fn remove_file(&self, relative: &str) -> Result<bool, RunDirError> {
        let path = join(&self.path, relative);
        let (dir, name) = split_file(&self.path, relative)?;
        let Some(parent) = open_below(self.fd.as_fd(), &self.path, dir, None, self.resolve)? else {
            return Ok(false);
        };
        match nix::unistd::unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(Errno::EISDIR) => Err(refused(path, "is a directory, not a file")),
            Err(errno) => Err(io_error("cannot remove", path, errno)),
        }
    }

    /// The entries of the subdir at `relative` (`""` for this dir), sorted
    /// by name, each as `fstatat(AT_SYMLINK_NOFOLLOW)` saw it; empty when
    /// the subdir is missing. An entry removed while it is listed is left
    /// out.
    /// Removes every entry of this dir but those named in `keep`, by
    /// descriptor (see [`remove_all`]); how many it removed.
    pub fn remove_all_but(&self, keep: &[&str]) -> Result<usize, RunDirError> {
        let mut removed = 0;
        for entry in list_entries(self.fd.as_fd(), &self.path)? {
            if keep.iter().any(|k| entry.name == *k) {
                continue;
            }
            remove_tree(self.fd.as_fd(), &entry.name, &self.path.join(&entry.name))?;
            removed += 1;
        }
        Ok(removed)
    }

    pub fn list(&self, relative: &str) -> Result<Vec<DirEntry>, RunDirError> {
        let path = join(&self.path, relative);
        let Some(dir) = open_below(self.fd.as_fd(), &self.path, relative, None, self.resolve)?
        else {
            return Ok(Vec::new());
        };
        list_entries(dir.as_fd(), &path)
    }

    /// Opens the file at `relative` with `flags` plus `O_NOFOLLOW |
    /// O_NONBLOCK | O_CLOEXEC | O_NOCTTY`, and checks on the descriptor that
    /// it is a regular file with no other hard link. `Ok(None)` when it or
    /// its dir is missing.
    fn open_regular(
        &self,
        relative: &str,
        flags: OFlag,
        mode: u32,
    ) -> Result<Option<(File, FileStat, PathBuf)>, RunDirError> {
        let path = join(&self.path, relative);
        let (dir, name) = split_file(&self.path, relative)?;
        let Some(parent) = open_below(self.fd.as_fd(), &self.path, dir, None, self.resolve)? else {
            return Ok(None);
        };
        let flags =
            flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let fd = match nix::fcntl::openat(&parent, name, flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(errno) => return Err(open_failure(parent.as_fd(), name, Want::File, path, errno)),
        };
        let stat = check_type(&fd, Want::File, &path)?;
        // A second name may be a file from outside linked in (possible where
        // fs.protected_hardlinks is off): neither read nor appended to.
        if stat.st_nlink > 1 {
            return Err(refused(
                path,
                format!(
                    "has {} hard links, so it may be a file from outside the runtime dir",
                    stat.st_nlink
                ),
            ));
        }
        Ok(Some((File::from(fd), stat, path)))
    }
}

impl AsFd for RunDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Removes the runtime dir at `relative` below `root` and everything in it;
/// `Ok(false)` when it is missing.
///
/// The dir is first renamed aside in its parent (to
/// `.<name>.removing.<pid>`), so a half-deleted dir is never seen under the
/// service's name; then the tree is deleted by descriptor (`openat` with
/// `O_NOFOLLOW | O_DIRECTORY` into each dir, `unlinkat` in it), so a symlink
/// planted anywhere in it, or a dir swapped for a symlink while this runs,
/// is removed as a link and nothing outside is touched (a runtime dir that
/// is itself a symlink: only the link is removed). `relative` is
/// resolved as by [`RunDir::open`]. A tree of any depth is removed.
pub fn remove_all(root: &Path, relative: &str) -> Result<bool, RunDirError> {
    remove_all_with(root, relative, Resolve::preferred())
}

/// Removes the empty dirs above the runtime dir at `relative` (which is
/// gone), nearest first, up to but never including `root`; stops at the
/// first that is not empty or not a plain dir. How many it removed.
pub fn remove_empty_parents(root: &Path, relative: &str) -> Result<usize, RunDirError> {
    let Some(root_fd) = open_root(root, None)? else {
        return Ok(0);
    };
    let mut removed = 0;
    let mut rest = relative;
    while let Some((parent, name)) = rest.rsplit_once('/') {
        let _ = name;
        let (above, dir) = parent.rsplit_once('/').unwrap_or(("", parent));
        let Some(above_fd) = open_below(root_fd.as_fd(), root, above, None, Resolve::preferred())?
        else {
            break;
        };
        // rmdir removes only an empty dir, and never follows a link.
        match nix::unistd::unlinkat(&above_fd, dir, UnlinkatFlags::RemoveDir) {
            Ok(()) => removed += 1,
            Err(_) => break,
        }
        rest = parent;
    }
    Ok(removed)
}

fn remove_all_with(root: &Path, relative: &str, resolve: Resolve) -> Result<bool, RunDirError> {
    let path = join(root, relative);
    if components(root, relative)?.is_empty() {
        return Err(refused(
            path,
            "is the runtime root, not a runtime dir below it",
        ));
    }
    let (parent_relative, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let Some(root_fd) = open_root(root, None)? else {
        return Ok(false);
    };
    let Some(parent) = open_below(root_fd.as_fd(), root, parent_relative, None, resolve)? else {
        return Ok(false);
    };
    let aside = format!(".{name}.removing.{}", std::process::id());
    let aside_path = join(root, parent_relative).join(&aside);
    let mut stale_removed = false;
    loop {
        match nix::fcntl::renameat(&parent, name, &parent, aside.as_str()) {
            Ok(()) => break,
            Err(Errno::ENOENT) => return Ok(false),
            // The aside name is taken, by what an earlier removal in a
            // process of the same pid left: that goes first.
            Err(Errno::EEXIST | Errno::ENOTEMPTY | Errno::ENOTDIR | Errno::EISDIR)
                if !stale_removed =>
            {
                remove_tree(parent.as_fd(), OsStr::new(&aside), &aside_path)?;
                stale_removed = true;
            }
            Err(errno) => return Err(io_error("cannot move aside", path, errno)),
        }
    }
    remove_tree(parent.as_fd(), OsStr::new(&aside), &aside_path)?;
    Ok(true)
}

/// How deep below the top of a tree being removed [`remove_tree`] goes
/// before it moves what lies deeper up to the top, so that a tree of any
/// depth is removed with a bounded stack and at most this many descriptors.
const HOIST_DEPTH: usize = 128;
/// Most moves up in one removal: past it the tree is still growing.
const MAX_HOISTS: usize = 1 << 20;

/// Where [`remove_tree`] moves dirs that lie too deep: the top of the tree.
struct Hoist<'a> {
    top: BorrowedFd<'a>,
    top_path: &'a Path,
    made: usize,
}

/// Removes the entry `name` of the dir open as `parent` and, when it is a
/// dir, everything in it, by descriptor: a symlink anywhere in it is removed
/// as a link, never followed. `path` names it in errors. A tree of any depth
/// is removed: a dir [`HOIST_DEPTH`] levels down is moved up into the top
/// dir (renamed within the tree, never out of it) and emptied from there.
pub(crate) fn remove_tree(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
) -> Result<(), RunDirError> {
    let mut last = Errno::EAGAIN;
    for _ in 0..REMOVE_ROUNDS {
        let Some(dir) = open_for_removal(parent, name, path, &mut last)? else {
            if last == Errno::EAGAIN {
                return Ok(());
            }
            continue;
        };
        let mut hoist = Hoist {
            top: dir.as_fd(),
            top_path: path,
            made: 0,
        };
        // Emptied until nothing is left, what was moved up included; each
        // pass past the first finishes what earlier ones moved up.
        let mut passes = 0;
        loop {
            let names = read_names(dir.as_fd(), path)?;
            if names.is_empty() || passes > hoist.made + REMOVE_ROUNDS {
                break;
            }
            for child in names {
                remove_below(dir.as_fd(), &child, &path.join(&child), 1, &mut hoist)?;
            }
            passes += 1;
        }
        match nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            // Entries added meanwhile, or a swap: emptied again.
            Err(errno @ (Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR)) => last = errno,
            Err(errno) => return Err(io_error("cannot remove", path.to_owned(), errno)),
        }
    }
    Err(io_error("cannot remove", path.to_owned(), last))
}

/// Unlinks `name` when it is not a dir (`None`, `last` left as it was:
/// done), or opens it as one without following a link. A dir swapped for a
/// link or a file since is `None` with `last` set: unlinked next round.
fn open_for_removal(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    last: &mut Errno,
) -> Result<Option<OwnedFd>, RunDirError> {
    *last = Errno::EAGAIN;
    // Unlinked as a file first, which never follows a symlink; a dir
    // answers EISDIR and is emptied through its own descriptor.
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::EISDIR) => {}
        Err(errno) => return Err(io_error("cannot remove", path.to_owned(), errno)),
    }
    match nix::fcntl::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(dir) => Ok(Some(dir)),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno @ (Errno::ENOTDIR | Errno::ELOOP)) => {
            *last = errno;
            Ok(None)
        }
        Err(errno) => Err(io_error("cannot open", path.to_owned(), errno)),
    }
}

/// [`remove_tree`] of an entry `depth` levels below the top.
fn remove_below(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    depth: usize,
    hoist: &mut Hoist<'_>,
) -> Result<(), RunDirError> {
    let mut last = Errno::EAGAIN;
    for _ in 0..REMOVE_ROUNDS {
        if depth >= HOIST_DEPTH {
            return move_up(parent, name, path, hoist);
        }
        let Some(dir) = open_for_removal(parent, name, path, &mut last)? else {
            if last == Errno::EAGAIN {
                return Ok(());
            }
            continue;
        };
        for child in read_names(dir.as_fd(), path)? {
            remove_below(dir.as_fd(), &child, &path.join(&child), depth + 1, hoist)?;
        }
        match nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(errno @ (Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR)) => last = errno,
            Err(errno) => return Err(io_error("cannot remove", path.to_owned(), errno)),
        }
    }
    Err(io_error("cannot remove", path.to_owned(), last))
}

/// Moves an entry that lies too deep up into the top of the tree being
/// removed, under a name of its own, for a later pass; a non-dir is simply
/// unlinked.
fn move_up(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    hoist: &mut Hoist<'_>,
) -> Result<(), RunDirError> {
    loop {
        match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EISDIR) => {}
            Err(errno) => return Err(io_error("cannot remove", path.to_owned(), errno)),
        }
        if hoist.made >= MAX_HOISTS {
            return Err(refused(
                hoist.top_path.to_owned(),
                "keeps growing while it is removed",
            ));
        }
        let up = format!(".copkg-deep.{}", hoist.made);
        hoist.made += 1;
        match nix::fcntl::renameat(parent, name, hoist.top, up.as_str()) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            // The name is taken (the tree had one of its own): the next one.
            Err(Errno::EEXIST | Errno::ENOTEMPTY | Errno::ENOTDIR | Errno::EISDIR) => {}
            Err(errno) => return Err(io_error("cannot move up", path.to_owned(), errno)),
        }
    }
}

/// What an open is meant to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

impl Want {
    fn matches(self, mode: u32) -> bool {
        let kind = mode & libc::S_IFMT;
        match self {
            Want::Dir => kind == libc::S_IFDIR,
            Want::File => kind == libc::S_IFREG,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Want::Dir => "a directory",
            Want::File => "a regular file",
        }
    }
}

/// Why a file of type `mode` is refused where a `want` belongs; `None` when
/// it is one.
pub(crate) fn mismatch(mode: u32, want: Want) -> Option<String> {
    if want.matches(mode) {
        return None;
    }
    let kind = match mode & libc::S_IFMT {
        libc::S_IFLNK => return Some("is a symlink".to_owned()),
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "of an unknown type",
    };
    Some(format!("is {kind}, not {}", want.name()))
}

/// Checks on the descriptor that `fd` is a `want`.
fn check_type(fd: &OwnedFd, want: Want, path: &Path) -> Result<FileStat, RunDirError> {
    let stat = nix::sys::stat::fstat(fd)
        .map_err(|errno| io_error("cannot inspect", path.to_owned(), errno))?;
    match mismatch(stat.st_mode, want) {
        Some(reason) => Err(refused(path.to_owned(), reason)),
        None => Ok(stat),
    }
}

/// The error for an open of `name` in `parent` that failed with `errno`:
/// refused when what is there (looked at, not opened nor followed) is not a
/// `want`, as a symlink under `O_NOFOLLOW`, a socket (ENXIO) or a device on
/// a `nodev` mount (EACCES) fail; else the I/O error.
fn open_failure(
    parent: BorrowedFd<'_>,
    name: &str,
    want: Want,
    path: PathBuf,
    errno: Errno,
) -> RunDirError {
    if errno == Errno::ELOOP {
        return refused(path, "is a symlink");
    }
    match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => match mismatch(stat.st_mode, want) {
            Some(reason) => refused(path, reason),
            None => io_error("cannot open", path, errno),
        },
        Err(_) => io_error("cannot open", path, errno),
    }
}

/// Flags for opening a directory, never through a symlink.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Opens `root` itself, following links (they are the administrator's);
/// with `create`, a missing root is made with its missing parents.
fn open_root(root: &Path, create: Option<u32>) -> Result<Option<OwnedFd>, RunDirError> {
    let open = || {
        nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    match (open(), create) {
        (Ok(fd), _) => Ok(Some(fd)),
        (Err(Errno::ENOENT), None) => Ok(None),
        (Err(Errno::ENOENT), Some(mode)) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(root)
                .map_err(|source| RunDirError::Io {
                    action: "cannot create",
                    path: root.to_owned(),
                    source,
                })?;
            open()
                .map(Some)
                .map_err(|errno| io_error("cannot open", root.to_owned(), errno))
        }
        (Err(errno), _) => Err(io_error("cannot open", root.to_owned(), errno)),
    }
}

/// Opens the dir at `relative` below the dir open as `dir` (named `base` in
/// errors) without following any symlink; with `create`, missing components
/// are made with that mode. `Ok(None)` when it is missing and not to be
/// created.
fn open_below(
    dir: BorrowedFd<'_>,
    base: &Path,
    relative: &str,
    create: Option<u32>,
    resolve: Resolve,
) -> Result<Option<OwnedFd>, RunDirError> {
    let parts = components(base, relative)?;
    if parts.is_empty() {
        // A new open file description, so a listing's offset is its own.
        return nix::fcntl::openat(dir, ".", dir_flags(), Mode::empty())
            .map(Some)
            .map_err(|errno| io_error("cannot open", base.to_owned(), errno));
    }
    if resolve == Resolve::Openat2 && !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
        match openat2_dir(dir, relative) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::ENOENT) if create.is_none() => return Ok(None),
            Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::E2BIG) => {
                OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
            }
            // A symlink or non-dir on the way, a component to create, or a
            // rename race: the walk below resolves it again as strictly, and
            // makes the missing or names the component at fault.
            Err(_) => {}
        }
    }
    walk(dir, base, &parts, create)
}

/// openat2 of the dir at `relative` below `dir`, refusing any symlink and
/// any escape from `dir`.
fn openat2_dir(dir: BorrowedFd<'_>, relative: &str) -> nix::Result<OwnedFd> {
    let how = OpenHow::new().flags(dir_flags()).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    nix::fcntl::openat2(dir, relative, how)
}

/// Opens `parts` below `dir` one at a time with `openat(O_NOFOLLOW |
/// O_DIRECTORY)`, each in the descriptor of the one before.
fn walk(
    dir: BorrowedFd<'_>,
    base: &Path,
    parts: &[&str],
    create: Option<u32>,
) -> Result<Option<OwnedFd>, RunDirError> {
    let mut current: Option<OwnedFd> = None;
    let mut path = base.to_owned();
    for part in parts {
        path.push(part);
        let parent = current.as_ref().map_or(dir, |fd| fd.as_fd());
        match open_component(parent, part, create, &path)? {
            Some(fd) => current = Some(fd),
            None => return Ok(None),
        }
    }
    Ok(current)
}

/// Opens the dir `name` in `parent`, making it first when missing and
/// `create` is given.
fn open_component(
    parent: BorrowedFd<'_>,
    name: &str,
    create: Option<u32>,
    path: &Path,
) -> Result<Option<OwnedFd>, RunDirError> {
    let open = || nix::fcntl::openat(parent, name, dir_flags(), Mode::empty());
    match open() {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::ENOENT) => {}
        Err(errno) => {
            return Err(open_failure(
                parent,
                name,
                Want::Dir,
                path.to_owned(),
                errno,
            ));
        }
    }
    let Some(mode) = create else {
        return Ok(None);
    };
    match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(mode)) {
        // EEXIST: made by a racing creator, or something else is there,
        // which the open then judges.
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(io_error("cannot create", path.to_owned(), errno)),
    }
    open()
        .map(Some)
        .map_err(|errno| open_failure(parent, name, Want::Dir, path.to_owned(), errno))
}

/// The entries of the dir open as `dir` (named `path` in errors), sorted
/// by name, each as `fstatat(AT_SYMLINK_NOFOLLOW)` saw it: a symlink is
/// reported as one, never as its target. An entry removed while it is
/// listed is left out.
pub(crate) fn list_entries(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<DirEntry>, RunDirError> {
    let mut names = read_names(dir, path)?;
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        match nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => entries.push(DirEntry {
                kind: FileKind::of(stat.st_mode),
                size: u64::try_from(stat.st_size).unwrap_or(0),
                mode: stat.st_mode & 0o7777,
                uid: stat.st_uid,
                mtime: stat.st_mtime,
                name,
            }),
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(io_error("cannot inspect", path.join(&name), errno)),
        }
    }
    Ok(entries)
}

/// The names in the dir open as `dir`, without `.` and `..`, read through a
/// descriptor of their own.
fn read_names(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<OsString>, RunDirError> {
    let fail = |errno| io_error("cannot list", path.to_owned(), errno);
    let mut stream = Dir::openat(dir, ".", dir_flags(), Mode::empty()).map_err(fail)?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let name = entry.map_err(fail)?.file_name().to_bytes().to_owned();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_owned());
        }
    }
    Ok(names)
}

/// The components of `relative` (none when it is empty); refused when one
/// is empty, `.` or `..`, or holds a NUL.
fn components<'a>(base: &Path, relative: &'a str) -> Result<Vec<&'a str>, RunDirError> {
    if relative.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = relative.split('/').collect();
    if parts
        .iter()
        .any(|part| part.is_empty() || *part == "." || *part == ".." || part.contains('\0'))
    {
        return Err(refused(
            join(base, relative),
            "is not a plain relative path (an empty, `.` or `..` component)",
        ));
    }
    Ok(parts)
}

/// Splits `relative`, naming a file, into its dir (`""` for `base`) and its
/// name.
fn split_file<'a>(base: &Path, relative: &'a str) -> Result<(&'a str, &'a str), RunDirError> {
    if components(base, relative)?.is_empty() {
        return Err(refused(
            base.to_owned(),
            "is a directory, not a regular file",
        ));
    }
    Ok(relative.rsplit_once('/').unwrap_or(("", relative)))
}

/// `base/relative` for messages, with `relative` appended as given (so even
/// an absolute one shows as it came).
fn join(base: &Path, relative: &str) -> PathBuf {
    if relative.is_empty() {
        return base.to_owned();
    }
    let mut joined = base.as_os_str().to_owned();
    if !joined.as_bytes().ends_with(b"/") {
        joined.push("/");
    }
    joined.push(relative);
    PathBuf::from(joined)
}

fn io_error(action: &'static str, path: PathBuf, errno: Errno) -> RunDirError {
    RunDirError::Io {
        action,
        path,
        source: errno.into(),
    }
}

fn refused(path: PathBuf, reason: impl Into<String>) -> RunDirError {
    RunDirError::Refused {
        path,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, symlink};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Barrier, mpsc};
    use std::time::Duration;

    use nix::sys::stat::SFlag;

    /// Both ways of resolving a path; every symlink case runs under each.
    const RESOLVERS: [Resolve; 2] = [Resolve::Openat2, Resolve::Components];
    const SUBDIRS: [&str; 5] = ["log", "etc", "console", "data", "run"];
    const LIMIT: u64 = 4096;

    /// A runtime root holding the runtime dir `svc` (its subdirs and a pid
    /// file) and another service's `other`, beside a dir `outside`: no call
    /// on `svc` may touch `other` or `outside`.
    struct Fixture {
        _temp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let temp = tempfile::tempdir().unwrap();
            let root = temp.path().join("root");
            let outside = temp.path().join("outside");
            for sub in SUBDIRS {
                fs::create_dir_all(root.join("svc").join(sub)).unwrap();
            }
            fs::write(root.join("svc/run/start.pid"), "123\n").unwrap();
            fs::create_dir_all(root.join("other/run")).unwrap();
            fs::write(root.join("other/run/start.pid"), "999\n").unwrap();
            fs::create_dir_all(outside.join("idee/1/run")).unwrap();
            fs::write(outside.join("start.pid"), "4242\n").unwrap();
            fs::write(outside.join("secret"), "secret\n").unwrap();
            Fixture {
                _temp: temp,
                root,
                outside,
            }
        }

        /// What no call on `svc` may change: `outside` and `other`.
        fn untouchable(&self) -> BTreeMap<PathBuf, String> {
            let mut state = snapshot(&self.outside);
            if self.root.join("other").exists() {
                state.extend(snapshot(&self.root.join("other")));
            }
            state
        }

        /// Replaces what is at `relative` below the root with a symlink to
        /// `target`: taken below `outside`, unless absolute or starting with
        /// `../` (then kept as it is, relative to the link's dir).
        fn plant(&self, relative: &str, target: &str) {
            let link = self.root.join(relative);
            match fs::symlink_metadata(&link) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&link).unwrap(),
                Ok(_) => fs::remove_file(&link).unwrap(),
                Err(_) => fs::create_dir_all(link.parent().unwrap()).unwrap(),
            }
            if target.starts_with("../") {
                symlink(target, &link).unwrap();
            } else {
                symlink(self.outside.join(target), &link).unwrap();
            }
        }

        /// Replaces what is at `relative` below the root with a fresh `kind`.
        fn make(&self, relative: &str, kind: Special) {
            let path = self.root.join(relative);
            let _ = fs::remove_file(&path);
            match kind {
                Special::Fifo | Special::FifoWithReader => {
                    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o644)).unwrap()
                }
                Special::Socket => drop(UnixListener::bind(&path).unwrap()),
                Special::Device => nix::sys::stat::mknod(
                    &path,
                    SFlag::S_IFCHR,
                    Mode::from_bits_truncate(0o666),
                    nix::sys::stat::makedev(1, 5),
                )
                .unwrap(),
                Special::Dir => fs::create_dir(&path).unwrap(),
            }
        }

        fn svc(&self, resolve: Resolve) -> RunDir {
            RunDir::open_with(&self.root, "svc", None, resolve)
                .unwrap()
                .unwrap()
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Special {
        Fifo,
        FifoWithReader,
        Socket,
        Device,
        Dir,
    }

    /// One call into the module, as a test case makes it.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Open(&'static str),
        Create(&'static str),
        RemoveAll(&'static str),
        Read(&'static str),
        Tail(&'static str),
        Append(&'static str),
        List(&'static str),
        Subdir(&'static str),
        Ensure(&'static str),
        Remove(&'static str),
    }

    impl Op {
        fn run(self, f: &Fixture, resolve: Resolve) -> Result<(), RunDirError> {
            let svc = || {
                RunDir::open_with(&f.root, "svc", None, resolve).map(|dir| dir.expect("svc exists"))
            };
            match self {
                Op::Open(rel) => RunDir::open_with(&f.root, rel, None, resolve).map(drop),
                Op::Create(rel) => RunDir::open_with(&f.root, rel, Some(0o755), resolve).map(drop),
                Op::RemoveAll(rel) => remove_all_with(&f.root, rel, resolve).map(drop),
                Op::Read(rel) => svc()?.read_file(rel, LIMIT).map(drop),
                Op::Tail(rel) => svc()?.tail(rel, LIMIT).map(drop),
                Op::Append(rel) => svc()?.open_append(rel, 0o644).map(drop),
                Op::List(rel) => svc()?.list(rel).map(drop),
                Op::Subdir(rel) => svc()?.subdir(rel).map(drop),
                Op::Ensure(name) => svc()?.ensure_subdirs(&[name], 0o755),
                Op::Remove(rel) => svc()?.remove_file(rel).map(drop),
            }
        }
    }

    /// Every path below `dir` with its type, mode, owner, size, mtime and
    /// content: what must not change outside.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).unwrap();
            let mut content = String::new();
            if meta.is_file() {
                content = fs::read_to_string(&path).unwrap();
            } else if meta.is_dir() {
                stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
            let state = format!(
                "{:o} {} {} {}.{} {content:?}",
                meta.mode(),
                meta.uid(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            );
            out.insert(path, state);
        }
        out
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[track_caller]
    fn assert_refused<T: std::fmt::Debug>(
        result: Result<T, RunDirError>,
        path: &Path,
        reason: &str,
        what: &str,
    ) {
        match result {
            Err(RunDirError::Refused { path: p, reason: r }) => {
                assert_eq!(p, path, "{what}: refusal names the wrong path");
                assert!(
                    r.contains(reason),
                    "{what}: reason `{r}`, expected `{reason}`"
                );
            }
            other => panic!(
                "{what}: expected {} refused ({reason}), got {other:?}",
                path.display()
            ),
        }
    }

    /// Runs `call` on a thread of its own and fails if it has not returned
    /// within 5 s (it blocked, on a FIFO say, or read without bound).
    fn within<T: Send + 'static>(what: &str, call: impl FnOnce() -> T + Send + 'static) -> T {
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = send.send(call());
        });
        receive
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{what}: still running after 5 s"))
    }

    struct LinkCase {
        what: &'static str,
        link: &'static str,
        target: &'static str,
        ops: &'static [Op],
        refused: &'static str,
    }

    const LINK_CASES: &[LinkCase] = &[
        LinkCase {
            what: "the runtime dir itself → a dir outside",
            link: "svc",
            target: "idee/1",
            ops: &[Op::Open("svc"), Op::Create("svc"), Op::Create("svc/run")],
            refused: "svc",
        },
        LinkCase {
            what: "a middle component → a dir outside",
            link: "trd/prod",
            target: "",
            ops: &[
                Op::Open("trd/prod/idee/1"),
                Op::Create("trd/prod/idee/1"),
                Op::Create("trd/prod/idee/2"),
                Op::RemoveAll("trd/prod/idee/1"),
            ],
            refused: "trd/prod",
        },
        LinkCase {
            what: "a middle component → another service's dir, by a relative link that stays below the root",
            link: "trd/prod",
            target: "../other",
            ops: &[
                Op::Open("trd/prod/run"),
                Op::Create("trd/prod/run"),
                Op::Create("trd/prod/run/new"),
                Op::RemoveAll("trd/prod/run"),
            ],
            refused: "trd/prod",
        },
        LinkCase {
            what: "run → a dir outside",
            link: "svc/run",
            target: "",
            ops: &[
                Op::Read("run/start.pid"),
                Op::Tail("run/start.pid"),
                Op::Append("run/start.pid"),
                Op::Append("run/new.log"),
                Op::List("run"),
                Op::Subdir("run"),
                Op::Subdir("run/idee"),
                Op::Ensure("run"),
                Op::Remove("run/start.pid"),
                Op::Remove("run/secret"),
            ],
            refused: "svc/run",
        },
        LinkCase {
            what: "run → another service's run, by a relative link that stays below the root",
            link: "svc/run",
            target: "../../other/run",
            ops: &[
                Op::Read("run/start.pid"),
                Op::Append("run/start.pid"),
                Op::Append("run/new.log"),
                Op::List("run"),
                Op::Remove("run/start.pid"),
            ],
            refused: "svc/run",
        },
        LinkCase {
            what: "log → /",
            link: "svc/log",
            target: "/",
            ops: &[
                Op::List("log"),
                Op::Subdir("log/etc"),
                Op::Read("log/etc/passwd"),
                Op::Ensure("log"),
            ],
            refused: "svc/log",
        },
        LinkCase {
            what: "run/start.pid → a file outside",
            link: "svc/run/start.pid",
            target: "start.pid",
            ops: &[
                Op::Read("run/start.pid"),
                Op::Tail("run/start.pid"),
                Op::Append("run/start.pid"),
            ],
            refused: "svc/run/start.pid",
        },
        LinkCase {
            what: "console/stdout.log → a missing path outside",
            link: "svc/console/stdout.log",
            target: "stdout.log",
            ops: &[
                Op::Append("console/stdout.log"),
                Op::Read("console/stdout.log"),
                Op::Tail("console/stdout.log"),
            ],
            refused: "svc/console/stdout.log",
        },
        LinkCase {
            what: "run/start.pid → /dev/zero",
            link: "svc/run/start.pid",
            target: "/dev/zero",
            ops: &[
                Op::Read("run/start.pid"),
                Op::Tail("run/start.pid"),
                Op::Append("run/start.pid"),
            ],
            refused: "svc/run/start.pid",
        },
    ];

    #[test]
    fn symlinks_planted_anywhere_are_refused_and_nothing_outside_changes() {
        for resolve in RESOLVERS {
            for case in LINK_CASES {
                for op in case.ops {
                    let f = Fixture::new();
                    f.plant(case.link, case.target);
                    let before = f.untouchable();
                    let what = format!("{} / {op:?} / {resolve:?}", case.what);
                    let (f, result) = within(&what, move || {
                        let result = op.run(&f, resolve);
                        (f, result)
                    });
                    assert_refused(result, &f.root.join(case.refused), "is a symlink", &what);
                    assert_eq!(f.untouchable(), before, "{what}: something outside changed");
                    let link = fs::symlink_metadata(f.root.join(case.link)).unwrap();
                    assert!(link.is_symlink(), "{what}: the planted link was replaced");
                }
            }
        }
    }

    #[test]
    fn openat2_itself_refuses_symlinks_and_escapes() {
        let f = Fixture::new();
        f.plant("trd/prod", "");
        f.plant("svc/log", "/");
        let root =
            nix::fcntl::open(&f.root, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        match openat2_dir(root.as_fd(), "svc/run") {
            Ok(_) => {}
            Err(Errno::ENOSYS | Errno::EPERM) => {
                eprintln!("openat2 is not available here; only the component walk was tested");
                return;
            }
            Err(errno) => panic!("openat2 of a plain dir: {errno}"),
        }
        for (relative, expected) in [
            ("trd/prod/idee/1", Errno::ELOOP),
            // A link as the last component meets O_DIRECTORY | O_NOFOLLOW.
            ("trd/prod", Errno::ENOTDIR),
            ("svc/log/etc", Errno::ELOOP),
            ("svc/../../outside", Errno::EXDEV),
            ("svc/run/start.pid", Errno::ENOTDIR),
            ("svc/nope", Errno::ENOENT),
        ] {
            assert_eq!(
                openat2_dir(root.as_fd(), relative).err(),
                Some(expected),
                "{relative}"
            );
        }
    }

    #[test]
    fn remove_file_removes_a_planted_link_never_its_target() {
        for resolve in RESOLVERS {
            let f = Fixture::new();
            f.plant("svc/run/start.pid", "start.pid");
            let before = f.untouchable();
            let svc = f.svc(resolve);
            assert!(svc.remove_file("run/start.pid").unwrap(), "{resolve:?}");
            assert!(
                fs::symlink_metadata(f.root.join("svc/run/start.pid")).is_err(),
                "{resolve:?}"
            );
            assert_eq!(f.untouchable(), before, "{resolve:?}");
            assert!(
                !svc.remove_file("run/start.pid").unwrap(),
                "{resolve:?}: gone already"
            );
            assert!(
                !svc.remove_file("nope/start.pid").unwrap(),
                "{resolve:?}: no such dir"
            );
            assert_refused(
                svc.remove_file("run"),
                &f.root.join("svc/run"),
                "is a directory, not a file",
                "a dir",
            );
        }
    }

    #[test]
    fn non_regular_files_are_refused_without_blocking() {
        let kinds = [
            (Special::Fifo, "is a FIFO, not a regular file"),
            (Special::FifoWithReader, "is a FIFO, not a regular file"),
            (Special::Socket, "is a socket, not a regular file"),
            (Special::Device, "is a character device, not a regular file"),
            (Special::Dir, "is a directory, not a regular file"),
        ];
        let ops = [
            Op::Read("run/start.pid"),
            Op::Tail("run/start.pid"),
            Op::Append("run/start.pid"),
            Op::Append("console/stdout.log"),
            Op::Read("console/stdout.log"),
        ];
        for (kind, reason) in kinds {
            for op in ops {
                let (Op::Read(rel) | Op::Tail(rel) | Op::Append(rel)) = op else {
                    unreachable!()
                };
                let f = Fixture::new();
                f.make(&format!("svc/{rel}"), kind);
                // A FIFO with a reader lets a non-blocking open for writing
                // succeed, so the type check on the descriptor must refuse it.
                let _reader = matches!(kind, Special::FifoWithReader).then(|| {
                    nix::fcntl::open(
                        &f.root.join("svc").join(rel),
                        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
                        Mode::empty(),
                    )
                    .unwrap()
                });
                let path = f.root.join("svc").join(rel);
                let what = format!("{kind:?} / {op:?}");
                let (_f, result) = within(&what, move || {
                    let result = op.run(&f, Resolve::Openat2);
                    (f, result)
                });
                assert_refused(result, &path, reason, &what);
            }
        }
    }

    #[test]
    fn a_file_hard_linked_from_outside_is_neither_read_nor_appended_to() {
        let f = Fixture::new();
        fs::remove_file(f.root.join("svc/run/start.pid")).unwrap();
        fs::hard_link(f.outside.join("secret"), f.root.join("svc/run/start.pid")).unwrap();
        let before = f.untouchable();
        let svc = f.svc(Resolve::Openat2);
        let path = f.root.join("svc/run/start.pid");
        let reason = "has 2 hard links";
        assert_refused(svc.read_file("run/start.pid", LIMIT), &path, reason, "read");
        assert_refused(svc.tail("run/start.pid", LIMIT), &path, reason, "tail");
        assert_refused(
            svc.open_append("run/start.pid", 0o644),
            &path,
            reason,
            "append",
        );
        assert_eq!(f.untouchable(), before);
    }

    #[test]
    fn reads_are_bounded_whatever_size_the_file_claims() {
        let f = Fixture::new();
        let svc = f.svc(Resolve::Openat2);
        let exact = vec![b'x'; LIMIT as usize];
        fs::write(f.root.join("svc/run/exact"), &exact).unwrap();
        assert_eq!(svc.read_file("run/exact", LIMIT).unwrap(), Some(exact));
        fs::write(f.root.join("svc/run/over"), vec![b'x'; LIMIT as usize + 1]).unwrap();
        let path = f.root.join("svc/run/over");
        assert_refused(
            svc.read_file("run/over", LIMIT),
            &path,
            "is larger than 4096 bytes",
            "one byte over",
        );
        let sparse = fs::File::create(f.root.join("svc/run/sparse")).unwrap();
        sparse.set_len(1 << 40).unwrap();
        let path = f.root.join("svc/run/sparse");
        let result = within("read of a sparse TiB", move || {
            svc.read_file("run/sparse", LIMIT)
        });
        assert_refused(result, &path, "is larger than 4096 bytes", "a sparse TiB");
        let svc = f.svc(Resolve::Openat2);
        assert_eq!(svc.read_file("run/missing", LIMIT).unwrap(), None);
        assert_eq!(svc.read_file("missing/start.pid", LIMIT).unwrap(), None);
        assert_eq!(
            svc.read_file("run/start.pid", LIMIT).unwrap(),
            Some(b"123\n".to_vec())
        );
    }

    /// Bytes this thread has read through system calls so far.
    fn thread_rchar() -> u64 {
        let io = fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|line| line.strip_prefix("rchar: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn tail_of_a_sparse_tebibyte_reads_only_its_last_bytes() {
        const TIB: u64 = 1 << 40;
        let f = Fixture::new();
        let big = fs::File::create(f.root.join("svc/console/stdout.log")).unwrap();
        big.set_len(TIB).unwrap();
        big.write_all_at(b"the end\n", TIB - 8).unwrap();
        let svc = f.svc(Resolve::Openat2);
        let (tail, read) = within("tail of a sparse TiB", move || {
            let before = thread_rchar();
            let tail = svc.tail("console/stdout.log", 64).unwrap().unwrap();
            (tail, thread_rchar() - before)
        });
        assert_eq!(tail.len(), 64);
        assert!(tail.ends_with(b"the end\n"));
        assert!(tail[..56].iter().all(|&b| b == 0));
        // The first reading of /proc/thread-self/io is counted too.
        assert!(read < 64 + 1024, "read {read} bytes for a 64-byte tail");

        let svc = f.svc(Resolve::Openat2);
        assert_eq!(
            svc.tail("run/start.pid", 64).unwrap(),
            Some(b"123\n".to_vec())
        );
        assert_eq!(svc.tail("run/start.pid", 2).unwrap(), Some(b"3\n".to_vec()));
        assert_eq!(svc.tail("run/missing", 64).unwrap(), None);
    }

    #[test]
    fn create_makes_every_component_of_a_hierarchical_path() {
        for resolve in RESOLVERS {
            let temp = tempfile::tempdir().unwrap();
            let root = temp.path().join("runtime");
            let relative = "trd/prod/idee/1";
            assert!(
                RunDir::open_with(&root, relative, None, resolve)
                    .unwrap()
                    .is_none()
            );
            assert!(!root.exists(), "{resolve:?}: made something without create");
            let dir = RunDir::open_with(&root, relative, Some(0o750), resolve)
                .unwrap()
                .unwrap();
            assert_eq!(dir.path(), root.join(relative));
            let mut path = root.clone();
            for part in relative.split('/') {
                path.push(part);
                let meta = fs::symlink_metadata(&path).unwrap();
                assert!(meta.is_dir(), "{resolve:?}: {}", path.display());
                assert_eq!(
                    meta.mode() & 0o027,
                    0,
                    "{resolve:?}: mode not used for {}",
                    path.display()
                );
            }
            dir.ensure_subdirs(&SUBDIRS, 0o755).unwrap();
            dir.ensure_subdirs(&SUBDIRS, 0o755).unwrap();
            assert_eq!(names_in(&path), ["console", "data", "etc", "log", "run"]);
            assert!(dir.subdir("run").unwrap().is_some());
            assert!(dir.subdir("nope").unwrap().is_none());
            assert!(
                RunDir::open_with(&root, relative, None, resolve)
                    .unwrap()
                    .is_some()
            );
            // The descriptor is this dir: a file made through it is there.
            nix::sys::stat::mkdirat(&dir, "made", Mode::from_bits_truncate(0o700)).unwrap();
            assert!(path.join("made").is_dir());
        }
    }

    #[test]
    fn racing_creators_all_succeed() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_owned();
        let barrier = Arc::new(Barrier::new(8));
        let creators: Vec<_> = (0..8)
            .map(|_| {
                let (root, barrier) = (root.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let dir = RunDir::open(&root, "a/b/c/d/e/f", Some(0o755))?;
                    dir.map(|dir| dir.ensure_subdirs(&SUBDIRS, 0o755))
                        .transpose()
                })
            })
            .collect();
        for creator in creators {
            assert!(matches!(creator.join().unwrap(), Ok(Some(()))));
        }
        assert_eq!(names_in(&root.join("a/b/c/d/e/f")).len(), SUBDIRS.len());
    }

    #[test]
    fn ensure_subdirs_refuses_what_is_not_a_real_dir() {
        for resolve in RESOLVERS {
            let f = Fixture::new();
            fs::remove_dir(f.root.join("svc/data")).unwrap();
            fs::write(f.root.join("svc/data"), "").unwrap();
            let svc = f.svc(resolve);
            assert_refused(
                svc.ensure_subdirs(&SUBDIRS, 0o755),
                &f.root.join("svc/data"),
                "is a regular file, not a directory",
                "a file in place of data/",
            );
        }
    }

    #[test]
    fn a_runtime_dir_swapped_for_a_link_after_open_is_still_reached_by_its_descriptor() {
        for resolve in RESOLVERS {
            let f = Fixture::new();
            let svc = f.svc(resolve);
            let run = svc.subdir("run").unwrap().unwrap();
            fs::rename(f.root.join("svc"), f.root.join("moved")).unwrap();
            f.plant("svc", "idee/1");
            let before = f.untouchable();
            assert_eq!(
                svc.read_file("run/start.pid", LIMIT).unwrap(),
                Some(b"123\n".to_vec())
            );
            svc.open_append("console/stdout.log", 0o644)
                .unwrap()
                .write_all(b"hello\n")
                .unwrap();
            assert!(run.remove_file("start.pid").unwrap());
            assert_eq!(
                names_in(&f.root.join("moved/console")),
                ["stdout.log"],
                "{resolve:?}"
            );
            assert!(
                names_in(&f.root.join("moved/run")).is_empty(),
                "{resolve:?}"
            );
            assert_eq!(
                f.untouchable(),
                before,
                "{resolve:?}: something outside changed"
            );
        }
    }

    #[test]
    fn open_append_creates_appends_and_returns_a_blocking_file() {
        let f = Fixture::new();
        let svc = f.svc(Resolve::Openat2);
        for line in ["one\n", "two\n"] {
            let mut file = svc.open_append("console/stdout.log", 0o640).unwrap();
            file.write_all(line.as_bytes()).unwrap();
            let flags =
                OFlag::from_bits_truncate(nix::fcntl::fcntl(&file, FcntlArg::F_GETFL).unwrap());
            assert!(!flags.contains(OFlag::O_NONBLOCK));
            assert!(flags.contains(OFlag::O_APPEND));
            let fd_flags = nix::fcntl::fcntl(&file, FcntlArg::F_GETFD).unwrap();
            assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
        }
        let path = f.root.join("svc/console/stdout.log");
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o027, 0);
        match svc.open_append("nope/stdout.log", 0o640) {
            Err(RunDirError::Io {
                action,
                path,
                source,
            }) => {
                assert_eq!(action, "cannot open");
                assert_eq!(path, f.root.join("svc/nope/stdout.log"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("append in a missing dir: {other:?}"),
        }
    }

    #[test]
    fn list_reports_entries_as_they_are_without_following() {
        for resolve in RESOLVERS {
            let f = Fixture::new();
            let run = f.root.join("svc/run");
            fs::remove_file(run.join("start.pid")).unwrap();
            fs::write(run.join("b"), "12345").unwrap();
            fs::set_permissions(run.join("b"), fs::Permissions::from_mode(0o640)).unwrap();
            symlink(f.outside.join("secret"), run.join("a")).unwrap();
            nix::unistd::mkfifo(&run.join("c"), Mode::from_bits_truncate(0o600)).unwrap();
            fs::create_dir(run.join("d")).unwrap();
            let svc = f.svc(resolve);
            let entries = svc.list("run").unwrap();
            let summary: Vec<(&OsStr, FileKind)> = entries
                .iter()
                .map(|e| (e.name.as_os_str(), e.kind))
                .collect();
            assert_eq!(
                summary,
                [
                    (OsStr::new("a"), FileKind::Symlink),
                    (OsStr::new("b"), FileKind::File),
                    (OsStr::new("c"), FileKind::Other),
                    (OsStr::new("d"), FileKind::Dir),
                ],
                "{resolve:?}"
            );
            assert_eq!(
                entries[0].size,
                f.outside.join("secret").as_os_str().len() as u64
            );
            assert_eq!((entries[1].size, entries[1].mode), (5, 0o640));
            assert_eq!(entries[1].uid, nix::unistd::geteuid().as_raw());
            let mtime = fs::metadata(run.join("b")).unwrap().mtime();
            assert_eq!(entries[1].mtime, mtime);
            let top: Vec<OsString> = svc.list("").unwrap().into_iter().map(|e| e.name).collect();
            assert_eq!(top, ["console", "data", "etc", "log", "run"]);
            assert!(svc.list("missing").unwrap().is_empty());
            assert_refused(
                svc.list("run/b"),
                &run.join("b"),
                "is a regular file, not a directory",
                "a file",
            );
        }
    }

    #[test]
    fn remove_all_deletes_by_descriptor_and_never_outside() {
        for resolve in RESOLVERS {
            let f = Fixture::new();
            let svc = f.root.join("svc");
            fs::create_dir_all(svc.join("data/x/y/z")).unwrap();
            fs::write(svc.join("data/x/y/z/file"), "data").unwrap();
            f.plant("svc/log/app", "");
            f.plant("svc/data/x/y/z/out", "idee");
            f.plant("svc/run/pid", "start.pid");
            f.plant("svc/console/dangling", "nope");
            f.plant("svc/etc/root", "/");
            f.plant("svc/data/peer", "../../other");
            nix::unistd::mkfifo(&svc.join("run/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
            drop(UnixListener::bind(svc.join("run/sock")).unwrap());
            let before = f.untouchable();
            let root = f.root.clone();
            let (f, removed) = within("remove_all", move || {
                let removed = remove_all_with(&root, "svc", resolve);
                (f, removed)
            });
            assert!(removed.unwrap(), "{resolve:?}");
            assert_eq!(
                names_in(&f.root),
                ["other"],
                "{resolve:?}: left {:?}",
                names_in(&f.root)
            );
            assert_eq!(
                f.untouchable(),
                before,
                "{resolve:?}: something outside changed"
            );
            assert!(!remove_all_with(&f.root, "svc", resolve).unwrap());
            assert!(!remove_all_with(&f.root, "missing/svc", resolve).unwrap());
            assert!(!remove_all_with(&f.root.join("missing"), "svc", resolve).unwrap());
        }
    }

    #[test]
    fn remove_all_of_a_linked_runtime_dir_removes_only_the_link() {
        for resolve in RESOLVERS {
            let f = Fixture::new();
            f.plant("svc", "");
            let before = f.untouchable();
            assert!(remove_all_with(&f.root, "svc", resolve).unwrap());
            assert_eq!(names_in(&f.root), ["other"], "{resolve:?}");
            assert_eq!(f.untouchable(), before, "{resolve:?}");
        }
    }

    #[test]
    fn remove_all_moves_the_dir_aside_past_a_stale_aside_dir() {
        let f = Fixture::new();
        let aside = f.root.join(format!(".svc.removing.{}", std::process::id()));
        fs::create_dir_all(aside.join("junk")).unwrap();
        fs::write(aside.join("junk/file"), "old").unwrap();
        assert!(remove_all(&f.root, "svc").unwrap());
        assert_eq!(names_in(&f.root), ["other"]);
    }

    #[test]
    fn remove_all_removes_trees_of_any_depth() {
        // Deeper than a path may be long, with files and links on the way
        // down and a dir of the name copkg moves deep dirs up to.
        let f = Fixture::new();
        let mut dir = nix::fcntl::open(
            &f.root.join("svc"),
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        nix::sys::stat::mkdirat(&dir, ".copkg-deep.0", Mode::from_bits_truncate(0o755)).unwrap();
        for level in 0..5000 {
            let name = if level % 2 == 0 { "d" } else { ".copkg-deep.1" };
            nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).unwrap();
            if level % 500 == 0 {
                let file = nix::fcntl::openat(
                    &dir,
                    "f",
                    OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )
                .unwrap();
                drop(file);
                nix::unistd::symlinkat(f.outside.as_path(), &dir, "link").unwrap();
            }
            dir = nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
        }
        drop(dir);
        let outside = snapshot(&f.outside);
        assert!(remove_all(&f.root, "svc").unwrap());
        assert_eq!(names_in(&f.root), ["other"]);
        assert_eq!(snapshot(&f.outside), outside);
    }

    #[test]
    fn relative_paths_that_are_not_plain_are_refused_before_anything_is_touched() {
        let f = Fixture::new();
        let svc = f.svc(Resolve::Openat2);
        let before = snapshot(f.root.parent().unwrap());
        for relative in [
            "/etc",
            "..",
            ".",
            "svc/../svc",
            "a//b",
            "svc/",
            "svc/./run",
            "a\0b",
        ] {
            let reason = "is not a plain relative path";
            let at_root = join(&f.root, relative);
            assert_refused(
                RunDir::open(&f.root, relative, Some(0o755)),
                &at_root,
                reason,
                relative,
            );
            assert_refused(remove_all(&f.root, relative), &at_root, reason, relative);
            let in_svc = join(&f.root.join("svc"), relative);
            assert_refused(svc.subdir(relative), &in_svc, reason, relative);
            assert_refused(svc.read_file(relative, LIMIT), &in_svc, reason, relative);
            assert_refused(svc.open_append(relative, 0o644), &in_svc, reason, relative);
            assert_refused(svc.remove_file(relative), &in_svc, reason, relative);
            assert_refused(
                svc.ensure_subdirs(&[relative], 0o755),
                &in_svc,
                reason,
                relative,
            );
        }
        assert_eq!(snapshot(f.root.parent().unwrap()), before);
        assert_refused(
            remove_all(&f.root, ""),
            &f.root,
            "is the runtime root",
            "empty",
        );
        let svc_path = f.root.join("svc");
        assert_refused(
            svc.read_file("", LIMIT),
            &svc_path,
            "is a directory",
            "empty",
        );
        assert_refused(svc.remove_file(""), &svc_path, "is a directory", "empty");
        assert_eq!(
            RunDir::open(&f.root, "", None).unwrap().unwrap().path(),
            f.root
        );
    }

    #[test]
    fn errors_name_the_full_path_and_keep_the_cause() {
        let f = Fixture::new();
        f.plant("svc/run/start.pid", "start.pid");
        let svc = f.svc(Resolve::Openat2);
        let refusal = svc.read_file("run/start.pid", LIMIT).unwrap_err();
        let path = f.root.join("svc/run/start.pid");
        assert_eq!(
            refusal.to_string(),
            format!("refusing {}: it is a symlink", path.display())
        );
        let failure = svc.open_append("nope/stdout.log", 0o644).unwrap_err();
        let path = f.root.join("svc/nope/stdout.log");
        assert_eq!(
            failure.to_string(),
            format!("cannot open {}", path.display())
        );
        let cause = std::error::Error::source(&failure).unwrap();
        assert_eq!(
            cause.to_string(),
            io::Error::from(Errno::ENOENT).to_string()
        );
    }
}
