//! Reproducible package archives: sorted entries, fixed mtimes, no owners,
//! normalized modes, so packing the same tree twice gives identical bytes.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::exit::{Coded, ExitCode};
use crate::extract::hex;
use crate::signature::{KeyError, Signer};

/// Why a tree could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading the tree or writing the archive failed.
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
    /// The tree holds something a package may not (and install would refuse).
    #[error("cannot pack {}: {reason}", path.display())]
    Unpackable {
        /// The offending path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The archive could not be signed.
    #[error("cannot sign {}", path.display())]
    Sign {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A republish without `--sign` would leave a signature of other
    /// content beside the new archive.
    #[error("{} is signed ({}); the new archive would not match that signature: sign it too (--sign), or remove the signature first", archive.display(), signature.display())]
    StaleSignature {
        /// The archive.
        archive: PathBuf,
        /// Its signature.
        signature: PathBuf,
    },
    /// The repository already holds a different archive for this coordinate.
    #[error("{} already exists with different content (sha256 {existing}); published packages are immutable: use a new version, or --force", path.display())]
    Exists {
        /// The archive.
        path: PathBuf,
        /// Its current digest.
        existing: String,
    },
}

impl Coded for PackError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PackError::Unpackable { .. } => ExitCode::Usage,
            PackError::Sign { source, .. } => source.exit_code(),
            PackError::Io { .. } | PackError::Exists { .. } | PackError::StaleSignature { .. } => {
                ExitCode::Failure
            }
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PackError + 'a {
    move |source| PackError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// What `pack` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The archive.
    pub archive: PathBuf,
    /// The sidecar.
    pub sidecar: PathBuf,
    /// The signature, when the archive was signed.
    pub signature: Option<PathBuf>,
    /// sha256 of the archive.
    pub sha256: String,
    /// Whether an identical archive was already there.
    pub unchanged: bool,
    /// Entries a service's account could not read once installed.
    pub unreadable: Vec<String>,
}

/// Fixed modification time of every entry: `SOURCE_DATE_EPOCH` when set, else 0.
fn fixed_mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the reproducible `.tar.gz` of `dir` to `writer`; returns its
/// sha256 and the entries a service's account could not read.
pub fn write_archive<W: Write>(dir: &Path, writer: W) -> Result<(String, Vec<String>), PackError> {
    struct Hashing<W> {
        inner: W,
        hasher: Sha256,
    }
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.hasher.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }
    let mut entries = Vec::new();
    let mut unreadable = Vec::new();
    collect(dir, dir, &mut entries, &mut unreadable)?;
    if entries.is_empty() {
        return Err(PackError::Unpackable {
            path: dir.to_owned(),
            reason: "the directory is empty".to_owned(),
        });
    }
    let hashing = Hashing {
        inner: writer,
        hasher: Sha256::new(),
    };
    let mut builder = tar::Builder::new(ParallelGzip::new(hashing));
    builder.mode(tar::HeaderMode::Deterministic);
    let mtime = fixed_mtime();
    for relative in &entries {
        let path = dir.join(relative);
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("cannot inspect", &path))?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        let write = io_err("cannot write the archive for", &path);
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(crate::extract::dir_mode(meta.permissions().mode()));
            header.set_size(0);
            builder
                .append_data(&mut header, relative, io::empty())
                .map_err(write)?;
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io_err("cannot read link", &path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, relative, &target)
                .map_err(write)?;
        } else {
            let file = std::fs::File::open(&path).map_err(io_err("cannot read", &path))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(crate::extract::file_mode(meta.permissions().mode()));
            header.set_size(meta.len());
            builder
                .append_data(&mut header, relative, file)
                .map_err(write)?;
        }
    }
    let gz = builder
        .into_inner()
        .map_err(io_err("cannot write the archive for", dir))?;
    let mut hashing = gz
        .finish()
        .map_err(io_err("cannot write the archive for", dir))?;
    hashing
        .flush()
        .map_err(io_err("cannot write the archive for", dir))?;
    Ok((hex(&hashing.hasher.finalize()), unreadable))
}

/// One block as a gzip member of its own.
fn compress_member(block: &[u8]) -> io::Result<Vec<u8>> {
    let mut member = GzEncoder::new(Vec::with_capacity(block.len() / 2), Compression::default());
    member.write_all(block)?;
    member.finish()
}

/// Bytes of tar stream compressed as one gzip member.
const GZIP_BLOCK_BYTES: usize = 4 << 20;
/// Most blocks compressed at once, whatever the number of cores (each
/// holds its block and its output).
const MAX_COMPRESSING: usize = 8;

/// A gzip stream compressed on every core: the input is cut into blocks of
/// [`GZIP_BLOCK_BYTES`], each compressed as a gzip member of its own on a
/// thread of its own, and the members written in order. Members in a row
/// are one valid gzip stream (RFC 1952; `gzip -d`, `tar -xz` and copkg
/// read them all); the same input gives the same bytes, however the
/// threads are scheduled. At most one block per core, up to
/// [`MAX_COMPRESSING`] (and one filling), is held at a time.
struct ParallelGzip<W: Write> {
    inner: W,
    block: Vec<u8>,
    compressing: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    in_flight: usize,
}

impl<W: Write> ParallelGzip<W> {
    fn new(inner: W) -> Self {
        ParallelGzip {
            inner,
            block: Vec::with_capacity(GZIP_BLOCK_BYTES),
            compressing: std::collections::VecDeque::new(),
            in_flight: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_COMPRESSING),
        }
    }

    /// Hands the filled block to a compressing thread, first writing out
    /// the oldest member when as many are in flight as there are cores.
    fn send_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.compressing.len() >= self.in_flight {
            self.write_oldest()?;
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK_BYTES));
        let block = std::sync::Arc::new(block);
        let shared = std::sync::Arc::clone(&block);
        match std::thread::Builder::new()
            .name("copkg-gzip".to_owned())
            .spawn(move || compress_member(&shared))
        {
            Ok(handle) => self.compressing.push_back(handle),
            // No thread to be had: compressed here, in its turn.
            Err(_) => {
                while !self.compressing.is_empty() {
                    self.write_oldest()?;
                }
                let member = compress_member(&block)?;
                self.inner.write_all(&member)?;
            }
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(handle) = self.compressing.pop_front() {
            let member = handle
                .join()
                .map_err(|_| io::Error::other("a compressing thread panicked"))??;
            self.inner.write_all(&member)?;
        }
        Ok(())
    }

    /// Compresses what is left and writes every member; returns the inner
    /// writer.
    fn finish(mut self) -> io::Result<W> {
        self.send_block()?;
        while !self.compressing.is_empty() {
            self.write_oldest()?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_BLOCK_BYTES - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == GZIP_BLOCK_BYTES {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lists `dir` below `root` depth-first in byte order of names, refusing
/// what install would refuse (by install's own rules: names, link targets,
/// special files) and noting what a service's account could not read.
fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
    unreadable: &mut Vec<String>,
) -> Result<(), PackError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        names.push(entry.map_err(io_err("cannot list", dir))?.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let relative = path.strip_prefix(root).unwrap_or(&path).to_owned();
        let unpackable = |reason: String| PackError::Unpackable {
            path: path.clone(),
            reason,
        };
        let refused = |err: crate::extract::ExtractError| match err {
            crate::extract::ExtractError::Unsafe { reason, .. } => unpackable(reason),
            other => unpackable(other.to_string()),
        };
        let bytes = relative.as_os_str().as_bytes();
        let components = crate::extract::entry_components(bytes).map_err(refused)?;
        if components.len() == 1 && crate::extract::RESERVED_TOP_LEVEL.contains(&components[0]) {
            return Err(unpackable("the name is reserved by copkg".to_owned()));
        }
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("cannot inspect", &path))?;
        let kind = meta.file_type();
        let mode = meta.permissions().mode();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io_err("cannot read link", &path))?;
            crate::extract::check_symlink_target(bytes, &components, target.as_os_str().as_bytes())
                .map_err(refused)?;
            out.push(relative);
        } else if kind.is_dir() {
            if crate::extract::dir_mode(mode) & 0o005 != 0o005 {
                unreadable.push(format!("{}/", relative.display()));
            }
            out.push(relative);
            collect(root, &path, out, unreadable)?;
        } else if kind.is_file() {
            if crate::extract::file_mode(mode) & 0o004 == 0 {
                unreadable.push(relative.display().to_string());
            }
            out.push(relative);
        } else {
            return Err(unpackable(
                "not a regular file, directory or symlink".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Where `pack` writes, relative to the repository dir, and how it signs.
#[derive(Debug, Clone, Copy)]
pub struct PackTarget<'a> {
    /// The archive.
    pub archive: &'a str,
    /// Its checksum sidecar.
    pub sidecar: &'a str,
    /// Its signature (`<archive>.minisig`), and the key to make it with;
    /// `None` to publish unsigned.
    pub signature: Option<(&'a str, &'a Signer)>,
}

/// Packs `dir` into `repo_dir/archive` with its sidecar at `repo_dir/sidecar`
/// and, when signing, its signature beside the archive.
///
/// All are written into a staging dir in the repository (hidden, removed on
/// any failure, on Ctrl-C and on SIGTERM) and then published: when they share
/// a version dir that does not exist yet, by renaming a whole staged version
/// dir into place, so they appear together; a republish (`force`) renames the
/// old version dir aside first and deletes it after. Where the layout puts
/// them elsewhere, or the version dir holds other files, the signature is
/// renamed into place first, then the archive, then the sidecar, so no
/// client ever finds an archive without its signature or a sidecar without
/// its archive. A failed pack leaves nothing, not even empty dirs.
pub fn pack(
    dir: &Path,
    repo_dir: &Path,
    target: PackTarget<'_>,
    force: bool,
) -> Result<Packed, PackError> {
    let PackTarget {
        archive, sidecar, ..
    } = target;
    if !dir.is_dir() {
        return Err(PackError::Unpackable {
            path: dir.to_owned(),
            reason: "not a directory".to_owned(),
        });
    }
    let repo_dir = &std::path::absolute(repo_dir).map_err(io_err("cannot resolve", repo_dir))?;
    let archive_path = repo_dir.join(archive);
    let sidecar_path = repo_dir.join(sidecar);
    // What install would refuse is refused before anything is written.
    collect(dir, dir, &mut Vec::new(), &mut Vec::new())?;
    let created_repo = create_dirs(repo_dir, Path::new("/"))?;
    let signature = target
        .signature
        .map(|(path, signer)| (repo_dir.join(path), signer));
    let result = publish(
        dir,
        repo_dir,
        &archive_path,
        &sidecar_path,
        signature
            .as_ref()
            .map(|(path, signer)| (path.as_path(), *signer)),
        force,
    );
    if result.is_err() {
        remove_created(&created_repo);
    }
    result
}

/// Stages and publishes; see [`pack`].
fn publish(
    dir: &Path,
    repo_dir: &Path,
    archive_path: &Path,
    sidecar_path: &Path,
    signature: Option<(&Path, &Signer)>,
    force: bool,
) -> Result<Packed, PackError> {
    let (archive_path, sidecar_path) = (archive_path.to_owned(), sidecar_path.to_owned());
    // Registered for removal on Ctrl-C before it exists, so no signal can
    // land between its creation and its registration.
    let name = format!(
        ".copkg-pack.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let _interrupted = crate::interrupt::Cleanup::register(repo_dir.join(&name));
    let staging = Staging(repo_dir.join(&name));
    std::fs::create_dir(staging.path()).map_err(io_err("cannot create", staging.path()))?;
    let version = staging.path().join("version");
    std::fs::create_dir(&version).map_err(io_err("cannot create", &version))?;
    let staged_archive = version.join(file_name(&archive_path));
    let staged_sidecar = version.join(file_name(&sidecar_path));

    let mut file =
        std::fs::File::create(&staged_archive).map_err(io_err("cannot create", &staged_archive))?;
    let (sha256, unreadable) = write_archive(dir, io::BufWriter::new(&mut file))?;
    file.sync_all()
        .map_err(io_err("cannot sync", &staged_archive))?;
    drop(file);
    let existing = digest_of(&archive_path)?;
    let unchanged = existing.as_deref() == Some(sha256.as_str());
    if let Some(existing) = existing
        && !unchanged
        && !force
    {
        return Err(PackError::Exists {
            path: archive_path,
            existing,
        });
    }
    let mut side =
        std::fs::File::create(&staged_sidecar).map_err(io_err("cannot create", &staged_sidecar))?;
    writeln!(
        side,
        "{sha256}  {}",
        file_name(&archive_path).to_string_lossy()
    )
    .and_then(|()| side.sync_all())
    .map_err(io_err("cannot write", &staged_sidecar))?;
    // The signature: made from the staged archive (read once, prehashed),
    // published with it.
    let signature_path = signature.map(|(path, _)| path.to_owned());
    let staged_signature = match signature {
        Some((path, signer)) => {
            let staged = version.join(file_name(path));
            let sign_err = |source| PackError::Sign {
                path: archive_path.clone(),
                source,
            };
            let reader = io::BufReader::new(
                std::fs::File::open(&staged_archive)
                    .map_err(io_err("cannot read", &staged_archive))?,
            );
            let text = signer
                .sign(reader, &file_name(&archive_path).to_string_lossy())
                .map_err(sign_err)?;
            let mut file =
                std::fs::File::create(&staged).map_err(io_err("cannot create", &staged))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_err("cannot write", &staged))?;
            Some(staged)
        }
        None => {
            // A signature already published for other content would be
            // left beside the new archive, and refuse every install.
            let published = PathBuf::from(format!(
                "{}{}",
                archive_path.display(),
                crate::signature::SIGNATURE_SUFFIX
            ));
            if !unchanged && std::fs::symlink_metadata(&published).is_ok() {
                return Err(PackError::StaleSignature {
                    archive: archive_path,
                    signature: published,
                });
            }
            None
        }
    };
    for staged in [
        Some(&staged_archive),
        Some(&staged_sidecar),
        staged_signature.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::set_permissions(staged, std::fs::Permissions::from_mode(0o644))
            .map_err(io_err("cannot write", staged))?;
    }

    let packed = Packed {
        archive: archive_path.clone(),
        sidecar: sidecar_path.clone(),
        signature: signature_path.clone(),
        sha256,
        unchanged,
        unreadable,
    };
    let same_dir = archive_path.parent() == sidecar_path.parent()
        && signature_path
            .as_ref()
            .is_none_or(|path| path.parent() == archive_path.parent());
    let version_dir = archive_path.parent().unwrap_or(repo_dir);
    let mut ours = vec![file_name(&archive_path), file_name(&sidecar_path)];
    if let Some(path) = &signature_path {
        ours.push(file_name(path));
    }
    let only_ours = |path: &Path| -> Result<bool, PackError> {
        match std::fs::read_dir(path) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(io_err("cannot list", path))?;
                    if !ours.contains(&entry.file_name().as_os_str()) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err("cannot list", path)(e)),
        }
    };
    if same_dir && version_dir != repo_dir && only_ours(version_dir)? {
        let parent = version_dir.parent().unwrap_or(repo_dir);
        let created = create_dirs(parent, repo_dir)?;
        let publish = || -> Result<(), PackError> {
            if version_dir.exists() {
                // A republish (or the same bytes again): the old version dir
                // goes aside in one rename, the new one comes in with another.
                let old = staging.path().join("old");
                std::fs::rename(version_dir, &old)
                    .map_err(io_err("cannot move aside", version_dir))?;
            }
            std::fs::rename(&version, version_dir)
                .map_err(io_err("cannot move into place", version_dir))
        };
        if let Err(err) = publish() {
            remove_created(&created);
            return Err(err);
        }
    } else {
        let parents = [
            archive_path.parent(),
            sidecar_path.parent(),
            signature_path.as_deref().and_then(Path::parent),
        ];
        let mut created = Vec::new();
        for parent in parents.into_iter().flatten() {
            created.extend(create_dirs(parent, repo_dir)?);
        }
        // Signature first: an archive is never seen without it. A new
        // signature that finds no archive to publish goes again.
        let signature_published = match (&staged_signature, &signature_path) {
            (Some(staged), Some(path)) => {
                if let Err(err) = std::fs::rename(staged, path) {
                    remove_created(&created);
                    return Err(io_err("cannot move into place", path)(err));
                }
                Some(path)
            }
            _ => None,
        };
        let publish = || -> Result<(), PackError> {
            std::fs::rename(&staged_archive, &archive_path)
                .map_err(io_err("cannot move into place", &archive_path))?;
            std::fs::rename(&staged_sidecar, &sidecar_path)
                .map_err(io_err("cannot move into place", &sidecar_path))
        };
        if let Err(err) = publish() {
            if let Some(path) = signature_published {
                let _ = std::fs::remove_file(path);
            }
            remove_created(&created);
            return Err(err);
        }
    }
    staging.close()?;
    Ok(packed)
}

/// The staging dir of one pack, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn path(&self) -> &Path {
        &self.0
    }

    fn close(self) -> Result<(), PackError> {
        let result = std::fs::remove_dir_all(&self.0).map_err(io_err("cannot remove", &self.0));
        std::mem::forget(self);
        result
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_name(path: &Path) -> &std::ffi::OsStr {
    path.file_name().unwrap_or_default()
}

/// The sha256 of the file at `path`, if there is one.
fn digest_of(path: &Path) -> Result<Option<String>, PackError> {
    match std::fs::File::open(path) {
        Ok(mut file) => {
            let mut hasher = Sha256::new();
            io::copy(&mut file, &mut hasher).map_err(io_err("cannot read", path))?;
            Ok(Some(hex(&hasher.finalize())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

/// Creates `dir` and its missing parents up to `root`; the dirs it made,
/// deepest first, so that a failure can take them away again.
fn create_dirs(dir: &Path, root: &Path) -> Result<Vec<PathBuf>, PackError> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current.filter(|p| p.starts_with(root) && *p != root) {
        if path.exists() {
            break;
        }
        missing.push(path.to_owned());
        current = path.parent();
    }
    for path in missing.iter().rev() {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                remove_created(&missing);
                return Err(io_err("cannot create", path)(e));
            }
        }
    }
    Ok(missing)
}

/// Removes dirs [`create_dirs`] made, where they are still empty.
fn remove_created(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn same_tree_twice_gives_identical_bytes_whatever_the_mtimes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("bin/run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(dir.path().join("README"), "hello").unwrap();
        std::os::unix::fs::symlink("bin/run", dir.path().join("run")).unwrap();
        let mut first = Vec::new();
        let (digest, unreadable) = write_archive(dir.path(), &mut first).unwrap();
        assert_eq!(unreadable, ["bin/run"]);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("README"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let mut second = Vec::new();
        assert_eq!(write_archive(dir.path(), &mut second).unwrap().0, digest);
        assert_eq!(first, second);
        assert_eq!(digest, hex(&Sha256::digest(&first)));
    }

    /// A tree larger than a block is packed as several gzip members,
    /// compressed on several threads: one gzip stream whatever reads it,
    /// the same bytes every time, and copkg unpacks it.
    #[test]
    fn a_large_tree_is_several_gzip_members_read_as_one_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = Vec::new();
        for n in 0u32..(3 * GZIP_BLOCK_BYTES as u32 / 16) {
            content.extend_from_slice(format!("{:015}\n", n.wrapping_mul(2654435761)).as_bytes());
        }
        std::fs::write(dir.path().join("data"), &content).unwrap();
        std::fs::write(dir.path().join("small"), "small").unwrap();
        let mut first = Vec::new();
        let (digest, _) = write_archive(dir.path(), &mut first).unwrap();
        let mut second = Vec::new();
        assert_eq!(write_archive(dir.path(), &mut second).unwrap().0, digest);
        assert_eq!(first, second);
        // Several members: the gzip magic starts more than one.
        let members = first
            .windows(3)
            .filter(|w| *w == [0x1f, 0x8b, 0x08])
            .count();
        assert!(members >= 4, "{members} members");
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(&first[..])
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "data" {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                assert!(bytes == content, "the data entry differs");
            }
            names.push(name);
        }
        assert_eq!(names, ["data", "small"]);
        let out = tempfile::tempdir().unwrap();
        let unpacked = crate::extract::unpack_tar_gz(
            &first[..],
            out.path(),
            &crate::extract::Limits::default_for(None),
        )
        .unwrap();
        assert_eq!(unpacked.sha256, digest);
        assert!(std::fs::read(out.path().join("data")).unwrap() == content);
    }

    #[test]
    fn links_leaving_the_tree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let err = write_archive(dir.path(), Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("links to the absolute path `/etc/passwd`"),
            "{err}"
        );
    }
}
