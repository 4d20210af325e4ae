//! Safe unpack of package archives — `.tar.gz` streamed here, `.zip` from a
//! file in `extract/unzip.rs` — and the one set of rules for what a package
//! may hold (names, link targets, modes, duplicates, limits: `Unpacker::add`,
//! whatever the format), which `pack` applies too.
//!
//! One pass over the compressed bytes hashes them (sha256), inflates them
//! (several gzip members are one stream, as for gzip and GNU tar; zero bytes
//! after the last member are padding) and unpacks the tar stream into a
//! fresh, empty directory. Modes are kept but never widened, mtimes kept. Every entry is vetted
//! before anything is written: the rules of Python's PEP 706 `data` filter and
//! more (see `shared/SECURITY.md` part A). The `tar` crate is used in raw mode
//! only to split the stream into headers and data; long names and PAX records
//! are read here, with bounds, and nothing is ever written through a symlink,
//! because every parent of every entry must be a directory this unpack made.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::exit::{Coded, ExitCode};

mod unzip;
mod writers;

pub use unzip::unpack_zip;

/// Names of the files copkg writes at the top of an install dir (the
/// completion marker and the install manifest); an archive may not carry them.
pub const RESERVED_TOP_LEVEL: &[&str] = &[crate::store::MARKER_FILE, crate::store::MANIFEST_FILE];

const MAX_COMPONENT_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 4096;
/// Bound on one PAX extension header; real ones are a few hundred bytes.
const MAX_PAX_BYTES: u64 = 64 * 1024;
/// Bound on the zero padding after the end-of-archive blocks, and after the
/// gzip data (old npm tarballs have some); anything longer is not padding.
const MAX_TRAILING_ZEROS: u64 = 1024 * 1024;
/// What a directory counts toward the size limit: a block, as on disk.
const DIR_BYTES: u64 = 4096;
const COPY_BUFFER_BYTES: usize = 256 * 1024;
const GZIP_BUFFER_BYTES: usize = 128 * 1024;
/// Dirty bytes of one file after which writeback is started.
const WRITEBACK_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Files smaller than this are not written back one by one (see
/// `write_file`).
const SMALL_FILE_BYTES: u64 = 1024 * 1024;

/// Limits an archive must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of file content the archive may unpack to.
    pub max_unpacked_bytes: u64,
    /// Most entries (files, dirs, links) the archive may hold.
    pub max_entries: u64,
}

impl Limits {
    /// Default size limit: the larger of 1 GiB and 50× the compressed size.
    pub fn default_for(compressed_len: Option<u64>) -> Self {
        const GIB: u64 = 1 << 30;
        Limits {
            max_unpacked_bytes: compressed_len.map_or(GIB, |len| len.saturating_mul(50).max(GIB)),
            max_entries: 1_000_000,
        }
    }
}

/// Why an archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry breaks a safety rule; the whole archive is refused.
    #[error("unsafe archive: entry `{entry}` {reason}")]
    Unsafe {
        /// The entry name as far as it could be shown.
        entry: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The archive is not a well-formed gzip-compressed tar stream.
    #[error("corrupt archive: {reason}")]
    Corrupt {
        /// What is malformed.
        reason: String,
    },
    /// The archive exceeds a configured limit.
    #[error("archive exceeds the {what} limit of {limit}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
    },
    /// Reading the archive's bytes from their source failed.
    #[error("reading the archive failed")]
    Read(#[source] io::Error),
    /// Writing into the target directory failed.
    #[error("writing {} failed", path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Coded for ExtractError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ExtractError::Unsafe { .. }
            | ExtractError::Corrupt { .. }
            | ExtractError::Limit { .. } => ExitCode::UnsafeArchive,
            ExtractError::Read(_) | ExtractError::Write { .. } => ExitCode::Failure,
        }
    }
}

impl ExtractError {
    fn unsafe_entry(entry: &[u8], reason: impl Into<String>) -> Self {
        ExtractError::Unsafe {
            entry: String::from_utf8_lossy(entry).escape_debug().to_string(),
            reason: reason.into(),
        }
    }

    fn corrupt(reason: impl Into<String>) -> Self {
        ExtractError::Corrupt {
            reason: reason.into(),
        }
    }

    /// Corrupt data of one entry, named.
    fn corrupt_entry(entry: &[u8], reason: impl std::fmt::Display) -> Self {
        ExtractError::Corrupt {
            reason: format!(
                "entry `{}` {reason}",
                String::from_utf8_lossy(entry).escape_debug()
            ),
        }
    }
}

/// What an unpack wrote, whatever the archive format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Bytes of file content written.
    pub unpacked_bytes: u64,
    /// Entries unpacked (files, dirs, links).
    pub entries: u64,
    /// Entries a service's account (not the owner) could not read: files
    /// without read, dirs without read and search permission for others.
    pub unreadable: Vec<String>,
    /// Everything unpacked, by `/`-separated path below the destination,
    /// in path order (component by component): what the manifest records,
    /// known without reading the tree back.
    pub tree: Vec<(String, TreeEntry)>,
}

/// What unpacking a `.tar.gz` stream produced: the tree, and the digest of
/// the stream, hashed as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarGzUnpacked {
    /// Lowercase hex sha256 of every compressed byte read.
    pub sha256: String,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// What was written.
    pub unpacked: Unpacked,
}

/// Hashes and counts what passes through it, and remembers a read error of
/// the source so that it is not mistaken for corrupt data downstream.
struct SourceReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    failure: Rc<RefCell<Option<io::Error>>>,
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
                Ok(n)
            }
            Err(err) => {
                let copy = io::Error::new(err.kind(), err.to_string());
                *self.failure.borrow_mut() = Some(err);
                Err(copy)
            }
        }
    }
}

/// Unpacks the gzip-compressed tar stream `source` into `dest`, which must be
/// a fresh, empty directory, and reads `source` to its end. Refuses the
/// archive as soon as an entry breaks a rule; the caller discards `dest` on
/// any error.
pub fn unpack_tar_gz<R: Read>(
    source: R,
    dest: &Path,
    limits: &Limits,
) -> Result<TarGzUnpacked, ExtractError> {
    let failure = Rc::new(RefCell::new(None));
    let reader = SourceReader {
        inner: source,
        hasher: Sha256::new(),
        bytes: 0,
        failure: Rc::clone(&failure),
    };
    let blame_source = |err: ExtractError| match failure.borrow_mut().take() {
        Some(source_err) => ExtractError::Read(source_err),
        None => err,
    };

    let mut buffered = BufReader::with_capacity(GZIP_BUFFER_BYTES, reader);
    let is_empty = buffered
        .fill_buf()
        .map_err(|e| blame_source(ExtractError::Read(e)))?
        .is_empty();
    if is_empty {
        return Err(ExtractError::corrupt("empty archive (0 bytes)"));
    }
    let members = Members::new(buffered);
    let mut unpacker = Unpacker::new(dest, limits, Format::Tar);
    let members = unpacker.run(members).map_err(&blame_source)?;
    unpacker.finish_dirs()?;

    // The gzip data has ended (each member's CRC and length checked); only
    // zero padding may follow it.
    let mut buffered = members.into_rest();
    let mut zeros = 0u64;
    loop {
        let chunk = buffered
            .fill_buf()
            .map_err(|e| blame_source(ExtractError::Read(e)))?;
        if chunk.is_empty() {
            break;
        }
        if chunk.iter().any(|&b| b != 0) {
            return Err(ExtractError::corrupt("trailing data after the gzip stream"));
        }
        zeros += chunk.len() as u64;
        if zeros > MAX_TRAILING_ZEROS {
            return Err(ExtractError::corrupt(
                "too much padding after the gzip stream",
            ));
        }
        let n = chunk.len();
        buffered.consume(n);
    }
    let reader = buffered.into_inner();
    Ok(TarGzUnpacked {
        sha256: hex(&reader.hasher.finalize()),
        compressed_bytes: reader.bytes,
        unpacked: unpacker.into_unpacked(),
    })
}

/// The decompressed bytes of every gzip member in a row, as one stream:
/// after a member ends, another starts only where the gzip magic follows;
/// anything else is left for the caller to judge (zero padding or not).
struct Members<R: BufRead> {
    current: Option<flate2::bufread::GzDecoder<R>>,
    rest: Option<R>,
}

impl<R: BufRead> Members<R> {
    fn new(source: R) -> Self {
        Members {
            current: Some(flate2::bufread::GzDecoder::new(source)),
            rest: None,
        }
    }

    /// The source after the last member (call once the stream is read to its end).
    fn into_rest(self) -> R {
        match (self.rest, self.current) {
            (Some(rest), _) => rest,
            (None, Some(decoder)) => decoder.into_inner(),
            (None, None) => unreachable!("a Members always holds its source"),
        }
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This member has ended: is another one next?
            let mut source = self
                .current
                .take()
                .map(|d| d.into_inner())
                .expect("just read");
            let next = source.fill_buf()?;
            if next.first() == Some(&0x1f) {
                self.current = Some(flate2::bufread::GzDecoder::new(source));
            } else {
                self.rest = Some(source);
                return Ok(0);
            }
        }
    }
}

/// An error reading a zip entry's data, named: the zip crate reports a
/// CRC-32 mismatch, and data beyond the declared size, as invalid data.
fn zip_data_error(name: &[u8], size: u64, err: io::Error) -> ExtractError {
    let text = err.to_string();
    let reason = if text.contains("larger than its declared") {
        format!("holds more than the {size} bytes its central directory entry declares")
    } else if text.contains("Invalid checksum") {
        "does not match its CRC-32".to_owned()
    } else {
        format!("has unreadable data ({text})")
    };
    ExtractError::corrupt_entry(name, reason)
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// What unpacking made at a path, as it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A directory made for a deeper entry, not (yet) named by one itself
    /// (mode 0755).
    ImplicitDir,
    /// A directory the archive named, with its mode as installed.
    Dir(u32),
    /// A regular file: the sha256 of what was written to it, its size and
    /// mode as installed.
    File {
        digest: [u8; 32],
        size: u64,
        mode: u32,
    },
    /// A symlink and its target.
    Symlink(String),
}

/// One entry of an unpacked tree, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A directory and its mode.
    Dir {
        /// Permission bits as installed.
        mode: u32,
    },
    /// A regular file (a hard link is one more).
    File {
        /// Permission bits as installed.
        mode: u32,
        /// Bytes of content.
        size: u64,
        /// The sha256 of its content, taken as it was written.
        sha256: [u8; 32],
    },
    /// A symlink.
    Symlink {
        /// What it points at.
        target: String,
    },
}

/// What an entry is, as any archive format describes it.
enum Kind {
    File,
    Dir,
    /// With its target, if the archive gave one.
    Symlink(Option<Vec<u8>>),
    /// With its target, if the archive gave one.
    HardLink(Option<Vec<u8>>),
    /// A type no package may hold; why, for the message.
    Refused(String),
}

/// The archive format being unpacked, for what its errors say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Tar,
    Zip,
}

impl Format {
    /// An error reading an entry's data.
    fn data_error(self, name: &[u8], size: u64, err: io::Error) -> ExtractError {
        match self {
            Format::Tar => stream_error(err),
            Format::Zip => zip_data_error(name, size, err),
        }
    }

    /// An entry's data ending before its declared size.
    fn short_data(self, name: &[u8], present: u64, size: u64) -> ExtractError {
        match self {
            Format::Tar => ExtractError::corrupt(format!(
                "archive is truncated inside `{}` ({present} of {size} bytes present)",
                String::from_utf8_lossy(name).escape_debug(),
            )),
            Format::Zip => ExtractError::corrupt_entry(
                name,
                format!(
                    "holds {present} bytes, not the {size} its central directory entry declares"
                ),
            ),
        }
    }
}

/// Extension records that apply to the next real entry.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<i64>,
    sparse: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.link.is_none()
            && self.size.is_none()
            && self.mtime.is_none()
            && !self.sparse
    }
}

/// A directory's mode and mtime, applied once everything inside it is written.
struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: Option<i64>,
}

struct Unpacker<'a> {
    dest: &'a Path,
    limits: &'a Limits,
    format: Format,
    nodes: HashMap<Vec<u8>, Node>,
    unpacked_bytes: u64,
    entries: u64,
    buffer: Vec<u8>,
    dirs: Vec<DirMeta>,
    unreadable: Vec<String>,
    /// The threads small files are written from, once the first is met
    /// (`None` inside when none could be started).
    writers: Option<Option<writers::Writers>>,
    /// The thread large files are written from, likewise.
    streamer: Option<Option<writers::Streamer>>,
}

/// Maps an I/O error from the tar stream to a corrupt-archive error; the
/// caller swaps in the source's own error when the source failed.
fn stream_error(err: io::Error) -> ExtractError {
    match err.kind() {
        io::ErrorKind::UnexpectedEof => ExtractError::corrupt("archive is truncated"),
        _ => ExtractError::corrupt(err.to_string()),
    }
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path, limits: &'a Limits, format: Format) -> Self {
        Unpacker {
            dest,
            limits,
            format,
            nodes: HashMap::new(),
            unpacked_bytes: 0,
            entries: 0,
            buffer: vec![0; COPY_BUFFER_BYTES],
            dirs: Vec::new(),
            unreadable: Vec::new(),
            writers: None,
            streamer: None,
        }
    }

    /// Notes the digests of files the writers finished.
    fn record_written(&mut self, written: Vec<writers::Written>) {
        for (key, written) in written {
            if let Some(Node::File { digest, .. }) = self.nodes.get_mut(&key) {
                *digest = written;
            }
        }
    }

    /// Waits until every file handed to the writers is written.
    fn drain_writers(&mut self) -> Result<(), ExtractError> {
        if let Some(Some(writers)) = &mut self.writers {
            let written = writers.drain()?;
            self.record_written(written);
        }
        if let Some(Some(streamer)) = &mut self.streamer {
            let written = streamer.drain()?;
            self.record_written(written);
        }
        Ok(())
    }

    fn into_unpacked(self) -> Unpacked {
        let mut tree: Vec<(String, TreeEntry)> = self
            .nodes
            .into_iter()
            .map(|(key, node)| {
                // Keys are joined from UTF-8 components.
                let path = String::from_utf8_lossy(&key).into_owned();
                let entry = match node {
                    Node::ImplicitDir => TreeEntry::Dir { mode: 0o755 },
                    Node::Dir(mode) => TreeEntry::Dir { mode },
                    Node::File { digest, size, mode } => TreeEntry::File {
                        mode,
                        size,
                        sha256: digest,
                    },
                    Node::Symlink(target) => TreeEntry::Symlink { target },
                };
                (path, entry)
            })
            .collect();
        tree.sort_unstable_by(|(a, _), (b, _)| a.split('/').cmp(b.split('/')));
        Unpacked {
            unpacked_bytes: self.unpacked_bytes,
            entries: self.entries,
            unreadable: self.unreadable,
            tree,
        }
    }

    /// Counts a directory toward the size limit.
    fn charge_dir(&mut self) -> Result<(), ExtractError> {
        self.unpacked_bytes += DIR_BYTES;
        if self.unpacked_bytes > self.limits.max_unpacked_bytes {
            return Err(ExtractError::Limit {
                what: "unpacked size",
                limit: self.limits.max_unpacked_bytes,
            });
        }
        Ok(())
    }

    /// Gives every directory the archive named its mode and mtime, deepest
    /// first, now that nothing more is written into them.
    fn finish_dirs(&mut self) -> Result<(), ExtractError> {
        self.drain_writers()?;
        self.dirs.sort_by(|a, b| b.path.cmp(&a.path));
        for dir in &self.dirs {
            let write_err = |source| ExtractError::Write {
                path: dir.path.clone(),
                source,
            };
            std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(dir.mode))
                .map_err(write_err)?;
            if let Some(mtime) = dir.mtime {
                set_mtime(&dir.path, mtime).map_err(write_err)?;
            }
        }
        Ok(())
    }

    /// Unpacks every entry, then checks that only zero padding follows the
    /// end-of-archive marker and that the decompressed stream ends cleanly.
    fn run<R: Read>(&mut self, tar_stream: R) -> Result<R, ExtractError> {
        let mut archive = tar::Archive::new(tar_stream);
        let mut pending = Pending::default();
        let mut headers = 0u64;
        {
            let entries = archive.entries().map_err(stream_error)?.raw(true);
            for entry in entries {
                let entry = entry.map_err(stream_error)?;
                headers += 1;
                if headers > self.limits.max_entries.saturating_mul(3) {
                    return Err(ExtractError::Limit {
                        what: "entry count",
                        limit: self.limits.max_entries,
                    });
                }
                self.entry(entry, &mut pending)?;
            }
        }
        if !pending.is_empty() {
            return Err(ExtractError::corrupt(
                "extension header at the end of the archive describes no entry",
            ));
        }
        if self.entries == 0 {
            return Err(ExtractError::corrupt("empty archive (no entries)"));
        }
        let mut rest = archive.into_inner();
        let mut seen = 0u64;
        loop {
            let n = rest.read(&mut self.buffer).map_err(stream_error)?;
            if n == 0 {
                break;
            }
            if self.buffer[..n].iter().any(|&b| b != 0) {
                return Err(ExtractError::corrupt(
                    "data after the end-of-archive marker",
                ));
            }
            seen += n as u64;
            if seen > MAX_TRAILING_ZEROS {
                return Err(ExtractError::corrupt(
                    "too much padding after the end-of-archive marker",
                ));
            }
        }
        Ok(rest)
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        pending: &mut Pending,
    ) -> Result<(), ExtractError> {
        let header = entry.header();
        let kind = header.entry_type();
        let size = header.entry_size().map_err(stream_error)?;

        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let slot = if kind.is_gnu_longname() {
                &mut pending.path
            } else {
                &mut pending.link
            };
            if slot.is_some() {
                return Err(ExtractError::corrupt("two long-name headers for one entry"));
            }
            if size > MAX_PATH_BYTES as u64 + 1 {
                return Err(ExtractError::unsafe_entry(
                    &header.path_bytes(),
                    format!("has a long name of {size} bytes (limit {MAX_PATH_BYTES})"),
                ));
            }
            let mut name = read_bounded(&mut entry, size)?;
            while name.last() == Some(&0) {
                name.pop();
            }
            *slot = Some(name);
            return Ok(());
        }
        if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
            if size > MAX_PAX_BYTES {
                return Err(ExtractError::corrupt(format!(
                    "PAX header of {size} bytes (limit {MAX_PAX_BYTES})"
                )));
            }
            let own_name = header.path_bytes().into_owned();
            let records = read_bounded(&mut entry, size)?;
            if kind.is_pax_local_extensions() {
                apply_pax(&records, pending).map_err(|reason| {
                    ExtractError::unsafe_entry(&own_name, format!("is a PAX header with {reason}"))
                })?;
            }
            return Ok(());
        }

        let name = pending
            .path
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link = pending
            .link
            .take()
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
        let mode = header.mode().map_err(stream_error)?;
        let mtime = match pending.mtime.take() {
            Some(mtime) => Some(mtime),
            None => header.mtime().ok().and_then(|m| i64::try_from(m).ok()),
        };
        if std::mem::take(&mut pending.sparse) || kind.is_gnu_sparse() {
            return Err(ExtractError::unsafe_entry(
                &name,
                "is a sparse file (GNU sparse formats are not supported)",
            ));
        }
        if let Some(pax_size) = pending.size.take()
            && pax_size != size
        {
            return Err(ExtractError::unsafe_entry(
                &name,
                format!("has a size of {pax_size} in its PAX record but {size} in its header"),
            ));
        }

        let kind = if kind.is_file() || kind.is_contiguous() {
            Kind::File
        } else if kind.is_dir() {
            Kind::Dir
        } else if kind.is_symlink() {
            Kind::Symlink(link)
        } else if kind.is_hard_link() {
            Kind::HardLink(link)
        } else {
            let what = if kind.is_character_special() {
                "a character device"
            } else if kind.is_block_special() {
                "a block device"
            } else if kind.is_fifo() {
                "a fifo"
            } else if kind.is_gnu_sparse() {
                "a sparse file"
            } else {
                "of an unsupported type"
            };
            Kind::Refused(format!("is {what} (type {:?})", kind.as_byte() as char))
        };
        self.add(&name, kind, size, mode, mtime, &mut entry)
    }

    /// Adds one entry, whatever the archive format: every rule for names,
    /// types, links, modes and limits is applied here. `size` is the data
    /// the entry carries, which only a regular file may have; `data` reads it.
    fn add<R: Read>(
        &mut self,
        name: &[u8],
        kind: Kind,
        size: u64,
        mode: u32,
        mtime: Option<i64>,
        data: &mut R,
    ) -> Result<(), ExtractError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ExtractError::Limit {
                what: "entry count",
                limit: self.limits.max_entries,
            });
        }
        let components = entry_components(name)?;
        if components.is_empty() {
            // `./` names the package root itself, which already exists.
            return if matches!(kind, Kind::Dir) {
                Ok(())
            } else {
                Err(ExtractError::unsafe_entry(name, "names the package root"))
            };
        }
        if components.len() == 1 && RESERVED_TOP_LEVEL.contains(&components[0]) {
            return Err(ExtractError::unsafe_entry(
                name,
                "uses a name reserved by copkg",
            ));
        }
        let key = components.join("/").into_bytes();
        if !matches!(kind, Kind::File) && size != 0 {
            return Err(ExtractError::unsafe_entry(
                name,
                format!("is not a regular file but carries {size} bytes of data"),
            ));
        }
        self.prepare_parents(name, &components)?;
        match self.nodes.get(&key) {
            None => {}
            Some(Node::ImplicitDir) if matches!(kind, Kind::Dir) => {}
            Some(_) => {
                return Err(ExtractError::unsafe_entry(
                    name,
                    "appears twice in the archive",
                ));
            }
        }
        let path = self.dest.join(components.join("/"));

        match kind {
            Kind::File => {
                let mode = file_mode(mode);
                if mode & 0o004 == 0 {
                    self.unreadable.push(components.join("/"));
                }
                // Noted before it is written: a writer may finish it before
                // write_file returns, and its digest must not be overwritten.
                self.nodes.insert(
                    key.clone(),
                    Node::File {
                        digest: PENDING_DIGEST,
                        size,
                        mode,
                    },
                );
                if let Some(digest) = self.write_file(name, &key, &path, size, mode, mtime, data)? {
                    self.nodes.insert(key, Node::File { digest, size, mode });
                }
            }
            Kind::Dir => {
                if self.nodes.get(&key) != Some(&Node::ImplicitDir) {
                    make_dir(&path)?;
                    self.charge_dir()?;
                }
                let mode = dir_mode(mode);
                if mode & 0o005 != 0o005 {
                    self.unreadable.push(format!("{}/", components.join("/")));
                }
                self.dirs.push(DirMeta {
                    path: path.clone(),
                    mode,
                    mtime,
                });
                self.nodes.insert(key, Node::Dir(mode));
            }
            Kind::Symlink(target) => {
                let target =
                    target.ok_or_else(|| ExtractError::unsafe_entry(name, "has no target"))?;
                check_symlink_target(name, &components, &target)?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| ExtractError::unsafe_entry(name, "has a non-UTF-8 link target"))?;
                std::os::unix::fs::symlink(target, &path).map_err(|source| {
                    ExtractError::Write {
                        path: path.clone(),
                        source,
                    }
                })?;
                if let Some(mtime) = mtime {
                    set_mtime(&path, mtime).map_err(|source| ExtractError::Write {
                        path: path.clone(),
                        source,
                    })?;
                }
                self.nodes.insert(key, Node::Symlink(target.to_owned()));
            }
            Kind::HardLink(target) => {
                let target =
                    target.ok_or_else(|| ExtractError::unsafe_entry(name, "has no target"))?;
                let target_components = entry_components(&target).map_err(|_| {
                    ExtractError::unsafe_entry(name, "is a hard link to a path outside the package")
                })?;
                let target_key = target_components.join("/").into_bytes();
                // The file linked to must be on disk, its digest known.
                self.drain_writers()?;
                let Some(linked @ Node::File { .. }) = self.nodes.get(&target_key).cloned() else {
                    return Err(ExtractError::unsafe_entry(
                        name,
                        "is a hard link to something that is not an earlier regular file of the package",
                    ));
                };
                let target_path = self.dest.join(target_components.join("/"));
                std::fs::hard_link(&target_path, &path).map_err(|source| ExtractError::Write {
                    path: path.clone(),
                    source,
                })?;
                self.nodes.insert(key, linked);
            }
            Kind::Refused(what) => return Err(ExtractError::unsafe_entry(name, what)),
        }
        Ok(())
    }

    /// Makes sure every parent of the entry is a directory made by this
    /// unpack, creating missing ones; refuses a parent that is a file or a
    /// symlink, so nothing is ever written through a link.
    fn prepare_parents(&mut self, name: &[u8], components: &[&str]) -> Result<(), ExtractError> {
        let mut key = String::new();
        for component in &components[..components.len() - 1] {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(component);
            match self.nodes.get(key.as_bytes()) {
                Some(Node::Dir(_) | Node::ImplicitDir) => {}
                Some(Node::Symlink(_)) => {
                    return Err(ExtractError::unsafe_entry(
                        name,
                        format!("would be written through the symlink `{key}`"),
                    ));
                }
                Some(Node::File { .. }) => {
                    return Err(ExtractError::unsafe_entry(
                        name,
                        format!("needs `{key}` to be a directory, but it is a file"),
                    ));
                }
                None => {
                    make_dir(&self.dest.join(&key))?;
                    self.nodes
                        .insert(key.clone().into_bytes(), Node::ImplicitDir);
                    self.entries += 1;
                    self.charge_dir()?;
                }
            }
        }
        Ok(())
    }

    /// Writes one regular file: a small one is read whole and handed to
    /// the writers (`None`: its digest comes when it is written), a larger
    /// one is streamed to disk here (its digest returned).
    #[allow(clippy::too_many_arguments)]
    fn write_file<R: Read>(
        &mut self,
        name: &[u8],
        key: &[u8],
        path: &Path,
        size: u64,
        mode: u32,
        mtime: Option<i64>,
        data: &mut R,
    ) -> Result<Option<[u8; 32]>, ExtractError> {
        use sha2::Digest;
        let budget = self.limits.max_unpacked_bytes - self.unpacked_bytes;
        if size > budget {
            return Err(ExtractError::Limit {
                what: "unpacked size",
                limit: self.limits.max_unpacked_bytes,
            });
        }
        if size <= writers::MAX_BYTES
            && self
                .writers
                .get_or_insert_with(writers::Writers::start)
                .is_some()
        {
            let content = self.read_whole(name, size, data)?;
            self.unpacked_bytes += size;
            let job = writers::Job {
                key: key.to_vec(),
                path: path.to_owned(),
                content,
                mode,
                mtime,
            };
            if let Some(Some(writers)) = &mut self.writers {
                let written = writers.send(job)?;
                self.record_written(written);
            }
            return Ok(None);
        }
        let write_err = |source| ExtractError::Write {
            path: path.to_owned(),
            source,
        };
        // create_new: never opens an existing path, so never follows a link.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(write_err)?;
        let format = self.format;
        // Written and hashed by the streamer thread while this one inflates.
        if let Some(streamer) = self.streamer.get_or_insert_with(writers::Streamer::start) {
            let written = streamer.open(writers::Large {
                key: key.to_vec(),
                path: path.to_owned(),
                file,
                size,
                mode,
                mtime,
            })?;
            let mut remaining = size;
            while remaining > 0 {
                let mut chunk = streamer.chunk(path)?;
                let want = remaining.min(chunk.len() as u64) as usize;
                let n = data
                    .read(&mut chunk[..want])
                    .map_err(|e| format.data_error(name, size, e))?;
                if n == 0 {
                    return Err(format.short_data(name, size - remaining, size));
                }
                streamer.data(chunk, n, path)?;
                remaining -= n as u64;
            }
            streamer.close(path)?;
            self.record_written(written);
            self.check_zip_end(name, size, data)?;
            self.unpacked_bytes += size;
            return Ok(None);
        }
        let mut hasher = sha2::Sha256::new();
        let mut remaining = size;
        let mut unflushed = 0usize;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let n = data
                .read(&mut self.buffer[..want])
                .map_err(|e| format.data_error(name, size, e))?;
            if n == 0 {
                return Err(format.short_data(name, size - remaining, size));
            }
            file.write_all(&self.buffer[..n]).map_err(write_err)?;
            hasher.update(&self.buffer[..n]);
            remaining -= n as u64;
            unflushed += n;
            if unflushed >= WRITEBACK_CHUNK_BYTES {
                start_writeback(&file);
                unflushed = 0;
            }
        }
        // A small file's writeback is left to the one syncfs: started per
        // file it costs more (an I/O each) than it saves.
        if unflushed > 0 && size >= SMALL_FILE_BYTES {
            start_writeback(&file);
        }
        self.check_zip_end(name, size, data)?;
        finish_file(&file, mode, mtime).map_err(write_err)?;
        self.unpacked_bytes += size;
        Ok(Some(hasher.finalize().into()))
    }

    /// Reads a file's `size` bytes whole (a small file, for the writers).
    fn read_whole<R: Read>(
        &mut self,
        name: &[u8],
        size: u64,
        data: &mut R,
    ) -> Result<Vec<u8>, ExtractError> {
        let format = self.format;
        let mut content = vec![0; size as usize];
        let mut filled = 0;
        while filled < content.len() {
            let n = data
                .read(&mut content[filled..])
                .map_err(|e| format.data_error(name, size, e))?;
            if n == 0 {
                return Err(format.short_data(name, filled as u64, size));
            }
            filled += n;
        }
        self.check_zip_end(name, size, data)?;
        Ok(content)
    }

    /// For a zip entry, reads past its declared size: reading to the end is
    /// what checks its CRC-32, and that no more data follows than its size
    /// declares.
    fn check_zip_end<R: Read>(
        &mut self,
        name: &[u8],
        size: u64,
        data: &mut R,
    ) -> Result<(), ExtractError> {
        let format = self.format;
        if format == Format::Zip
            && data
                .read(&mut self.buffer[..1])
                .map_err(|e| format.data_error(name, size, e))?
                != 0
        {
            return Err(ExtractError::corrupt_entry(
                name,
                format!("holds more than the {size} bytes its central directory entry declares"),
            ));
        }
        Ok(())
    }
}

/// The digest a file's node holds until a writer has written it.
const PENDING_DIGEST: [u8; 32] = [0; 32];

/// Gives a file just written its mode (where the umask narrowed the one
/// it was created with) and its mtime.
fn finish_file(file: &std::fs::File, mode: u32, mtime: Option<i64>) -> io::Result<()> {
    if mode & process_umask() != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    if let Some(mtime) = mtime {
        file.set_modified(system_time(mtime))?;
    }
    Ok(())
}

/// The process's umask, read once from /proc (umask(2) cannot read it
/// without changing it, which would race with other threads creating
/// files); all bits, so every mode is set explicitly, when unreadable.
fn process_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Umask:"))
                    .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
            })
            .unwrap_or(0o7777)
    })
}

/// Asks the kernel to start writing a file's dirty pages to disk now, without
/// waiting, so the one `syncfs` at the end of an install finds little left
/// to do and disk writes overlap with inflating. Only a hint: errors ignored.
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the fd is
    // open for the duration of the call because `file` is borrowed.
    unsafe {
        nix::libc::sync_file_range(file.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A file's mode as installed: as archived, less setuid, setgid, sticky
/// and group/other write; never widened (a 0600 file stays 0600).
pub fn file_mode(archived: u32) -> u32 {
    archived & 0o755
}

/// A directory's mode as installed: like a file's, and always searchable
/// and writable by its owner, so the store can remove it.
pub fn dir_mode(archived: u32) -> u32 {
    (archived & 0o755) | 0o700
}

fn system_time(mtime: i64) -> std::time::SystemTime {
    let epoch = std::time::SystemTime::UNIX_EPOCH;
    let offset = std::time::Duration::from_secs(mtime.unsigned_abs());
    if mtime >= 0 {
        epoch + offset
    } else {
        epoch - offset
    }
}

/// Sets the mtime of `path` itself (a symlink's own, never its target's).
fn set_mtime(path: &Path, mtime: i64) -> io::Result<()> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let when = TimeSpec::new(mtime, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::UTIME_OMIT,
        &when,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

fn make_dir(path: &Path) -> Result<(), ExtractError> {
    use std::os::unix::fs::DirBuilderExt;
    let write_err = |source| ExtractError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(write_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(write_err)
}

fn read_bounded<R: Read>(reader: &mut R, size: u64) -> Result<Vec<u8>, ExtractError> {
    let mut out = Vec::with_capacity(size as usize);
    reader
        .take(size)
        .read_to_end(&mut out)
        .map_err(stream_error)?;
    if out.len() as u64 != size {
        return Err(ExtractError::corrupt(
            "archive is truncated inside an extension header",
        ));
    }
    Ok(out)
}

/// Applies the records of a PAX extended header that matter here (`path`,
/// `linkpath`, `size`, `mtime`; `GNU.sparse.*` marks a sparse file, which is
/// refused at its entry); the others (owners, times, charsets) are ignored.
/// An error says what is malformed.
fn apply_pax(records: &[u8], pending: &mut Pending) -> Result<(), String> {
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a malformed record")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&len| len > space + 1 && len <= rest.len())
            .ok_or("a malformed record length")?;
        let record = &rest[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or("a record not ended by a newline")?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a record without `=`")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let number = |what: &str| -> Result<&str, String> {
            std::str::from_utf8(value).map_err(|_| format!("a non-numeric `{what}` record"))
        };
        match key {
            b"path" => pending.path = Some(value.to_vec()),
            b"linkpath" => pending.link = Some(value.to_vec()),
            b"size" => {
                pending.size = Some(
                    number("size")?
                        .parse()
                        .map_err(|_| "a malformed `size` record".to_owned())?,
                )
            }
            b"mtime" => {
                // Seconds, with an optional fraction; sub-second precision is dropped.
                let text = number("mtime")?;
                let whole = text.split('.').next().unwrap_or(text);
                pending.mtime = Some(
                    whole
                        .parse()
                        .map_err(|_| "a malformed `mtime` record".to_owned())?,
                );
            }
            key if key.starts_with(b"GNU.sparse") => pending.sparse = true,
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// Splits an entry name into its components, refusing anything that is not a
/// plain relative UTF-8 path; `.` and empty components are dropped.
pub fn entry_components(name: &[u8]) -> Result<Vec<&str>, ExtractError> {
    if name.len() > MAX_PATH_BYTES {
        return Err(ExtractError::unsafe_entry(
            name,
            format!(
                "has a name of {} bytes (limit {MAX_PATH_BYTES})",
                name.len()
            ),
        ));
    }
    let text = std::str::from_utf8(name)
        .map_err(|_| ExtractError::unsafe_entry(name, "has a name that is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(ExtractError::unsafe_entry(
            name,
            "has a control character in its name",
        ));
    }
    if text.starts_with('/') {
        return Err(ExtractError::unsafe_entry(name, "has an absolute path"));
    }
    let mut components = Vec::new();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return Err(ExtractError::unsafe_entry(name, "has a `..` component"));
            }
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(ExtractError::unsafe_entry(
                    name,
                    format!(
                        "has a name component of {} bytes (limit {MAX_COMPONENT_BYTES})",
                        c.len()
                    ),
                ));
            }
            c => components.push(c),
        }
    }
    Ok(components)
}

/// A symlink target must be relative, UTF-8, may climb with `..` only at its
/// start (so the climb runs through real directories of the package, never
/// through another link), and must stay inside the package.
pub fn check_symlink_target(
    name: &[u8],
    components: &[&str],
    target: &[u8],
) -> Result<(), ExtractError> {
    let refuse = |why: &str| ExtractError::unsafe_entry(name, why.to_owned());
    let text = std::str::from_utf8(target).map_err(|_| refuse("has a non-UTF-8 link target"))?;
    if text.is_empty() {
        return Err(refuse("has an empty link target"));
    }
    if text.chars().any(char::is_control) {
        return Err(refuse("has a control character in its link target"));
    }
    if text.starts_with('/') {
        return Err(refuse(&format!("links to the absolute path `{text}`")));
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(refuse("has a link target over 4096 bytes"));
    }
    // Depth of the directory holding the link, below the package root.
    let mut depth = components.len() as i64 - 1;
    let mut climbing = true;
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." if climbing => {
                depth -= 1;
                if depth < 0 {
                    return Err(refuse(&format!("links outside the package (`{text}`)")));
                }
            }
            ".." => {
                return Err(refuse(&format!(
                    "has `..` after a name in its link target `{text}`"
                )));
            }
            _ => {
                climbing = false;
                depth += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets() {
        let ok = [
            (&["a", "l"][..], "b"),
            (&["a", "l"][..], "../x"),
            (&["a", "b", "l"][..], "../../lib/x"),
            (&["l"][..], "./lib"),
        ];
        for (components, target) in ok {
            assert!(
                check_symlink_target(b"n", components, target.as_bytes()).is_ok(),
                "{components:?} -> {target}"
            );
        }
        let bad = [
            (&["l"][..], "/etc/passwd"),
            (&["l"][..], ".."),
            (&["a", "l"][..], "../.."),
            (&["l"][..], "a/../.."),
            (&["l"][..], "a/../b"),
            (&["l"][..], ""),
        ];
        for (components, target) in bad {
            assert!(
                check_symlink_target(b"n", components, target.as_bytes()).is_err(),
                "{components:?} -> {target}"
            );
        }
    }

    #[test]
    fn entry_names() {
        assert_eq!(entry_components(b"./a//b/").unwrap(), vec!["a", "b"]);
        assert!(entry_components(b"./").unwrap().is_empty());
        for bad in [&b"../x"[..], b"/tmp/x", b"a/../../b", b"a\nb", b"\xff"] {
            assert!(entry_components(bad).is_err(), "{bad:?}");
        }
        // systemd unit names carry backslashes; GNU tar and PEP 706 accept them.
        assert_eq!(
            entry_components(b"etc/foo\\x2dbar.service").unwrap(),
            vec!["etc", "foo\\x2dbar.service"]
        );
        assert!(entry_components("x".repeat(256).as_bytes()).is_err());
        assert!(entry_components("x/".repeat(2049).as_bytes()).is_err());
    }

    /// One PAX record, `"<len> key=value\n"`, where len counts itself.
    pub(crate) fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}").into_bytes()
    }

    #[test]
    fn pax_records() {
        let mut pending = Pending::default();
        let records = [
            pax_record("path", "some/where"),
            pax_record("linkpath", "abc"),
            pax_record("mtime", "1.5"),
        ]
        .concat();
        apply_pax(&records, &mut pending).unwrap();
        assert_eq!(pending.path.as_deref(), Some(&b"some/where"[..]));
        assert_eq!(pending.link.as_deref(), Some(&b"abc"[..]));
        assert_eq!(pending.mtime, Some(1));
        let mut sized = Pending::default();
        apply_pax(&pax_record("size", "100"), &mut sized).unwrap();
        assert_eq!(sized.size, Some(100));
        assert!(apply_pax(&pax_record("size", "x"), &mut Pending::default()).is_err());
        let mut sparse = Pending::default();
        apply_pax(&pax_record("GNU.sparse.major", "1"), &mut sparse).unwrap();
        assert!(sparse.sparse);
        assert!(apply_pax(b"99 path=x\n", &mut Pending::default()).is_err());
        assert!(apply_pax(b"garbage", &mut Pending::default()).is_err());
    }

    #[test]
    fn default_limits() {
        assert_eq!(Limits::default_for(None).max_unpacked_bytes, 1 << 30);
        assert_eq!(
            Limits::default_for(Some(100 << 20)).max_unpacked_bytes,
            5000 << 20
        );
    }
}
