//! The install manifest: every entry of a package below its install dir,
//! recorded at install (in the temp dir, before the completion marker, so the
//! same `syncfs` and rename cover it), and what `verify` compares the disk
//! against.
//!
//! The format is JSON lines: a header line `{"copkg_manifest":1}`, then one
//! object per entry, in path order (component by component, names in byte
//! order, so a depth-first walk with sorted names):
//!
//! ```text
//! {"copkg_manifest":1}
//! {"type":"dir","path":"bin","mode":"0755"}
//! {"type":"file","path":"bin/hello","mode":"0755","size":21,"sha256":"…"}
//! {"type":"symlink","path":"lib/conf","target":"../etc/hello.conf"}
//! ```
//!
//! Symlinks carry no mode: Linux has no permission bits on a symlink. The
//! completion marker and the manifest itself are not listed. Both sides are
//! read as streams in the same order and merged, so a check holds one line
//! of the manifest and one listing per directory level in memory, whatever
//! the package's size.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{MANIFEST_FILE, MARKER_FILE, StoreError, io_err};
use crate::extract::hex;

/// The manifest format this copkg writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Longest manifest line read back: a path and a link target of 4096 bytes
/// each, escaped, fit many times over.
const LINE_LIMIT: usize = 64 * 1024;
const HASH_BUFFER_BYTES: usize = 128 * 1024;

/// The first line of a manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    copkg_manifest: u32,
}

/// One entry of a package, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ManifestEntry {
    /// A regular file (a hard link is one more file with the same content).
    File {
        /// Relative to the install dir, `/`-separated.
        path: String,
        /// Permission bits.
        #[serde(with = "octal")]
        mode: u32,
        /// Bytes of content.
        size: u64,
        /// Lowercase hex sha256 of the content.
        sha256: String,
    },
    /// A directory.
    Dir {
        /// Relative to the install dir, `/`-separated.
        path: String,
        /// Permission bits.
        #[serde(with = "octal")]
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Relative to the install dir, `/`-separated.
        path: String,
        /// What it points at, as stored in the link.
        target: String,
    },
}

impl ManifestEntry {
    /// The entry's path relative to the install dir.
    pub fn path(&self) -> &str {
        match self {
            ManifestEntry::File { path, .. }
            | ManifestEntry::Dir { path, .. }
            | ManifestEntry::Symlink { path, .. } => path,
        }
    }
}

/// Permission bits as four octal digits (`"0755"`), as people read them.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::mode_text(*mode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        u32::from_str_radix(text, 8)
            .ok()
            .filter(|mode| text.len() == 4 && *mode <= 0o7777)
            .ok_or_else(|| D::Error::custom(format!("invalid mode `{text}`")))
    }
}

/// Permission bits as four octal digits.
pub fn mode_text(mode: u32) -> String {
    format!("{mode:04o}")
}

/// How the disk differs from the manifest at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifferenceKind {
    /// A file's size or content differs, or the entry changed type.
    Modified,
    /// In the manifest, not on disk.
    Missing,
    /// On disk, not in the manifest (an extra directory is reported once,
    /// not with its contents).
    Extra,
    /// Permission bits differ.
    Mode {
        /// As recorded.
        expected: u32,
        /// As found.
        actual: u32,
    },
    /// A symlink points elsewhere.
    Target {
        /// As recorded.
        expected: String,
        /// As found.
        actual: String,
    },
}

impl DifferenceKind {
    /// The kind's name: `modified`, `missing`, `extra`, `mode` or `target`.
    pub fn name(&self) -> &'static str {
        match self {
            DifferenceKind::Modified => "modified",
            DifferenceKind::Missing => "missing",
            DifferenceKind::Extra => "extra",
            DifferenceKind::Mode { .. } => "mode",
            DifferenceKind::Target { .. } => "target",
        }
    }
}

/// One difference between the disk and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Relative to the install dir (lossily decoded when a name found on
    /// disk is not UTF-8).
    pub path: String,
    /// What differs.
    pub kind: DifferenceKind,
}

/// What a check of a tree against its manifest found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checked {
    /// Regular files the manifest lists.
    pub files: u64,
    /// Every difference, in path order.
    pub differences: Vec<Difference>,
}

/// A depth-first walk of a tree, names in byte order, never following a
/// symlink and skipping copkg's own files at the top. A directory's
/// contents come next only when the caller asks to [`descend`](Walk::descend).
struct Walk {
    root: PathBuf,
    stack: Vec<Listing>,
}

struct Listing {
    relative: PathBuf,
    names: std::vec::IntoIter<OsString>,
}

/// An entry the walk found.
struct Found {
    relative: PathBuf,
    path: PathBuf,
    meta: Metadata,
}

fn vanished(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

impl Walk {
    fn new(root: &Path) -> Result<Self, StoreError> {
        let mut walk = Walk {
            root: root.to_owned(),
            stack: Vec::new(),
        };
        walk.push(PathBuf::new())?;
        Ok(walk)
    }

    fn push(&mut self, relative: PathBuf) -> Result<(), StoreError> {
        let dir = self.root.join(&relative);
        let top = relative.as_os_str().is_empty();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed since it was seen: what it held is missing.
            Err(e) if !top && vanished(&e) => return Ok(()),
            Err(e) => return Err(io_err("cannot list", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry.map_err(io_err("cannot list", &dir))?.file_name());
        }
        if top {
            names.retain(|name| name != MARKER_FILE && name != MANIFEST_FILE);
        }
        names.sort();
        self.stack.push(Listing {
            relative,
            names: names.into_iter(),
        });
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Found>, StoreError> {
        while let Some(listing) = self.stack.last_mut() {
            let Some(name) = listing.names.next() else {
                self.stack.pop();
                continue;
            };
            let relative = listing.relative.join(name);
            let path = self.root.join(&relative);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) => {
                    return Ok(Some(Found {
                        relative,
                        path,
                        meta,
                    }));
                }
                Err(e) if vanished(&e) => {}
                Err(e) => return Err(io_err("cannot inspect", &path)(e)),
            }
        }
        Ok(None)
    }

    /// Makes the contents of `found`, a directory just returned, come next.
    fn descend(&mut self, found: &Found) -> Result<(), StoreError> {
        self.push(found.relative.clone())
    }
}

/// Calls `visit` with (relative path, path, metadata) for every entry below
/// `root`, in path order, never following a symlink and skipping copkg's own
/// files at the top.
pub(super) fn visit(
    root: &Path,
    mut visit: impl FnMut(&Path, &Path, &Metadata) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut walk = Walk::new(root)?;
    while let Some(found) = walk.next()? {
        visit(&found.relative, &found.path, &found.meta)?;
        if found.meta.is_dir() {
            walk.descend(&found)?;
        }
    }
    Ok(())
}

/// The sha256 of a regular file, read without following a symlink.
fn hash_file(path: &Path, buffer: &mut [u8]) -> Result<String, StoreError> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(io_err("cannot read", path))?;
    if !file
        .metadata()
        .map_err(io_err("cannot read", path))?
        .is_file()
    {
        return Err(io_err("cannot read", path)(io::Error::other(
            "not a regular file",
        )));
    }
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("cannot read", path)(e)),
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn permission_bits(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// Writes the manifest of the freshly unpacked tree at `root` to
/// `root/.copkg-manifest.json`: from `tree` (what unpacking made there, in
/// path order, the digests taken as the files were written into this
/// private temp dir), or else by walking the tree and hashing every file
/// (an adopted dir).
pub(super) fn write(
    root: &Path,
    tree: Option<&[(String, crate::extract::TreeEntry)]>,
) -> Result<(), StoreError> {
    let manifest = root.join(MANIFEST_FILE);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&manifest)
        .map_err(io_err("cannot write", &manifest))?;
    let mut out = BufWriter::new(file);
    let header = Header {
        copkg_manifest: MANIFEST_VERSION,
    };
    write_line(&mut out, &header).map_err(io_err("cannot write", &manifest))?;
    match tree {
        Some(tree) => {
            use crate::extract::TreeEntry;
            for (path, entry) in tree {
                let path = path.clone();
                let entry = match entry {
                    TreeEntry::Dir { mode } => ManifestEntry::Dir { path, mode: *mode },
                    TreeEntry::File { mode, size, sha256 } => ManifestEntry::File {
                        path,
                        mode: *mode,
                        size: *size,
                        sha256: hex(sha256),
                    },
                    TreeEntry::Symlink { target } => ManifestEntry::Symlink {
                        path,
                        target: target.clone(),
                    },
                };
                write_line(&mut out, &entry).map_err(io_err("cannot write", &manifest))?;
            }
        }
        None => write_walked(root, &manifest, &mut out)?,
    }
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)
        .map_err(io_err("cannot write", &manifest))?;
    Ok(())
}

/// The manifest's entries, read from the disk: a walk in path order,
/// hashing every file.
fn write_walked(root: &Path, manifest: &Path, out: &mut impl Write) -> Result<(), StoreError> {
    let unrecordable = |path: &Path, why: &str| {
        io_err("cannot record in the manifest", path)(io::Error::new(
            io::ErrorKind::InvalidData,
            why.to_owned(),
        ))
    };
    let mut buffer = vec![0; HASH_BUFFER_BYTES];
    let mut walk = Walk::new(root)?;
    while let Some(found) = walk.next()? {
        let Some(path) = found.relative.to_str().map(str::to_owned) else {
            return Err(unrecordable(&found.path, "the name is not UTF-8"));
        };
        let kind = found.meta.file_type();
        let entry = if kind.is_symlink() {
            let target =
                std::fs::read_link(&found.path).map_err(io_err("cannot read link", &found.path))?;
            let Some(target) = target.to_str().map(str::to_owned) else {
                return Err(unrecordable(&found.path, "the link target is not UTF-8"));
            };
            ManifestEntry::Symlink { path, target }
        } else if kind.is_dir() {
            walk.descend(&found)?;
            ManifestEntry::Dir {
                path,
                mode: permission_bits(&found.meta),
            }
        } else if kind.is_file() {
            ManifestEntry::File {
                sha256: hash_file(&found.path, &mut buffer)?,
                path,
                mode: permission_bits(&found.meta),
                size: found.meta.len(),
            }
        } else {
            return Err(unrecordable(
                &found.path,
                "not a regular file, directory or symlink",
            ));
        };
        write_line(out, &entry).map_err(io_err("cannot write", manifest))?;
    }
    Ok(())
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// A manifest read line by line: its header checked, each line bounded,
/// and the paths in strictly increasing order.
pub(super) struct Reader<R = BufReader<File>> {
    path: PathBuf,
    input: R,
    line: Vec<u8>,
    number: u64,
    previous: Option<String>,
}

impl Reader {
    /// Opens the manifest in `dir`; `None` when there is none.
    pub(super) fn open(dir: &Path) -> Result<Option<Reader>, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(bad(&path, "it is a symlink"));
            }
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        let meta = file.metadata().map_err(io_err("cannot read", &path))?;
        if !meta.is_file() {
            return Err(bad(&path, "it is not a regular file"));
        }
        Reader::start(path, BufReader::new(file)).map(Some)
    }
}

impl<R: BufRead> Reader<R> {
    /// Reads and checks the header of the manifest `input`; `path` names
    /// it in errors.
    pub(super) fn start(path: PathBuf, input: R) -> Result<Reader<R>, StoreError> {
        let mut reader = Reader {
            path,
            input,
            line: Vec::new(),
            number: 0,
            previous: None,
        };
        let header: Header = match reader.read_line()? {
            Some(line) => serde_json::from_slice(line).map_err(|e| {
                bad(
                    &reader.path,
                    &format!("line 1 is not a manifest header: {e}"),
                )
            })?,
            None => return Err(bad(&reader.path, "it is empty")),
        };
        if header.copkg_manifest != MANIFEST_VERSION {
            return Err(bad(
                &reader.path,
                &format!(
                    "format version {} is not {MANIFEST_VERSION}, the one this copkg reads",
                    header.copkg_manifest
                ),
            ));
        }
        Ok(reader)
    }

    fn read_line(&mut self) -> Result<Option<&[u8]>, StoreError> {
        self.line.clear();
        let read = (&mut self.input)
            .take(LINE_LIMIT as u64 + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(io_err("cannot read", &self.path))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.line.pop() != Some(b'\n') {
            let why = if read > LINE_LIMIT {
                format!("line {} is longer than {LINE_LIMIT} bytes", self.number)
            } else {
                format!("line {} is cut short", self.number)
            };
            return Err(bad(&self.path, &why));
        }
        Ok(Some(&self.line))
    }

    /// The next entry, `None` at the end.
    pub(super) fn next_entry(&mut self) -> Result<Option<ManifestEntry>, StoreError> {
        let Some(line) = self.read_line()? else {
            return Ok(None);
        };
        let entry: ManifestEntry = serde_json::from_slice(line)
            .map_err(|e| bad(&self.path, &format!("line {}: {e}", self.number)))?;
        let path = Path::new(entry.path());
        if path.as_os_str().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad(
                &self.path,
                &format!(
                    "line {}: `{}` is not a relative path",
                    self.number,
                    path.display()
                ),
            ));
        }
        if let Some(previous) = &self.previous
            && path <= Path::new(previous)
        {
            return Err(bad(
                &self.path,
                &format!("line {}: `{}` is out of order", self.number, path.display()),
            ));
        }
        self.previous = Some(entry.path().to_owned());
        Ok(Some(entry))
    }
}

fn bad(path: &Path, reason: &str) -> StoreError {
    StoreError::BadManifest {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Reads a whole manifest from `bytes` by the rules `verify` reads one
/// with (header, line bound, relative paths in strictly increasing
/// order); `path` names it in errors. For tests and fuzzing.
pub fn read_entries(path: &Path, bytes: &[u8]) -> Result<Vec<ManifestEntry>, StoreError> {
    let mut reader = Reader::start(path.to_owned(), bytes)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    Ok(entries)
}

/// Compares the tree at `root` with its manifest, never following a
/// symlink: both are walked in path order and merged.
pub(super) fn check(root: &Path, manifest: &mut Reader) -> Result<Checked, StoreError> {
    let mut checked = Checked::default();
    let mut buffer = vec![0; HASH_BUFFER_BYTES];
    let mut walk = Walk::new(root)?;
    let mut found = walk.next()?;
    let mut expected = manifest.next_entry()?;
    loop {
        let order = match (&found, &expected) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(f), Some(e)) => f.relative.as_path().cmp(Path::new(e.path())),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some(f) = found.take() {
                    checked.differences.push(Difference {
                        path: f.relative.to_string_lossy().into_owned(),
                        kind: DifferenceKind::Extra,
                    });
                }
                found = walk.next()?;
            }
            std::cmp::Ordering::Greater => {
                if let Some(e) = expected.take() {
                    if matches!(e, ManifestEntry::File { .. }) {
                        checked.files += 1;
                    }
                    checked.differences.push(Difference {
                        path: e.path().to_owned(),
                        kind: DifferenceKind::Missing,
                    });
                }
                expected = manifest.next_entry()?;
            }
            std::cmp::Ordering::Equal => {
                if let (Some(f), Some(e)) = (found.take(), expected.take()) {
                    if matches!(e, ManifestEntry::File { .. }) {
                        checked.files += 1;
                    }
                    compare(&f, &e, &mut buffer, &mut checked.differences)?;
                    if f.meta.is_dir() && matches!(e, ManifestEntry::Dir { .. }) {
                        walk.descend(&f)?;
                    }
                }
                found = walk.next()?;
                expected = manifest.next_entry()?;
            }
        }
    }
    Ok(checked)
}

/// Compares one entry found on disk with its record.
fn compare(
    found: &Found,
    expected: &ManifestEntry,
    buffer: &mut [u8],
    differences: &mut Vec<Difference>,
) -> Result<(), StoreError> {
    let kind = found.meta.file_type();
    let mut differ = |kind| {
        differences.push(Difference {
            path: expected.path().to_owned(),
            kind,
        })
    };
    let mode = permission_bits(&found.meta);
    let mode_differs = |want: u32| {
        (mode != want).then_some(DifferenceKind::Mode {
            expected: want,
            actual: mode,
        })
    };
    match expected {
        ManifestEntry::File {
            mode: want_mode,
            size,
            sha256,
            ..
        } => {
            if !kind.is_file() {
                differ(DifferenceKind::Modified);
                return Ok(());
            }
            // Hashed only when the size leaves the content in doubt.
            if found.meta.len() != *size || hash_file(&found.path, buffer)? != *sha256 {
                differ(DifferenceKind::Modified);
            }
            if let Some(difference) = mode_differs(*want_mode) {
                differ(difference);
            }
        }
        ManifestEntry::Dir {
            mode: want_mode, ..
        } => {
            if !kind.is_dir() {
                differ(DifferenceKind::Modified);
            } else if let Some(difference) = mode_differs(*want_mode) {
                differ(difference);
            }
        }
        ManifestEntry::Symlink { target, .. } => {
            if !kind.is_symlink() {
                differ(DifferenceKind::Modified);
            } else {
                let actual = std::fs::read_link(&found.path)
                    .map_err(io_err("cannot read link", &found.path))?;
                if actual.as_os_str() != target.as_str() {
                    differ(DifferenceKind::Target {
                        expected: target.clone(),
                        actual: actual.to_string_lossy().into_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A small package tree, with copkg's own files at the top (never listed)
    /// and names whose byte order differs from a plain string sort of paths.
    fn tree() -> tempfile::TempDir {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        for dir in ["a", "bin", "etc", "lib"] {
            std::fs::create_dir(root.join(dir)).unwrap();
            chmod(&root.join(dir), 0o755);
        }
        chmod(&root.join("lib"), 0o700);
        for (file, data, mode) in [
            ("a/b", &b"b\n"[..], 0o644),
            ("a-c", b"c\n", 0o600),
            ("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
            ("etc/hello.conf", b"greeting=hello\n", 0o644),
        ] {
            std::fs::write(root.join(file), data).unwrap();
            chmod(&root.join(file), mode);
        }
        std::fs::hard_link(root.join("etc/hello.conf"), root.join("lib/hard")).unwrap();
        std::os::unix::fs::symlink("../etc/hello.conf", root.join("lib/conf")).unwrap();
        std::fs::write(root.join(MARKER_FILE), "{}").unwrap();
        temp
    }

    fn check_tree(root: &Path) -> Result<Option<Checked>, StoreError> {
        match Reader::open(root)? {
            Some(mut reader) => check(root, &mut reader).map(Some),
            None => Ok(None),
        }
    }

    #[test]
    fn the_walk_records_every_entry_in_path_order() {
        let temp = tree();
        let root = temp.path();
        write(root, None).unwrap();
        let text = std::fs::read_to_string(root.join(MANIFEST_FILE)).unwrap();
        let conf = sha(b"greeting=hello\n");
        let want = [
            r#"{"copkg_manifest":1}"#.to_owned(),
            r#"{"type":"dir","path":"a","mode":"0755"}"#.to_owned(),
            format!(
                r#"{{"type":"file","path":"a/b","mode":"0644","size":2,"sha256":"{}"}}"#,
                sha(b"b\n")
            ),
            format!(
                r#"{{"type":"file","path":"a-c","mode":"0600","size":2,"sha256":"{}"}}"#,
                sha(b"c\n")
            ),
            r#"{"type":"dir","path":"bin","mode":"0755"}"#.to_owned(),
            format!(
                r#"{{"type":"file","path":"bin/hello","mode":"0755","size":18,"sha256":"{}"}}"#,
                sha(b"#!/bin/sh\necho hi\n")
            ),
            r#"{"type":"dir","path":"etc","mode":"0755"}"#.to_owned(),
            format!(
                r#"{{"type":"file","path":"etc/hello.conf","mode":"0644","size":15,"sha256":"{conf}"}}"#
            ),
            r#"{"type":"dir","path":"lib","mode":"0700"}"#.to_owned(),
            r#"{"type":"symlink","path":"lib/conf","target":"../etc/hello.conf"}"#.to_owned(),
            format!(
                r#"{{"type":"file","path":"lib/hard","mode":"0644","size":15,"sha256":"{conf}"}}"#
            ),
        ];
        assert_eq!(text, want.join("\n") + "\n");
        // Written once: a second write would not replace it.
        assert!(write(root, None).is_err());
        assert_eq!(
            check_tree(root).unwrap(),
            Some(Checked {
                files: 5,
                differences: vec![]
            })
        );
    }

    #[test]
    fn each_change_is_reported_without_following_links() {
        use DifferenceKind::*;
        type Change = fn(&Path);
        type Want = Vec<(&'static str, DifferenceKind)>;
        let mode = |expected, actual| Mode { expected, actual };
        let cases: [(&str, Change, Want); 10] = [
            (
                "same size, other content",
                |r| std::fs::write(r.join("bin/hello"), "#!/bin/sh\necho ho\n").unwrap(),
                vec![("bin/hello", Modified)],
            ),
            (
                "grown",
                |r| std::fs::write(r.join("a/b"), "bb\n").unwrap(),
                vec![("a/b", Modified)],
            ),
            (
                "removed",
                |r| std::fs::remove_file(r.join("a-c")).unwrap(),
                vec![("a-c", Missing)],
            ),
            (
                "added, a dir once with its contents",
                |r| {
                    std::fs::write(r.join("etc/new"), "").unwrap();
                    std::fs::create_dir_all(r.join("lib/new/deep")).unwrap();
                },
                vec![("etc/new", Extra), ("lib/new", Extra)],
            ),
            (
                "chmod of a file and a dir",
                |r| {
                    chmod(&r.join("bin/hello"), 0o777);
                    chmod(&r.join("etc"), 0o2755);
                },
                vec![
                    ("bin/hello", mode(0o755, 0o777)),
                    ("etc", mode(0o755, 0o2755)),
                ],
            ),
            (
                "content and mode",
                |r| {
                    std::fs::write(r.join("a-c"), "d\n").unwrap();
                    chmod(&r.join("a-c"), 0o644);
                },
                vec![("a-c", Modified), ("a-c", mode(0o600, 0o644))],
            ),
            (
                "retargeted symlink",
                |r| {
                    std::fs::remove_file(r.join("lib/conf")).unwrap();
                    std::os::unix::fs::symlink("hard", r.join("lib/conf")).unwrap();
                },
                vec![(
                    "lib/conf",
                    Target {
                        expected: "../etc/hello.conf".into(),
                        actual: "hard".into(),
                    },
                )],
            ),
            (
                "a file replaced by a symlink to an identical file",
                |r| {
                    std::fs::remove_file(r.join("lib/hard")).unwrap();
                    std::os::unix::fs::symlink("../etc/hello.conf", r.join("lib/hard")).unwrap();
                },
                vec![("lib/hard", Modified)],
            ),
            (
                "a dir replaced by a symlink to a copy",
                |r| {
                    std::fs::rename(r.join("a"), r.join("lib/a")).unwrap();
                    std::os::unix::fs::symlink("lib/a", r.join("a")).unwrap();
                },
                vec![("a", Modified), ("a/b", Missing), ("lib/a", Extra)],
            ),
            (
                "copkg's own files are not entries",
                |r| std::fs::remove_file(r.join(MARKER_FILE)).unwrap(),
                vec![],
            ),
        ];
        for (name, change, want) in cases {
            let temp = tree();
            write(temp.path(), None).unwrap();
            change(temp.path());
            let checked = check_tree(temp.path()).unwrap().unwrap();
            let got: Vec<(&str, DifferenceKind)> = checked
                .differences
                .iter()
                .map(|d| (d.path.as_str(), d.kind.clone()))
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(checked.files, 5, "{name}");
        }
    }

    /// The manifest written from what unpacking made is the one a walk of
    /// the unpacked tree gives: same entries, modes, sizes, digests, order.
    #[test]
    fn the_manifest_from_unpacking_is_the_one_read_from_disk() {
        let source = tree();
        // copkg's own files at its top are never packed.
        for own in [MARKER_FILE, MANIFEST_FILE] {
            let _ = std::fs::remove_file(source.path().join(own));
        }
        let mut archive = Vec::new();
        crate::pack::write_archive(source.path(), &mut archive).unwrap();
        let out = tempfile::tempdir().unwrap();
        let unpacked = crate::extract::unpack_tar_gz(
            &archive[..],
            out.path(),
            &crate::extract::Limits::default_for(None),
        )
        .unwrap()
        .unpacked;
        write(out.path(), Some(&unpacked.tree)).unwrap();
        let from_unpacking = std::fs::read_to_string(out.path().join(MANIFEST_FILE)).unwrap();
        std::fs::remove_file(out.path().join(MANIFEST_FILE)).unwrap();
        write(out.path(), None).unwrap();
        let from_disk = std::fs::read_to_string(out.path().join(MANIFEST_FILE)).unwrap();
        assert_eq!(from_unpacking, from_disk);
        assert!(from_disk.lines().count() > 8, "{from_disk}");
    }

    #[test]
    fn an_altered_manifest_is_refused_not_trusted() {
        let entry = |path: &str| {
            format!(r#"{{"type":"file","path":"{path}","mode":"0644","size":2,"sha256":"x"}}"#)
        };
        let header = r#"{"copkg_manifest":1}"#;
        let long = format!("{header}\n{}\n", entry(&"x".repeat(LINE_LIMIT)));
        let cases = [
            (String::new(), "it is empty"),
            (
                "{\"copkg_manifest\":2}\n".to_owned(),
                "format version 2 is not 1",
            ),
            ("[]\n".to_owned(), "line 1 is not a manifest header"),
            (format!("{header}\n{}", entry("a/b")), "line 2 is cut short"),
            (
                format!("{header}\n{}\n{}\n", entry("b"), entry("a/b")),
                "line 3: `a/b` is out of order",
            ),
            (
                format!("{header}\n{}\n{}\n", entry("a/b"), entry("a/b")),
                "line 3: `a/b` is out of order",
            ),
            (
                format!("{header}\n{}\n", entry("../etc/passwd")),
                "line 2: `../etc/passwd` is not a relative path",
            ),
            (
                format!(
                    "{header}\n{}\n",
                    r#"{"type":"dir","path":"a","mode":"0755","x":1}"#
                ),
                "line 2: unknown field `x`",
            ),
            (
                format!(
                    "{header}\n{}\n",
                    r#"{"type":"dir","path":"a","mode":"755"}"#
                ),
                "line 2: invalid mode `755`",
            ),
            (long, "line 2 is longer than 65536 bytes"),
        ];
        for (text, reason) in cases {
            let temp = tree();
            std::fs::write(temp.path().join(MANIFEST_FILE), &text).unwrap();
            match check_tree(temp.path()) {
                Err(StoreError::BadManifest { reason: got, .. }) => {
                    assert!(got.starts_with(reason), "{text:?}: {got}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // A link in the manifest's place is not followed.
        let temp = tree();
        let elsewhere = temp.path().join("a/manifest");
        write(temp.path(), None).unwrap();
        std::fs::rename(temp.path().join(MANIFEST_FILE), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, temp.path().join(MANIFEST_FILE)).unwrap();
        assert!(matches!(
            check_tree(temp.path()),
            Err(StoreError::BadManifest { reason, .. }) if reason == "it is a symlink"
        ));
        // No manifest at all is its own answer, not an error.
        assert_eq!(check_tree(tree().path()).unwrap(), None);
    }
}
