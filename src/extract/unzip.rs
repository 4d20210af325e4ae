//! Safe unpack of `.zip` package archives (the original copkg's format),
//! read from their central directory, which is authoritative.
//!
//! Every entry goes through the same [`Unpacker::add`] as a tar entry, so
//! names, link targets, modes, duplicates and limits follow the one set of
//! rules. What is zip's own is checked here, before anything is written:
//! each local header must agree with its central directory entry (name,
//! sizes, CRC-32, compression method, flags), no entry may overlap another
//! or hide between them, no name may appear twice, nothing may follow the
//! end-of-central-directory record, no entry may be encrypted or use a
//! method other than stored or deflate, and the declared sizes must fit the
//! limit. While inflating, an entry's data must be exactly its declared size
//! and match its CRC-32, so a bomb stops at the size it declared.
//!
//! Types and modes come from the upper 16 bits of the external attributes
//! when the entry was made on Unix (`S_IFLNK` is a symlink whose data is its
//! target); otherwise files are 0644 and directories (names ending in `/`)
//! 0755. Mtimes come from the extended-timestamp extra field (UTC) when
//! present, else from the DOS date and time, read as local time as `unzip`
//! reads it. Names are taken as UTF-8 bytes, whatever the language-encoding
//! flag says; a backslash is part of a name, as in tar, never a separator.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use zip::read::{ArchiveOffset, Config};
use zip::result::ZipError;
use zip::{CompressionMethod, DateTime, ExtraField, System, ZipArchive, ZipReadOptions};

use super::{
    DIR_BYTES, ExtractError, Format, Kind, Limits, MAX_PATH_BYTES, Unpacked, Unpacker,
    zip_data_error,
};

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;
/// General-purpose flag bits that mark an entry as encrypted (traditional
/// or strong encryption).
const ENCRYPTION_FLAGS: u16 = 0x0001 | 0x0040;
/// The end-of-central-directory record without its comment.
const EOCD_BYTES: u64 = 22;
const EOCD_SIGNATURE: [u8; 4] = *b"PK\x05\x06";
const CENTRAL_HEADER_BYTES: u64 = 46;
const CENTRAL_HEADER_SIGNATURE: [u8; 4] = *b"PK\x01\x02";

/// Unpacks the zip archive `archive` into `dest`, which must be a fresh,
/// empty directory. Refuses the archive as soon as an entry breaks a rule;
/// the caller discards `dest` on any error.
pub fn unpack_zip(archive: &File, dest: &Path, limits: &Limits) -> Result<Unpacked, ExtractError> {
    let len = archive.metadata().map_err(ExtractError::Read)?.len();
    if len == 0 {
        return Err(ExtractError::corrupt("empty archive (0 bytes)"));
    }
    let config = Config {
        archive_offset: ArchiveOffset::Known(0),
    };
    let mut zip = ZipArchive::with_config(config, BufReader::new(archive))
        .map_err(|e| archive_error("not a readable zip archive", e))?;
    check_nothing_follows(archive, len, zip.comment().len() as u64)?;
    if zip.is_empty() {
        return Err(ExtractError::corrupt("empty archive (no entries)"));
    }
    if zip.has_duplicate_names() {
        return Err(ExtractError::unsafe_entry(
            &duplicate_name(archive, &zip),
            "appears twice in the archive",
        ));
    }
    if zip.len() as u64 > limits.max_entries {
        return Err(ExtractError::Limit {
            what: "entry count",
            limit: limits.max_entries,
        });
    }

    // The central directory's view, checked whole before anything is written.
    let mut declared = 0u64;
    for index in 0..zip.len() {
        let entry = zip
            .by_index_data(index)
            .map_err(|e| archive_error("unreadable central directory", e))?;
        let name = entry.name_raw().to_vec();
        if entry.flags().as_u16() & ENCRYPTION_FLAGS != 0 {
            return Err(ExtractError::unsafe_entry(&name, "is encrypted"));
        }
        match entry.compression() {
            CompressionMethod::Stored | CompressionMethod::Deflated => {}
            other => {
                return Err(ExtractError::unsafe_entry(
                    &name,
                    format!(
                        "is compressed by a method copkg does not read ({other:?}); only stored and deflate are"
                    ),
                ));
            }
        }
        let size = if name.ends_with(b"/") {
            DIR_BYTES
        } else {
            entry.size()
        };
        declared = declared.saturating_add(size);
        drop(entry);
        if let Err(e) = zip.by_index_with_options(
            index,
            ZipReadOptions::new().enforce_header_consistency(true),
        ) {
            return Err(ExtractError::unsafe_entry(
                &name,
                format!(
                    "has a local header that disagrees with the central directory ({})",
                    reason(&e)
                ),
            ));
        }
    }
    if declared > limits.max_unpacked_bytes {
        return Err(ExtractError::Limit {
            what: "unpacked size",
            limit: limits.max_unpacked_bytes,
        });
    }
    // Entries that overlap, or a local header the central directory does not
    // list: bytes one reader would see and another would not.
    zip.validate_header_consistency()
        .map_err(|e| archive_error("inconsistent archive", e))?;

    let mut unpacker = Unpacker::new(dest, limits, Format::Zip);
    for index in 0..zip.len() {
        let mut file = zip
            .by_index(index)
            .map_err(|e| archive_error("unreadable entry", e))?;
        let name = file.name_raw().to_vec();
        let size = file.size();
        let mtime = mtime(&file);
        let unix_mode = (file.system() == System::Unix)
            .then(|| file.external_attributes() >> 16)
            .filter(|&mode| mode != 0);
        let (kind, mode) = kind_and_mode(&name, unix_mode);
        match kind {
            Kind::Symlink(_) => {
                let target = read_link_target(&mut file, &name, size)?;
                unpacker.add(
                    &name,
                    Kind::Symlink(Some(target)),
                    0,
                    mode,
                    mtime,
                    &mut io::empty(),
                )?;
            }
            kind => unpacker.add(&name, kind, size, mode, mtime, &mut file)?,
        }
    }
    unpacker.finish_dirs()?;
    Ok(unpacker.into_unpacked())
}

/// What an entry is, by its name (a trailing `/` is a directory) and, when
/// it was made on Unix, its mode's type bits, which must agree; and its
/// permission bits (0644 for a file, 0755 for a directory without a mode).
fn kind_and_mode(name: &[u8], unix_mode: Option<u32>) -> (Kind, u32) {
    let is_dir = name.ends_with(b"/");
    let Some(mode) = unix_mode else {
        return if is_dir {
            (Kind::Dir, 0o755)
        } else {
            (Kind::File, 0o644)
        };
    };
    let refused = |what: &str| Kind::Refused(what.to_owned());
    let kind = match mode & S_IFMT {
        0 | S_IFDIR if is_dir => Kind::Dir,
        0 | S_IFREG => Kind::File,
        S_IFLNK => Kind::Symlink(None),
        S_IFDIR => refused("is a directory by its mode but its name does not end in `/`"),
        S_IFCHR => refused("is a character device"),
        S_IFBLK => refused("is a block device"),
        S_IFIFO => refused("is a fifo"),
        S_IFSOCK => refused("is a socket"),
        other => Kind::Refused(format!("is of an unknown type (mode {other:o})")),
    };
    let kind = match kind {
        Kind::File | Kind::Symlink(_) if is_dir => {
            refused("has a name ending in `/` (a directory) but is not a directory by its mode")
        }
        kind => kind,
    };
    (kind, mode & 0o7777)
}

/// A symlink's target: its data, at most a path's length, read to its end
/// (which checks its CRC-32).
fn read_link_target<R: Read>(
    file: &mut R,
    name: &[u8],
    size: u64,
) -> Result<Vec<u8>, ExtractError> {
    if size > MAX_PATH_BYTES as u64 {
        return Err(ExtractError::unsafe_entry(
            name,
            format!("has a link target of {size} bytes (limit {MAX_PATH_BYTES})"),
        ));
    }
    let mut target = Vec::with_capacity(size as usize);
    file.take(size + 1)
        .read_to_end(&mut target)
        .map_err(|e| zip_data_error(name, size, e))?;
    if target.len() as u64 != size {
        return Err(Format::Zip.short_data(name, target.len() as u64, size));
    }
    Ok(target)
}

/// The entry's mtime: the extended-timestamp field's (UTC), else the DOS
/// date and time as local time.
fn mtime<R: Read>(file: &zip::read::ZipFile<'_, R>) -> Option<i64> {
    let extended = file.extra_data_fields().find_map(|field| match field {
        ExtraField::ExtendedTimestamp(stamp) => stamp.mod_time(),
        _ => None,
    });
    match extended {
        Some(seconds) => Some(i64::from(seconds)),
        None => file.last_modified().and_then(local_time),
    }
}

/// Seconds since the epoch of a DOS date and time in the local time zone.
fn local_time(when: DateTime) -> Option<i64> {
    use nix::libc;
    // SAFETY: `tm` is plain data (its zone pointer may be null); zeroed is a
    // valid value for it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::from(when.year()) - 1900;
    tm.tm_mon = i32::from(when.month()) - 1;
    tm.tm_mday = i32::from(when.day());
    tm.tm_hour = i32::from(when.hour());
    tm.tm_min = i32::from(when.minute());
    tm.tm_sec = i32::from(when.second());
    tm.tm_isdst = -1;
    // SAFETY: mktime only reads and normalizes the struct it is given, which
    // lives for the call; it keeps no pointer to it.
    let seconds = unsafe { libc::mktime(&mut tm) };
    (seconds != -1).then_some(seconds)
}

/// Refuses bytes after the end-of-central-directory record and its comment,
/// as anything after a tar's end is refused.
fn check_nothing_follows(archive: &File, len: u64, comment: u64) -> Result<(), ExtractError> {
    let trailing = || ExtractError::corrupt("data after the end of the central directory");
    let Some(at) = len.checked_sub(EOCD_BYTES + comment) else {
        return Err(trailing());
    };
    let mut record = [0u8; EOCD_BYTES as usize];
    archive
        .read_exact_at(&mut record, at)
        .map_err(ExtractError::Read)?;
    let comment_len = u64::from(u16::from_le_bytes([record[20], record[21]]));
    if record[..4] != EOCD_SIGNATURE || comment_len != comment {
        return Err(trailing());
    }
    Ok(())
}

/// The name of an entry whose name an earlier entry of the central directory
/// already had (the zip crate keeps one entry per name): found by walking the
/// central directory's headers for the first one it did not keep.
fn duplicate_name(archive: &File, zip: &ZipArchive<BufReader<&File>>) -> Vec<u8> {
    let kept: HashSet<u64> = (0..zip.len())
        .filter_map(|index| zip.by_index_data(index).ok())
        .map(|entry| entry.central_header_start())
        .collect();
    let mut at = zip.central_directory_start();
    let mut header = [0u8; CENTRAL_HEADER_BYTES as usize];
    while archive.read_exact_at(&mut header, at).is_ok() && header[..4] == CENTRAL_HEADER_SIGNATURE
    {
        let field =
            |offset: usize| u64::from(u16::from_le_bytes([header[offset], header[offset + 1]]));
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        if !kept.contains(&at) {
            let mut name = vec![0u8; name_len as usize];
            if archive
                .read_exact_at(&mut name, at + CENTRAL_HEADER_BYTES)
                .is_ok()
            {
                return name;
            }
            break;
        }
        at += CENTRAL_HEADER_BYTES + name_len + extra_len + comment_len;
    }
    b"?".to_vec()
}

/// The zip crate's message without its prefixes.
fn reason(err: &ZipError) -> String {
    match err {
        ZipError::InvalidArchive(message) => message
            .trim_start_matches("header inconsistency detected: ")
            .to_owned(),
        ZipError::UnsupportedArchive(message) => (*message).to_owned(),
        other => other.to_string(),
    }
}

/// An error of the archive as a whole; a failure to read the file is not
/// the archive's fault.
fn archive_error(what: &str, err: ZipError) -> ExtractError {
    match err {
        ZipError::Io(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
            ) =>
        {
            ExtractError::Read(e)
        }
        err => ExtractError::corrupt(format!("{what}: {}", reason(&err))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names_and_unix_modes() {
        let kind = |name: &str, mode: Option<u32>| {
            let (kind, perms) = kind_and_mode(name.as_bytes(), mode);
            let kind = match kind {
                Kind::File => "file".to_owned(),
                Kind::Dir => "dir".to_owned(),
                Kind::Symlink(_) => "symlink".to_owned(),
                Kind::HardLink(_) => "hardlink".to_owned(),
                Kind::Refused(why) => why,
            };
            (kind, perms)
        };
        assert_eq!(kind("a", None), ("file".into(), 0o644));
        assert_eq!(kind("a/", None), ("dir".into(), 0o755));
        assert_eq!(kind("a", Some(0o100_755)), ("file".into(), 0o755));
        assert_eq!(kind("a", Some(0o600)), ("file".into(), 0o600));
        assert_eq!(kind("a/", Some(0o040_750)), ("dir".into(), 0o750));
        assert_eq!(kind("a/", Some(0o700)), ("dir".into(), 0o700));
        assert_eq!(kind("a", Some(0o120_777)), ("symlink".into(), 0o777));
        assert_eq!(kind("a", Some(0o104_755)).1, 0o4755, "add() drops it");
        for (name, mode, want) in [
            ("a", 0o040_755, "is a directory by its mode"),
            ("a/", 0o100_644, "has a name ending in `/`"),
            ("a/", 0o120_777, "has a name ending in `/`"),
            ("a", 0o020_644, "is a character device"),
            ("a", 0o060_644, "is a block device"),
            ("a", 0o010_644, "is a fifo"),
            ("a", 0o140_644, "is a socket"),
            ("a", 0o170_644, "is of an unknown type"),
        ] {
            let (why, _) = kind(name, Some(mode));
            assert!(why.starts_with(want), "{name} {mode:o}: {why}");
        }
    }
}
