//! What the archive targets share: a scratch dir per input, removed after
//! it, and the checks every unpack must pass whatever the input.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use copkg::extract::{Limits, RESERVED_TOP_LEVEL, Unpacked};

/// Limits small enough that a bomb costs milliseconds, large enough for
/// every seed.
pub const FUZZ_LIMITS: Limits = Limits {
    max_unpacked_bytes: 4 << 20,
    max_entries: 2000,
};

/// A fresh temp dir (in `TMPDIR`: scripts/fuzz points it at /dev/shm)
/// holding the empty target dir `dest` and nothing else; removed on drop.
pub struct Scratch {
    base: PathBuf,
    dest: PathBuf,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// Makes the dirs.
    pub fn new() -> Scratch {
        let base = tempfile::Builder::new()
            .prefix("copkg-fuzz.")
            .tempdir()
            .expect("a temp dir")
            .keep();
        let dest = base.join("dest");
        fs::create_dir(&dest).expect("the target dir");
        Scratch { base, dest }
    }

    /// The dir to unpack into.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The unpack, accepted or not, wrote nothing beside its target dir.
    pub fn assert_nothing_beside_dest(&self) {
        let names: Vec<_> = fs::read_dir(&self.base)
            .expect("the scratch dir")
            .map(|e| e.expect("a scratch dir entry").file_name())
            .collect();
        assert_eq!(names, ["dest"], "an unpack wrote beside its target dir");
    }

    /// An accepted archive made a tree that keeps every rule: only files,
    /// dirs and symlinks; no special mode bits and no group or other write;
    /// dirs the owner can use; symlinks that resolve inside the tree; none
    /// of copkg's reserved names at the top; within the limits.
    pub fn assert_safe_tree(&self, unpacked: &Unpacked, limits: &Limits) {
        assert!(unpacked.entries <= limits.max_entries, "{unpacked:?}");
        assert!(
            unpacked.unpacked_bytes <= limits.max_unpacked_bytes,
            "{unpacked:?}"
        );
        for name in RESERVED_TOP_LEVEL {
            assert!(
                fs::symlink_metadata(self.dest.join(name)).is_err(),
                "reserved name {name} unpacked"
            );
        }
        let root = fs::canonicalize(&self.dest).expect("the target dir");
        let mut inodes = HashSet::new();
        let mut bytes = 0u64;
        let mut pending = vec![self.dest.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).expect("a dir of the tree") {
                let path = entry.expect("a dir entry").path();
                let meta = fs::symlink_metadata(&path).expect("an entry of the tree");
                let mode = meta.permissions().mode() & 0o7777;
                let kind = meta.file_type();
                if kind.is_symlink() {
                    let target = fs::read_link(&path).expect("a link");
                    assert!(
                        target.is_relative(),
                        "{} -> {}",
                        path.display(),
                        target.display()
                    );
                    if let Ok(resolved) = fs::canonicalize(&path) {
                        assert!(
                            resolved.starts_with(&root),
                            "{} resolves outside the tree, to {}",
                            path.display(),
                            resolved.display()
                        );
                    }
                } else if kind.is_dir() {
                    assert_eq!(mode & 0o7022, 0, "{} has mode {mode:o}", path.display());
                    assert_eq!(mode & 0o700, 0o700, "{} has mode {mode:o}", path.display());
                    pending.push(path);
                } else if kind.is_file() {
                    assert_eq!(mode & 0o7022, 0, "{} has mode {mode:o}", path.display());
                    if inodes.insert(meta.ino()) {
                        bytes += meta.len();
                    }
                } else {
                    panic!("{} is a {kind:?}", path.display());
                }
            }
        }
        assert!(bytes <= limits.max_unpacked_bytes, "{bytes} bytes unpacked");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Dirs always keep owner rwx, so removal cannot fail on modes; a
        // failure would fill the disk over millions of runs: report it.
        if let Err(err) = fs::remove_dir_all(&self.base)
            && !std::thread::panicking()
        {
            panic!("cannot remove {}: {err}", self.base.display());
        }
    }
}
