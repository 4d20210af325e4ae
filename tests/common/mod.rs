//! Shared helpers for the end-to-end tests: a sandboxed copkg invocation,
//! archive builders (byte by byte where a tar writer would refuse), and HTTP
//! servers on 127.0.0.1 (python3's static server, and an in-process one for
//! faults).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

pub const COORD: &str = "com.example:hello:1.0.0";

/// A package directory of `packages-example/`.
pub fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packages-example")
        .join(name)
}
pub const ARCHIVE_PATH: &str = "com/example/hello/1.0.0/hello-1.0.0-copkg.tar.gz";

/// A sandbox: its own HOME, software root and repository dir.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("software")
    }

    pub fn repo(&self) -> PathBuf {
        self.path().join("repo")
    }

    /// The download cache of this sandbox's copkg runs (tests run as root,
    /// whose default cache, /var/cache/copkg, every test would share).
    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    pub fn install_dir(&self) -> PathBuf {
        self.root().join("com/example/hello/1.0.0")
    }

    /// copkg with a clean environment pointing at this sandbox.
    pub fn copkg(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_copkg"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("COPKG_") || key.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("HOME", self.path().join("home"))
            .env("COPKG_SOFTWARE_ROOT", self.root())
            .env("COPKG_CACHE_DIR", self.cache())
            .env("COPKG_RUNTIME_ROOT", self.path().join("runtime"))
            .stdin(Stdio::null());
        cmd
    }

    /// Writes `archive` (and, unless `None`, a sidecar with `sidecar`) into the repository.
    pub fn publish(&self, archive: &[u8], sidecar: Option<&str>) {
        let path = self.repo().join(ARCHIVE_PATH);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, archive).unwrap();
        let side = PathBuf::from(format!("{}.sha256", path.display()));
        match sidecar {
            Some(text) => std::fs::write(side, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(side);
            }
        }
    }

    /// Publishes `archive` with a correct sidecar.
    pub fn publish_verified(&self, archive: &[u8]) {
        self.publish(
            archive,
            Some(&format!(
                "{}  hello-1.0.0-copkg.tar.gz\n",
                sha256_hex(archive)
            )),
        );
    }

    /// Runs `copkg --repo <repo> install COORD`.
    pub fn install(&self) -> Output {
        run(self
            .copkg()
            .arg("--repo")
            .arg(self.repo())
            .args(["install", COORD]))
    }

    /// Packs `dir` into the sandbox repository as `coordinate`.
    pub fn pack(&self, dir: &Path, coordinate: &str) {
        let out = run(self
            .copkg()
            .arg("pack")
            .arg(dir)
            .args(["--coordinate", coordinate, "--out"])
            .arg(self.repo()));
        assert_eq!(out.code, 0, "{out:?}");
    }

    /// Packs `dir` as `coordinate` and installs it from the sandbox repository.
    pub fn pack_and_install(&self, dir: &Path, coordinate: &str) {
        self.pack(dir, coordinate);
        let out = run(self
            .copkg()
            .arg("--repo")
            .arg(self.repo())
            .args(["install", coordinate]));
        assert_eq!(out.code, 0, "{out:?}");
    }

    /// Runs `copkg --config <file with json> --repo <repo> install COORD`.
    pub fn install_with_config(&self, json: &str) -> Output {
        let config = self.path().join("config.json");
        std::fs::write(&config, json).unwrap();
        run(self
            .copkg()
            .arg("--config")
            .arg(&config)
            .arg("--repo")
            .arg(self.repo())
            .args(["install", COORD]))
    }

    /// Every path under the sandbox except the repository and copkg's own
    /// state (the store's, and the journal's state dir under the runtime
    /// root, with that root when it holds nothing else), relative, sorted:
    /// to check nothing was written elsewhere.
    pub fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.retain(|p| {
            !p.starts_with("repo")
                && !p.starts_with("cache")
                && !p.starts_with("software/.copkg")
                && !p.starts_with("runtime/.copkg")
        });
        if !out.iter().any(|p| p.starts_with("runtime/")) {
            out.retain(|p| p != "runtime");
        }
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        out.push(path.strip_prefix(root).unwrap().display().to_string());
        if entry.file_type().unwrap().is_dir() {
            walk(root, &path, out);
        }
    }
}

/// What a copkg run printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar stream built block by block.
#[derive(Default, Clone)]
pub struct Tar {
    pub bytes: Vec<u8>,
    /// Where the last header starts.
    last: usize,
}

pub const REGULAR: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';

impl Tar {
    pub fn new() -> Self {
        Tar::default()
    }

    /// Appends a raw ustar header; `name` and `link` up to 100 bytes.
    pub fn header(
        &mut self,
        name: &[u8],
        kind: u8,
        size: u64,
        mode: u32,
        link: &[u8],
    ) -> &mut Self {
        let mut h = [0u8; 512];
        self.last = self.bytes.len();
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        if size < 1 << 33 {
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        } else {
            // GNU base-256: high bit set, big-endian value.
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&h);
        self
    }

    /// Sets the mtime of the last header (and its checksum again).
    pub fn mtime(&mut self, seconds: u64) -> &mut Self {
        let h = &mut self.bytes[self.last..self.last + 512];
        h[136..148].copy_from_slice(format!("{seconds:011o}\0").as_bytes());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self
    }

    /// Appends data padded to a block.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.header(name.as_bytes(), REGULAR, data.len() as u64, mode, b"")
            .data(data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.header(name.as_bytes(), DIR, 0, 0o755, b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), SYMLINK, 0, 0o777, target.as_bytes())
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), HARDLINK, 0, 0o644, target.as_bytes())
    }

    /// A GNU long-name (`L`) entry for the next header.
    pub fn long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        self.header(b"././@LongLink", b'L', data.len() as u64, 0o644, b"")
            .data(&data)
    }

    /// A PAX extended header (`x`) with the given records.
    pub fn pax(&mut self, records: &[(&str, &str)]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = format!(" {key}={value}\n");
            let mut len = body.len() + 1;
            while len.to_string().len() + body.len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        self.header(b"pax", b'x', data.len() as u64, 0o644, b"")
            .data(&data)
    }

    /// The two zero blocks that end an archive.
    pub fn end(&mut self) -> &mut Self {
        self.bytes.extend_from_slice(&[0; 1024]);
        self
    }

    pub fn gz(&self) -> Vec<u8> {
        gzip(&self.bytes)
    }
}

/// A small, valid package archive.
pub fn good_archive() -> Vec<u8> {
    Tar::new()
        .dir("bin/")
        .file("bin/hello", b"#!/bin/sh\necho hello\n", 0o755)
        .file("etc/hello.conf", b"greeting=hello\n", 0o644)
        .symlink("lib/conf", "../etc/hello.conf")
        .end()
        .gz()
}

/// python3's static file server on 127.0.0.1, killed on drop.
pub struct StaticServer {
    child: Child,
    pub url: String,
}

impl StaticServer {
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for the static-server tests");
        wait_for_port(port);
        StaticServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A request as the fault server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a fault-server handler does with a connection.
pub type Handler = dyn Fn(&Request, usize, &mut TcpStream) + Send + Sync;

/// An in-process HTTP/1.1 server on 127.0.0.1 whose every response is
/// written by a closure, for faults a real server cannot be made to produce.
/// One request per connection; requests are recorded.
pub struct FaultServer {
    pub url: String,
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FaultServer {
    pub fn start(
        handler: impl Fn(&Request, usize, &mut TcpStream) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let count = Arc::new(AtomicUsize::new(0));
        {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let handler = Arc::clone(&handler);
                    let requests = Arc::clone(&requests);
                    let count = Arc::clone(&count);
                    std::thread::spawn(move || {
                        let Some(request) = read_request(&mut stream) else {
                            return;
                        };
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        requests.lock().unwrap().push(request.clone());
                        handler(&request, n, &mut stream);
                        let _ = stream.flush();
                    });
                }
            });
        }
        FaultServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            requests,
            stop,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Some(Request { path, headers })
}

/// Writes a whole response.
pub fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Serves files of a repository directory: a handler for [`FaultServer`].
pub fn serve_file(repo: &Path, request: &Request, stream: &mut TcpStream) {
    let path = repo.join(request.path.trim_start_matches('/'));
    match std::fs::read(&path) {
        Ok(body) => respond(stream, "200 OK", &[], &body),
        Err(_) => respond(stream, "404 Not Found", &[], b"not found"),
    }
}

/// Reads a whole stream (for proxies and checks).
pub fn read_all(stream: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// Where the original copkg's repositories hold a package: a `.zip` beside
/// where the `.tar.gz` would be.
pub const ZIP_PATH: &str = "com/example/hello/1.0.0/hello-1.0.0-copkg.zip";

impl Sandbox {
    /// Writes `zip` (and, unless `None`, a sidecar with `sidecar`) into the
    /// repository as the original copkg's repositories hold packages: no
    /// `.tar.gz`, often no sidecar.
    pub fn publish_zip(&self, zip: &[u8], sidecar: Option<&str>) {
        let path = self.repo().join(ZIP_PATH);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, zip).unwrap();
        let side = PathBuf::from(format!("{}.sha256", path.display()));
        match sidecar {
            Some(text) => std::fs::write(side, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(side);
            }
        }
    }

    /// Publishes `zip` with a correct sidecar.
    pub fn publish_zip_verified(&self, zip: &[u8]) {
        self.publish_zip(
            zip,
            Some(&format!("{}  hello-1.0.0-copkg.zip\n", sha256_hex(zip))),
        );
    }
}

/// One entry of a [`Zip`], with every field a hostile archive may bend.
#[derive(Clone, Debug)]
pub struct ZipEntry {
    /// The name in the central directory.
    pub name: Vec<u8>,
    /// The name in the local header, when it differs.
    pub local_name: Option<Vec<u8>>,
    /// The uncompressed data.
    pub data: Vec<u8>,
    /// Deflated (else stored).
    pub deflate: bool,
    /// Unix mode with type bits, written as made on Unix; `None` writes a
    /// DOS-made entry without one.
    pub mode: Option<u32>,
    /// General-purpose flags.
    pub flags: u16,
    /// The uncompressed size declared in both headers, when it differs.
    pub declared_size: Option<u32>,
    /// Sizes and CRC-32 after the data (flag bit 3), zero in the local header.
    pub data_descriptor: bool,
}

/// A zip archive built byte by byte: what a zip writer would refuse to write.
#[derive(Clone, Debug, Default)]
pub struct Zip {
    pub entries: Vec<ZipEntry>,
}

impl Zip {
    pub fn new() -> Self {
        Zip::default()
    }

    pub fn entry(&mut self, name: &str, data: &[u8], mode: Option<u32>) -> &mut Self {
        self.entries.push(ZipEntry {
            name: name.as_bytes().to_vec(),
            local_name: None,
            data: data.to_vec(),
            deflate: true,
            mode,
            flags: 0,
            declared_size: None,
            data_descriptor: false,
        });
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.entry(name, data, Some(0o100_000 | mode))
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(name, b"", Some(0o040_000 | mode))
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, target.as_bytes(), Some(0o120_777))
    }

    /// Changes the last entry.
    pub fn last(&mut self, change: impl FnOnce(&mut ZipEntry)) -> &mut Self {
        change(self.entries.last_mut().unwrap());
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let le16 = |v: u16| v.to_le_bytes();
        let le32 = |v: u32| v.to_le_bytes();
        let mut out = Vec::new();
        let mut central = Vec::new();
        for e in &self.entries {
            let mut crc = flate2::Crc::new();
            crc.update(&e.data);
            let crc = crc.sum();
            let stored = if e.deflate {
                let mut enc =
                    flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
                enc.write_all(&e.data).unwrap();
                enc.finish().unwrap()
            } else {
                e.data.clone()
            };
            let method: u16 = if e.deflate { 8 } else { 0 };
            let size = e.declared_size.unwrap_or(e.data.len() as u32);
            let flags = e.flags | if e.data_descriptor { 0x0008 } else { 0 };
            // 1980-01-01 00:00 in DOS date and time.
            let (time, date) = (0u16, 0x0021u16);
            let offset = out.len() as u32;
            let local_name = e.local_name.as_ref().unwrap_or(&e.name);
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&le16(20));
            out.extend_from_slice(&le16(flags));
            out.extend_from_slice(&le16(method));
            out.extend_from_slice(&le16(time));
            out.extend_from_slice(&le16(date));
            let (local_crc, local_csize, local_size) = if e.data_descriptor {
                (0, 0, 0)
            } else {
                (crc, stored.len() as u32, size)
            };
            out.extend_from_slice(&le32(local_crc));
            out.extend_from_slice(&le32(local_csize));
            out.extend_from_slice(&le32(local_size));
            out.extend_from_slice(&le16(local_name.len() as u16));
            out.extend_from_slice(&le16(0));
            out.extend_from_slice(local_name);
            out.extend_from_slice(&stored);
            if e.data_descriptor {
                out.extend_from_slice(b"PK\x07\x08");
                out.extend_from_slice(&le32(crc));
                out.extend_from_slice(&le32(stored.len() as u32));
                out.extend_from_slice(&le32(size));
            }
            let (made_by, external) = match e.mode {
                Some(mode) => (0x031e_u16, mode << 16),
                None => (0x0014, if e.name.ends_with(b"/") { 0x10 } else { 0 }),
            };
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&le16(made_by));
            central.extend_from_slice(&le16(20));
            central.extend_from_slice(&le16(flags));
            central.extend_from_slice(&le16(method));
            central.extend_from_slice(&le16(time));
            central.extend_from_slice(&le16(date));
            central.extend_from_slice(&le32(crc));
            central.extend_from_slice(&le32(stored.len() as u32));
            central.extend_from_slice(&le32(size));
            central.extend_from_slice(&le16(e.name.len() as u16));
            central.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
            central.extend_from_slice(&le32(external));
            central.extend_from_slice(&le32(offset));
            central.extend_from_slice(&e.name);
        }
        let start = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]); // disk numbers
        out.extend_from_slice(&le16(self.entries.len() as u16));
        out.extend_from_slice(&le16(self.entries.len() as u16));
        out.extend_from_slice(&le32(central.len() as u32));
        out.extend_from_slice(&le32(start));
        out.extend_from_slice(&le16(0));
        out
    }
}

/// A small package as the original copkg packed it, written by the zip
/// crate: an executable, a private file, a symlink and a nested dir.
pub fn good_zip() -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = |mode: u32| {
        SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode)
    };
    zip.add_directory("bin/", options(0o755)).unwrap();
    zip.start_file("bin/hello", options(0o755)).unwrap();
    zip.write_all(b"#!/bin/sh\necho hello from a zip\n")
        .unwrap();
    zip.add_directory("etc/", options(0o755)).unwrap();
    zip.start_file("etc/hello.conf", options(0o644)).unwrap();
    zip.write_all(b"greeting=hello\n").unwrap();
    zip.start_file("etc/secret.conf", options(0o600)).unwrap();
    zip.write_all(b"password=none\n").unwrap();
    zip.add_directory("lib/deep/er/", options(0o755)).unwrap();
    zip.start_file("lib/deep/er/data.txt", options(0o644))
        .unwrap();
    zip.write_all(&b"data\n".repeat(1000)).unwrap();
    zip.add_symlink("lib/conf", "../etc/hello.conf", options(0o777))
        .unwrap();
    zip.finish().unwrap().into_inner()
}

/// Mounts a tmpfs at `dir` (created), unmounted on drop.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount is needed for the mount tests");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Whether a process lives (zombies do not).
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Waits up to `limit` for `done`; whether it came true.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// The live processes whose command line holds `marker`.
pub fn pids_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|pid| pid_alive(*pid))
        .collect()
}

/// A start.lua that spawns `sh -c SCRIPT` detached, its output in console/.
pub fn lua_service(script: &str) -> String {
    format!(
        r#"local ctx = ...
copkg.spawn({{
  program = "/bin/sh",
  args = {{ "-c", [==[{script}]==] }},
  cwd = ctx.runtime_dir,
  stdout = ctx.runtime_dir .. "/console/stdout.log",
  stderr = ctx.runtime_dir .. "/console/stderr.log",
}})
"#
    )
}
