//! What the original copkg left behind, taken over: its repositories (a
//! `<artifact>-<version>-copkg.zip` and no sidecar, no `.tar.gz`) installed
//! end to end over real HTTP with its config file; hostile zips refused by
//! the same rules as tar (shared/SECURITY.md A) plus zip's own; zips as
//! real tools write them installed whole; and its install dirs adopted.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An original copkg config file pointing at `url`, with `extra` keys.
fn original_config(sandbox: &Sandbox, url: &str, extra: &str) -> std::path::PathBuf {
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"packageBaseUrl": "{url}", "username": "", "password": ""{extra}}}"#),
    )
    .unwrap();
    config
}

fn with_config(sandbox: &Sandbox, config: &Path) -> std::process::Command {
    let mut cmd = sandbox.copkg();
    cmd.arg("--config").arg(config);
    cmd
}

fn temp_leftovers(sandbox: &Sandbox) -> usize {
    std::fs::read_dir(sandbox.root().join(".copkg/tmp"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn an_original_repository_installs_its_zip_over_http_unverified_when_configured_so() {
    let sandbox = Sandbox::new();
    sandbox.publish_zip(&good_zip(), None);
    let repo = sandbox.repo();
    let server = FaultServer::start(move |request, _, stream| serve_file(&repo, request, stream));
    let config = original_config(&sandbox, &server.url, r#", "checksum": "if-present""#);
    // What a killed install's download left (named by a hash of the install
    // path) is swept.
    let tmp = sandbox.root().join(".copkg/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let key = &sha256_hex(b"com/example/hello/1.0.0")[..32];
    std::fs::write(tmp.join(format!("{key}.AbCdEf.zip")), b"PK partial").unwrap();

    let out = run(with_config(&sandbox, &config).args(["install", COORD]));
    let dir = sandbox.install_dir();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            format!("installed {COORD} in {}\n", dir.display()).as_str(),
            format!(
                "warning: {COORD}: a service running as another user could not read etc/secret.conf\nwarning: {COORD} was installed without a checksum to verify it against\n"
            )
            .as_str()
        )
    );
    // Asked for the .tar.gz first (its sidecar and the archive at once);
    // the .zip only once that was not found.
    let zip = ARCHIVE_PATH.replace(".tar.gz", ".zip");
    let mut paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 4, "{paths:?}");
    paths[..2].sort();
    paths[2..].sort();
    assert_eq!(
        paths,
        [
            format!("/{ARCHIVE_PATH}"),
            format!("/{ARCHIVE_PATH}.sha256"),
            format!("/{zip}"),
            format!("/{zip}.sha256"),
        ]
    );
    // Empty credentials are none.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("Authorization").is_none()),
        "{:?}",
        server.requests()
    );

    let hello = std::process::Command::new(dir.join("bin/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&hello.stdout), "hello from a zip\n");
    assert_eq!(mode(&dir.join("bin/hello")), 0o755);
    assert_eq!(mode(&dir.join("etc/hello.conf")), 0o644);
    assert_eq!(mode(&dir.join("etc/secret.conf")), 0o600);
    assert_eq!(mode(&dir.join("lib/deep/er")), 0o755);
    assert_eq!(
        std::fs::read_link(dir.join("lib/conf")).unwrap(),
        Path::new("../etc/hello.conf")
    );
    assert_eq!(
        std::fs::read(dir.join("lib/deep/er/data.txt")).unwrap(),
        b"data\n".repeat(1000)
    );
    assert_eq!(temp_leftovers(&sandbox), 0, "the downloaded zip is left");

    let url = format!("{}/{zip}", server.url);
    let listed = json_lines(&run(with_config(&sandbox, &config).args(["--json", "list"])).stdout);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["verified"], false);
    assert_eq!(listed[0]["source"], url.as_str());
    assert_eq!(listed[0]["sha256"], sha256_hex(&good_zip()).as_str());
    let resolved =
        json_lines(&run(with_config(&sandbox, &config).args(["--json", "resolve", COORD])).stdout);
    assert_eq!(resolved[0]["state"], "installed");
    assert_eq!(resolved[0]["verified"], false);
    assert_eq!(resolved[0]["repositories"][0]["zip"], url.as_str());
    let out = run(with_config(&sandbox, &config).args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{COORD}: ok (4 files)\n"))
    );
}

#[test]
fn a_zip_without_a_sidecar_is_refused_unless_checksum_is_if_present() {
    let sandbox = Sandbox::new();
    sandbox.publish_zip(&good_zip(), None);
    let server = StaticServer::start(&sandbox.repo());
    let config = original_config(&sandbox, &server.url, "");
    let out = run(with_config(&sandbox, &config).args(["install", COORD]));
    assert_eq!(out.code, 3, "{out:?}");
    let url = format!("{}/{ARCHIVE_PATH}", server.url);
    let zip = url.replace(".tar.gz", ".zip");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot install {COORD}\n  caused by: {COORD} was not found in any repository\n  {url}: not found\n  {zip}.sha256: not found (a checksum sidecar is required)\n"
        )
    );
    assert!(!sandbox.install_dir().exists());
    assert_eq!(temp_leftovers(&sandbox), 0);
}

#[test]
fn a_zip_with_its_sidecar_installs_verified_and_a_wrong_one_installs_nothing() {
    let sandbox = Sandbox::new();
    let zip = good_zip();
    sandbox.publish_zip_verified(&zip);
    let server = StaticServer::start(&sandbox.repo());
    let config = original_config(&sandbox, &server.url, "");
    let out = run(with_config(&sandbox, &config).args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "warning: {COORD}: a service running as another user could not read etc/secret.conf\n"
        )
    );
    let listed = json_lines(&run(sandbox.copkg().args(["--json", "list"])).stdout);
    assert_eq!(listed[0]["verified"], true);
    assert_eq!(listed[0]["sha256"], sha256_hex(&zip).as_str());

    let other = Sandbox::new();
    other.publish_zip(&zip, Some(&format!("{}\n", "0".repeat(64))));
    let server = StaticServer::start(&other.repo());
    let config = original_config(&other, &server.url, r#", "checksum": "if-present""#);
    let out = run(with_config(&other, &config).args(["install", COORD]));
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot install {COORD}\n  caused by: checksum mismatch for {COORD} from {}/{ZIP_PATH}: expected sha256 {}, got {}\n",
            server.url,
            "0".repeat(64),
            sha256_hex(&zip)
        )
    );
    assert!(!other.install_dir().exists());
    assert_eq!(other.tree(), ["config.json", "home", "software"]);
    assert_eq!(temp_leftovers(&other), 0, "the downloaded zip is left");
}

#[test]
fn a_tar_gz_wins_over_a_zip_and_a_site_without_a_zip_path_never_asks_for_one() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    sandbox.publish_zip_verified(&good_zip());
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        std::fs::read_to_string(sandbox.install_dir().join("bin/hello"))
            .unwrap()
            .contains("echo hello\n")
    );

    let other = Sandbox::new();
    other.publish_zip_verified(&good_zip());
    let site = other.path().join("site.lua");
    std::fs::write(
        &site,
        r#"local default = require("copkg.policy")
return {
  repository_paths = function(pkg)
    local paths = default.repository_paths(pkg)
    return { archive = paths.archive, sha256 = paths.sha256 }
  end,
}"#,
    )
    .unwrap();
    let out = run(other
        .copkg()
        .arg("--site")
        .arg(&site)
        .arg("--repo")
        .arg(other.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(!out.stderr.contains(".zip"), "{}", out.stderr);
}

/// The exact stderr of a refused zip install whose innermost cause is `cause`.
fn expected_refusal(sandbox: &Sandbox, cause: &str) -> String {
    format!(
        "error: cannot install {COORD}\n  caused by: cannot unpack {COORD} from {}\n  caused by: {cause}\n",
        sandbox.repo().join(ZIP_PATH).display()
    )
}

/// Installs `zip` (with a correct sidecar, under `config`) and checks it is
/// refused with exactly `cause` and exit 5, leaves nothing behind, and a
/// good zip installs after.
fn assert_zip_refused_with(zip: &[u8], config: &str, cause: &str) {
    let sandbox = Sandbox::new();
    sandbox.publish_zip_verified(zip);
    let out = sandbox.install_with_config(config);
    assert_eq!(out.stderr, expected_refusal(&sandbox, cause));
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(!sandbox.install_dir().exists());
    assert_eq!(
        sandbox.tree(),
        ["config.json", "home", "software"],
        "something was written outside"
    );
    assert_eq!(
        temp_leftovers(&sandbox),
        0,
        "temp dirs or files left behind"
    );

    sandbox.publish_zip_verified(&good_zip());
    let out = sandbox.install_with_config(config);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("bin/hello").is_file());
}

fn assert_zip_refused(zip: &[u8], cause: &str) {
    assert_zip_refused_with(zip, "{}", cause);
}

#[test]
fn zip_dotdot_and_absolute_names_are_refused() {
    let zip = Zip::new()
        .file("bin/ok", b"x", 0o644)
        .file("../outside/x", b"evil", 0o644)
        .bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `../outside/x` has a `..` component",
    );
    let zip = Zip::new()
        .file("/tmp/copkg-zip-abs", b"evil", 0o644)
        .bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `/tmp/copkg-zip-abs` has an absolute path",
    );
    assert!(!Path::new("/tmp/copkg-zip-abs").exists());
}

#[test]
fn zip_symlinks_leaving_the_package_are_refused() {
    let zip = Zip::new().symlink("lib/passwd", "/etc/passwd").bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `lib/passwd` links to the absolute path `/etc/passwd`",
    );
    let zip = Zip::new()
        .symlink("l", "../..")
        .file("l/secret", b"evil", 0o644)
        .bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `l` links outside the package (`../..`)",
    );
}

#[test]
fn zip_duplicate_names_are_refused() {
    let zip = Zip::new()
        .file("etc/app.conf", b"first", 0o644)
        .file("bin/run", b"#!/bin/sh\n", 0o755)
        .file("etc/app.conf", b"second", 0o644)
        .bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `etc/app.conf` appears twice in the archive",
    );
    // The same path spelled twice.
    let zip = Zip::new()
        .file("etc/app.conf", b"first", 0o644)
        .file("etc//./app.conf", b"second", 0o644)
        .bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `etc//./app.conf` appears twice in the archive",
    );
}

#[test]
fn zip_local_header_disagreeing_with_the_central_directory_is_refused() {
    // Same length, so only the name differs: a streaming reader would
    // unpack `evil/x`, copkg `bin/x`.
    let mut zip = Zip::new().file("bin/x", b"data", 0o644).bytes();
    let at = zip.windows(5).position(|w| w == b"bin/x").unwrap();
    assert!(at < 64, "the local header's name comes first");
    zip[at..at + 5].copy_from_slice(b"evi/x");
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `bin/x` has a local header that disagrees with the central directory (Local file header filename mismatch (does not match central directory))",
    );
    // Through the builder, with a longer name.
    let zip = Zip::new()
        .file("bin/x", b"data", 0o644)
        .last(|e| e.local_name = Some(b"../../../etc/x".to_vec()))
        .bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `bin/x` has a local header that disagrees with the central directory (Local file header filename mismatch (does not match central directory))",
    );
}

#[test]
fn zip_declared_size_other_than_the_data_is_refused_naming_the_entry() {
    let zip = Zip::new()
        .file("bin/ok", b"fine", 0o755)
        .file("lib/big", &[7u8; 100], 0o644)
        .last(|e| e.declared_size = Some(10))
        .bytes();
    assert_zip_refused(
        &zip,
        "corrupt archive: entry `lib/big` holds more than the 10 bytes its central directory entry declares",
    );
    let zip = Zip::new()
        .file("lib/small", &[7u8; 100], 0o644)
        .last(|e| e.declared_size = Some(1000))
        .bytes();
    assert_zip_refused(
        &zip,
        "corrupt archive: entry `lib/small` holds 100 bytes, not the 1000 its central directory entry declares",
    );
}

#[test]
fn zip_bomb_is_stopped_at_the_limit() {
    // 64 MiB of zeros deflate to about 64 KiB; the limit is 1 MiB.
    let zip = Zip::new()
        .file("bin/ok", b"fine", 0o755)
        .file("lib/zeros", &vec![0u8; 64 << 20], 0o644)
        .bytes();
    assert!(zip.len() < 1 << 20);
    assert_zip_refused_with(
        &zip,
        r#"{"maxUnpackedBytes": 1048576}"#,
        "archive exceeds the unpacked size limit of 1048576",
    );
    // One that lies about its size stops at the size it declared.
    let zip = Zip::new()
        .file("lib/zeros", &vec![0u8; 64 << 20], 0o644)
        .last(|e| e.declared_size = Some(1024))
        .bytes();
    assert_zip_refused_with(
        &zip,
        r#"{"maxUnpackedBytes": 1048576}"#,
        "corrupt archive: entry `lib/zeros` holds more than the 1024 bytes its central directory entry declares",
    );
}

#[test]
fn zip_encrypted_entries_and_other_methods_are_refused() {
    let zip = Zip::new()
        .file("bin/ok", b"fine", 0o755)
        .file("etc/secret", b"\x12\x34\x56 not really encrypted", 0o600)
        .last(|e| e.flags = 0x0001)
        .bytes();
    assert_zip_refused(&zip, "unsafe archive: entry `etc/secret` is encrypted");
    // Method 12 (bzip2) instead of 8.
    let mut zip = Zip::new().file("lib/x", b"data", 0o644).bytes();
    for at in [
        8,
        zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap() + 10,
    ] {
        zip[at] = 12;
    }
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `lib/x` is compressed by a method copkg does not read (Unsupported(12)); only stored and deflate are",
    );
}

#[test]
fn zip_devices_corrupt_data_and_trailing_bytes_are_refused() {
    let zip = Zip::new().entry("dev/null", b"", Some(0o020_666)).bytes();
    assert_zip_refused(
        &zip,
        "unsafe archive: entry `dev/null` is a character device",
    );
    let zip = Zip::new().entry("run/fifo", b"", Some(0o010_644)).bytes();
    assert_zip_refused(&zip, "unsafe archive: entry `run/fifo` is a fifo");
    // A flipped byte of stored data fails its CRC-32.
    let mut zip = Zip::new()
        .file("lib/x", b"the data", 0o644)
        .last(|e| e.deflate = false)
        .bytes();
    let at = zip.windows(8).position(|w| w == b"the data").unwrap();
    zip[at] = b'T';
    assert_zip_refused(
        &zip,
        "corrupt archive: entry `lib/x` does not match its CRC-32",
    );
    let mut zip = Zip::new().file("lib/x", b"data", 0o644).bytes();
    zip.extend_from_slice(b"trailing");
    assert_zip_refused(
        &zip,
        "corrupt archive: data after the end of the central directory",
    );
    assert_zip_refused(
        &Zip::new().bytes(),
        "corrupt archive: empty archive (no entries)",
    );
}

#[test]
fn zip_modes_are_never_widened_and_dos_entries_get_defaults() {
    let sandbox = Sandbox::new();
    let zip = Zip::new()
        .file("bin/suid", b"x", 0o4777)
        .file("etc/private", b"x", 0o600)
        .dir("data/", 0o777)
        .dir("keys/", 0o500)
        .entry("dos/readme.txt", b"dos", None)
        .entry("dos/sub/", b"", None)
        // A backslash is part of a name, as in tar.
        .file("etc/foo\\x2dbar.service", b"unit", 0o644)
        .bytes();
    sandbox.publish_zip_verified(&zip);
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    let dir = sandbox.install_dir();
    assert_eq!(mode(&dir.join("bin/suid")), 0o755);
    assert_eq!(mode(&dir.join("etc/private")), 0o600);
    assert_eq!(mode(&dir.join("data")), 0o755);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    assert_eq!(mode(&dir.join("dos/readme.txt")), 0o644);
    assert_eq!(mode(&dir.join("dos/sub")), 0o755);
    assert_eq!(
        std::fs::read(dir.join("etc/foo\\x2dbar.service")).unwrap(),
        b"unit"
    );
}

#[test]
fn zips_with_data_descriptors_and_zip64_records_install() {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    // The byte builder's data descriptors.
    let sandbox = Sandbox::new();
    let zip = Zip::new()
        .file("bin/hello", b"#!/bin/sh\necho dd\n", 0o755)
        .last(|e| e.data_descriptor = true)
        .file("lib/stored", b"stored data", 0o644)
        .last(|e| {
            e.data_descriptor = true;
            e.deflate = false;
        })
        .bytes();
    sandbox.publish_zip_verified(&zip);
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(sandbox.install_dir().join("lib/stored")).unwrap(),
        b"stored data"
    );

    // The zip crate streaming (data descriptors) with zip64 extra fields.
    for (streamed, zip64) in [(true, false), (false, true), (true, true)] {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(zip64);
        let bytes = if streamed {
            let mut writer = zip::ZipWriter::new_stream(Vec::new());
            writer
                .start_file("bin/hello", options.unix_permissions(0o755))
                .unwrap();
            writer.write_all(b"#!/bin/sh\necho streamed\n").unwrap();
            writer
                .add_symlink("lib/hello", "../bin/hello", options)
                .unwrap();
            writer.finish().unwrap().into_inner()
        } else {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            writer
                .start_file("bin/hello", options.unix_permissions(0o755))
                .unwrap();
            writer.write_all(b"#!/bin/sh\necho streamed\n").unwrap();
            writer
                .add_symlink("lib/hello", "../bin/hello", options)
                .unwrap();
            writer.finish().unwrap().into_inner()
        };
        let first = first_local_header(&bytes);
        assert_eq!(first.data_descriptor, streamed);
        assert_eq!(first.extra_id == Some(0x0001), zip64, "zip64 extra field");
        let sandbox = Sandbox::new();
        sandbox.publish_zip_verified(&bytes);
        let out = sandbox.install();
        assert_eq!(out.code, 0, "streamed {streamed}, zip64 {zip64}: {out:?}");
        let dir = sandbox.install_dir();
        assert_eq!(mode(&dir.join("bin/hello")), 0o755);
        assert_eq!(
            std::fs::read(dir.join("lib/hello")).unwrap(),
            b"#!/bin/sh\necho streamed\n"
        );
    }
}

/// What the first local header of a zip says.
struct LocalHeader {
    data_descriptor: bool,
    extra_id: Option<u16>,
}

fn first_local_header(zip: &[u8]) -> LocalHeader {
    assert_eq!(&zip[..4], b"PK\x03\x04");
    let le16 = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]);
    let (name_len, extra_len) = (le16(26) as usize, le16(28));
    LocalHeader {
        data_descriptor: le16(6) & 0x0008 != 0,
        extra_id: (extra_len >= 4).then(|| le16(30 + name_len)),
    }
}

/// A tree as the original copkg's packages hold it: an executable, private
/// modes, a non-ASCII and a long name, a link, fixed mtimes (even seconds,
/// as DOS times keep them).
fn package_tree(dir: &Path) {
    let long = format!("lib/{}/deep.js", "n".repeat(120));
    let files: [(&str, u32); 5] = [
        (long.as_str(), 0o644),
        ("lib/caf\u{e9}/m\u{f8}de.txt", 0o644),
        ("etc/secret.conf", 0o600),
        ("bin/run", 0o755),
        ("private/key", 0o640),
    ];
    for (name, mode) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("content of {name}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(dir.join("private"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("../bin/run", dir.join("lib/run")).unwrap();
    let status = std::process::Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d", "@1600000000", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every entry below `dir`: (path, type, mode, mtime, content or target).
fn snapshot(dir: &Path) -> Vec<(String, char, u32, i64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if name.starts_with(".copkg") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let (kind, data) = if meta.is_symlink() {
                (
                    'l',
                    std::fs::read_link(&path)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                )
            } else if meta.is_dir() {
                stack.push(path.clone());
                ('d', Vec::new())
            } else {
                ('f', std::fs::read(&path).unwrap())
            };
            let mode = if kind == 'l' { 0 } else { meta.mode() & 0o7777 };
            out.push((name, kind, mode, meta.mtime(), data));
        }
    }
    out.sort();
    out
}

#[test]
fn zips_from_info_zip_and_python_install_whole() {
    let source = tempfile::tempdir().unwrap();
    package_tree(source.path());
    let expected = snapshot(source.path());
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("a.zip");
    // Python's zipfile keeps no symlinks by itself: written as Unix-made
    // entries, as packaging tools do; to an output it cannot seek, it writes
    // data descriptors. (Info-ZIP cannot stream a symlink.)
    let python = r#"import io, os, sys, zipfile
class Unseekable(io.RawIOBase):
    def __init__(self, f): self.f = f
    def writable(self): return True
    def write(self, b): return self.f.write(b)
    def close(self): self.f.close(); super().close()
src, streamed = sys.argv[2], sys.argv[3] == "streamed"
target = Unseekable(open(sys.argv[1], "wb")) if streamed else sys.argv[1]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(root, name)
            arc = os.path.relpath(path, src)
            st = os.lstat(path)
            if os.path.islink(path):
                info = zipfile.ZipInfo(arc, zipfile.ZipInfo.from_file(path).date_time)
                info.create_system = 3
                info.external_attr = st.st_mode << 16
                z.writestr(info, os.readlink(path))
            else:
                z.write(path, arc)
"#;
    let src = source.path().to_str().unwrap().to_owned();
    let zip_out = out.display().to_string();
    let tools: Vec<(&str, String)> = vec![
        (
            "Info-ZIP zip",
            format!("cd '{src}' && zip -q -r -y '{zip_out}' ."),
        ),
        (
            "python zipfile",
            format!("python3 -c '{python}' '{zip_out}' '{src}' file"),
        ),
        (
            "python zipfile, streamed",
            format!("python3 -c '{python}' '{zip_out}' '{src}' streamed"),
        ),
    ];
    for (tool, script) in tools {
        let _ = std::fs::remove_file(&out);
        let status = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(status.success(), "{tool} failed");
        let zip = std::fs::read(&out).unwrap();
        let data_descriptors = zip
            .windows(8)
            .any(|w| w[..4] == *b"PK\x03\x04" && w[6] & 0x08 != 0);
        assert_eq!(
            data_descriptors,
            tool.ends_with("streamed"),
            "{tool}: data descriptors"
        );
        let sandbox = Sandbox::new();
        sandbox.publish_zip_verified(&zip);
        let result = sandbox.install();
        assert_eq!(result.code, 0, "{tool}: {result:?}");
        assert_eq!(
            result.stderr,
            format!(
                "warning: {COORD}: a service running as another user could not read etc/secret.conf, private/, private/key\n"
            ),
            "{tool}"
        );
        let mut installed = snapshot(&sandbox.install_dir());
        let mut want = expected.clone();
        installed.retain(|e| !e.0.is_empty());
        want.retain(|e| !e.0.is_empty());
        assert_eq!(installed, want, "{tool}");
    }
}

/// A package dir as the original copkg left it: files, a link, a nested
/// dir; no marker, no manifest.
fn original_install(dir: &Path) {
    for (name, data, mode) in [
        ("bin/hello", "#!/bin/sh\necho hello\n", 0o755),
        ("etc/hello.conf", "greeting=hello\n", 0o644),
        ("lib/deep/er/data.txt", "data\n", 0o644),
    ] {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("../etc/hello.conf", dir.join("lib/conf")).unwrap();
    let status = std::process::Command::new("chmod")
        .args(["-R", "go-w"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn adopt_records_an_original_install_then_verify_is_clean_and_adopt_again_is_a_no_op() {
    let sandbox = Sandbox::new();
    let dir = sandbox.install_dir();
    original_install(&dir);
    // What an adopt killed before its marker was whole leaves: replaced.
    std::fs::write(dir.join(".copkg-manifest.json"), "{\"copkg_manifest\":1}\n").unwrap();
    std::fs::write(dir.join(".copkg-install.json"), "{\"coordi").unwrap();
    let out = run(sandbox.copkg().args(["adopt", COORD]));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            format!("adopted {COORD} in {} (9 entries)\n", dir.display()).as_str(),
            format!("warning: {COORD} was adopted without an archive or checksum to verify it against; `copkg verify` checks it against what is there now\n").as_str()
        )
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".copkg-install.json")).unwrap()).unwrap();
    assert_eq!(marker["coordinate"], COORD);
    assert_eq!(marker["source"], "adopted");
    assert_eq!(marker["verified"], false);
    assert_eq!(marker["sha256"], serde_json::Value::Null);
    assert!(dir.join(".copkg-manifest.json").is_file());

    let out = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{COORD}: ok (3 files)\n"))
    );
    let listed = json_lines(&run(sandbox.copkg().args(["--json", "list"])).stdout);
    assert_eq!(listed[0]["source"], "adopted");
    assert_eq!(listed[0]["verified"], false);
    let out = run(sandbox.copkg().args(["resolve", COORD]));
    assert!(
        out.stdout
            .contains("state: installed (adopted, unverified)\n"),
        "{}",
        out.stdout
    );

    let out = run(sandbox.copkg().args(["adopt", COORD]));
    assert_eq!(
        (out.code, out.stdout, out.stderr),
        (
            0,
            format!("{COORD} is already installed in {}\n", dir.display()),
            String::new()
        )
    );
    let out = run(sandbox.copkg().args(["--json", "adopt", COORD]));
    let value = &json_lines(&out.stdout)[0];
    assert_eq!(value["changed"], false);
    assert_eq!(value["status"], "already-installed");

    // The manifest is what the dir held: a change shows.
    std::fs::write(dir.join("etc/hello.conf"), "greeting=changed\n").unwrap();
    let out = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout),
        (13, format!("{COORD}: modified etc/hello.conf\n"))
    );
    // And an adopted package uninstalls like any other.
    let out = run(sandbox.copkg().args(["uninstall", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!dir.exists());
}

#[test]
fn adopt_refuses_what_an_install_could_not_have_made_writing_nothing() {
    /// What is wrong, how to make it so, and the reason adopt gives.
    type Case = (&'static str, fn(&Path), &'static str);
    let mut cases: Vec<Case> = vec![
        (
            "an escaping symlink",
            |dir| std::os::unix::fs::symlink("/etc/passwd", dir.join("lib/passwd")).unwrap(),
            "`lib/passwd` links to the absolute path `/etc/passwd`",
        ),
        (
            "a link climbing out",
            |dir| std::os::unix::fs::symlink("../../../..", dir.join("lib/up")).unwrap(),
            "`lib/up` links outside the package (`../../../..`)",
        ),
        (
            "a group-writable file",
            |dir| {
                std::fs::set_permissions(
                    dir.join("etc/hello.conf"),
                    std::fs::Permissions::from_mode(0o664),
                )
                .unwrap()
            },
            "`etc/hello.conf` has mode 0664, which an install would make 0644: change it (chmod) and adopt again",
        ),
        (
            "a fifo",
            |dir| {
                nix::unistd::mkfifo(
                    &dir.join("lib/pipe"),
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                )
                .unwrap()
            },
            "`lib/pipe` is a fifo",
        ),
    ];
    // Only root can give a file to another user.
    if nix::unistd::geteuid().is_root() {
        cases.push((
            "a file another user owns",
            |dir| {
                nix::unistd::chown(
                    &dir.join("bin/hello"),
                    Some(nix::unistd::Uid::from_raw(65534)),
                    None,
                )
                .unwrap()
            },
            "`bin/hello` is owned by uid 65534, not by copkg's user or root: its owner could change the package",
        ));
    }
    for (what, spoil, reason) in cases {
        let sandbox = Sandbox::new();
        let dir = sandbox.install_dir();
        original_install(&dir);
        spoil(&dir);
        let out = run(sandbox.copkg().args(["adopt", COORD]));
        assert_eq!(out.code, 5, "{what}: {out:?}");
        assert_eq!(
            out.stderr,
            format!(
                "error: cannot adopt {COORD}\n  caused by: cannot adopt {}: {reason}\n",
                dir.display()
            ),
            "{what}"
        );
        assert!(!dir.join(".copkg-install.json").exists(), "{what}");
        assert!(!dir.join(".copkg-manifest.json").exists(), "{what}");
        assert_eq!(run(sandbox.copkg().arg("list")).stdout, "", "{what}");
    }
}

#[test]
fn adopt_refuses_a_dir_holding_or_inside_another_package_and_an_empty_one() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    assert_eq!(sandbox.install().code, 0);
    // `com:example:hello` installs into the parent of COORD's dir.
    let out = run(sandbox.copkg().args(["adopt", "com:example:hello"]));
    assert_eq!(out.code, 2, "{out:?}");
    let parent = sandbox.root().join("com/example/hello");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot adopt com:example:hello\n  caused by: {} (com:example:hello) would contain {} ({COORD}); install dirs may not nest\n",
            parent.display(),
            sandbox.install_dir().display()
        )
    );
    assert!(!parent.join(".copkg-install.json").exists());

    // A dir inside an installed package: `com.example.hello:1.0.0:lib`
    // installs into COORD's `lib/`.
    let out = run(sandbox
        .copkg()
        .args(["adopt", "com.example.hello:1.0.0:lib"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot adopt com.example.hello:1.0.0:lib\n  caused by: {}/lib (com.example.hello:1.0.0:lib) would lie inside {0} ({COORD}); install dirs may not nest\n",
            sandbox.install_dir().display()
        )
    );

    let out = run(sandbox.copkg().args(["adopt", "com.example:nothing:1"]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("nothing to adopt"), "{}", out.stderr);
}
