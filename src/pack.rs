//! Reproducible package archives: sorted entries, fixed mtimes, no owners,
//! normalized modes, so packing the same tree twice gives identical bytes.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::exit::{Coded, ExitCode};
use crate::extract::hex;

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
            PackError::Io { .. } | PackError::Exists { .. } => ExitCode::Failure,
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
    /// sha256 of the archive.
    pub sha256: String,
    /// Whether an identical archive was already there.
    pub unchanged: bool,
}

/// Fixed modification time of every entry: `SOURCE_DATE_EPOCH` when set, else 0.
fn fixed_mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the reproducible `.tar.gz` of `dir` to `writer`; returns its sha256.
pub fn write_archive<W: Write>(dir: &Path, writer: W) -> Result<String, PackError> {
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
    collect(dir, dir, &mut entries)?;
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
    let mut builder = tar::Builder::new(GzEncoder::new(hashing, Compression::default()));
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
            header.set_mode(0o755);
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
            let exec = meta.permissions().mode() & 0o111 != 0;
            header.set_mode(if exec { 0o755 } else { 0o644 });
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
    Ok(hex(&hashing.hasher.finalize()))
}

/// Lists `dir` below `root` depth-first in byte order of names, refusing
/// what install would refuse: special files and links leaving the tree.
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PackError> {
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
        if name
            .to_str()
            .is_none_or(|n| n.chars().any(char::is_control))
        {
            return Err(unpackable("its name is not printable UTF-8".to_owned()));
        }
        if crate::extract::RESERVED_TOP_LEVEL
            .iter()
            .any(|name| relative.as_os_str() == *name)
        {
            return Err(unpackable("the name is reserved by copkg".to_owned()));
        }
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("cannot inspect", &path))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io_err("cannot read link", &path))?;
            let depth = relative.components().count() as i64 - 1;
            if !link_stays_inside(depth, &target) {
                return Err(unpackable(format!(
                    "symlink to `{}` leaves the package",
                    target.display()
                )));
            }
            out.push(relative);
        } else if kind.is_dir() {
            out.push(relative);
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push(relative);
        } else {
            return Err(unpackable(
                "not a regular file, directory or symlink".to_owned(),
            ));
        }
    }
    Ok(())
}

/// The rule install applies to symlinks: relative, `..` only leading, inside.
fn link_stays_inside(mut depth: i64, target: &Path) -> bool {
    use std::path::Component;
    let mut climbing = true;
    for component in target.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if climbing => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => climbing = false,
            _ => return false,
        }
    }
    true
}

/// Packs `dir` into `repo_dir/archive` with its sidecar at `repo_dir/sidecar`,
/// each written to a temp file and renamed into place.
pub fn pack(
    dir: &Path,
    repo_dir: &Path,
    archive: &str,
    sidecar: &str,
    force: bool,
) -> Result<Packed, PackError> {
    if !dir.is_dir() {
        return Err(PackError::Unpackable {
            path: dir.to_owned(),
            reason: "not a directory".to_owned(),
        });
    }
    let archive_path = repo_dir.join(archive);
    let sidecar_path = repo_dir.join(sidecar);
    let parent = archive_path.parent().unwrap_or(repo_dir);
    std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    let mut temp = tempfile::NamedTempFile::new_in(parent)
        .map_err(io_err("cannot create a temp file in", parent))?;
    let sha256 = write_archive(dir, io::BufWriter::new(temp.as_file_mut()))?;

    let existing = match std::fs::File::open(&archive_path) {
        Ok(mut file) => {
            let mut hasher = Sha256::new();
            io::copy(&mut file, &mut hasher).map_err(io_err("cannot read", &archive_path))?;
            Some(hex(&hasher.finalize()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("cannot read", &archive_path)(e)),
    };
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
    if !unchanged {
        temp.as_file()
            .sync_all()
            .map_err(io_err("cannot sync", temp.path()))?;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(io_err("cannot write", temp.path()))?;
        temp.persist(&archive_path)
            .map_err(|e| io_err("cannot write", &archive_path)(e.error))?;
    }
    let file_name = archive_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sidecar_parent = sidecar_path.parent().unwrap_or(repo_dir);
    std::fs::create_dir_all(sidecar_parent).map_err(io_err("cannot create", sidecar_parent))?;
    let mut side = tempfile::NamedTempFile::new_in(sidecar_parent)
        .map_err(io_err("cannot create a temp file in", sidecar_parent))?;
    writeln!(side, "{sha256}  {file_name}").map_err(io_err("cannot write", &sidecar_path))?;
    std::fs::set_permissions(side.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(io_err("cannot write", side.path()))?;
    side.persist(&sidecar_path)
        .map_err(|e| io_err("cannot write", &sidecar_path)(e.error))?;
    Ok(Packed {
        archive: archive_path,
        sidecar: sidecar_path,
        sha256,
        unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let digest = write_archive(dir.path(), &mut first).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("README"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let mut second = Vec::new();
        assert_eq!(write_archive(dir.path(), &mut second).unwrap(), digest);
        assert_eq!(first, second);
        assert_eq!(digest, hex(&Sha256::digest(&first)));
    }

    #[test]
    fn links_leaving_the_tree_are_refused() {
        assert!(link_stays_inside(1, Path::new("../x")));
        assert!(!link_stays_inside(0, Path::new("../x")));
        assert!(!link_stays_inside(3, Path::new("/etc/passwd")));
        assert!(!link_stays_inside(3, Path::new("a/../b")));
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let err = write_archive(dir.path(), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("leaves the package"), "{err}");
    }
}
