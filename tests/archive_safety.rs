//! shared/SECURITY.md part A: hostile archives, built here byte by byte,
//! installed through the real binary from a file repository. Each must be
//! refused whole with exit code 5 and a message naming the entry, leave
//! nothing outside the target and nothing at the install dir, and the next
//! good install must succeed.

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// The exact stderr of a refused install whose innermost cause is `cause`.
fn expected_refusal(sandbox: &Sandbox, cause: &str) -> String {
    format!(
        "error: cannot install {COORD}\n  caused by: cannot unpack {COORD} from {}\n  caused by: {cause}\n",
        sandbox.repo().join(ARCHIVE_PATH).display()
    )
}

/// Installs `archive` (with a correct sidecar) and checks it is refused with
/// exactly `cause`, leaves nothing behind, and a good archive installs after.
fn assert_refused(archive: &[u8], cause: &str) {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(archive);
    let out = sandbox.install();
    assert_eq!(out.stderr, expected_refusal(&sandbox, cause));
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(!sandbox.install_dir().exists());
    assert_eq!(
        sandbox.tree(),
        ["home", "software"],
        "something was written outside"
    );
    let leftovers = std::fs::read_dir(sandbox.root().join(".copkg/tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "temp dirs left behind");

    sandbox.publish_verified(&good_archive());
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("bin/hello").is_file());
}

#[test]
fn a1_dotdot_entry_is_refused_not_skipped() {
    let archive = Tar::new()
        .file("bin/ok", b"x", 0o644)
        .file("../outside/x", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `../outside/x` has a `..` component",
    );
}

#[test]
fn a1_dotdot_through_pax_path_is_refused() {
    let archive = Tar::new()
        .pax(&[("path", "a/../../outside/x")])
        .file("innocent", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `a/../../outside/x` has a `..` component",
    );
}

#[test]
fn a2_absolute_path_is_refused() {
    let archive = Tar::new()
        .file("/tmp/copkg-a2-x", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `/tmp/copkg-a2-x` has an absolute path",
    );
    assert!(!std::path::Path::new("/tmp/copkg-a2-x").exists());
}

#[test]
fn a3_symlink_to_absolute_path_then_write_through_it_is_refused() {
    let sandbox_outside = tempfile::tempdir().unwrap();
    let target = sandbox_outside.path().display().to_string();
    let archive = Tar::new()
        .symlink("l", &target)
        .file("l/secret", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        &format!("unsafe archive: entry `l` links to the absolute path `{target}`"),
    );
    assert_eq!(
        std::fs::read_dir(sandbox_outside.path()).unwrap().count(),
        0
    );
}

#[test]
fn a3_symlink_climbing_out_is_refused() {
    let archive = Tar::new()
        .symlink("l", "../..")
        .file("l/secret", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `l` links outside the package (`../..`)",
    );
}

#[test]
fn a3_write_through_an_in_package_symlink_is_refused() {
    // Even a link that stays inside may not be written through.
    let archive = Tar::new()
        .dir("real/")
        .symlink("l", "real")
        .file("l/x", b"data", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `l/x` would be written through the symlink `l`",
    );
}

#[test]
fn a4_symlink_chain_leaving_the_package_is_refused() {
    // a -> b is fine on its own; b -> outside is not; a/x would go through both.
    let archive = Tar::new()
        .symlink("a", "b")
        .symlink("b", "../outside")
        .file("a/x", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `b` links outside the package (`../outside`)",
    );
}

#[test]
fn a4_link_climbing_through_another_link_is_refused() {
    // d/l -> .. points at the root; `x -> d/l/..` would resolve above it.
    let archive = Tar::new()
        .dir("d/")
        .symlink("d/l", "..")
        .symlink("x", "d/l/..")
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `x` has `..` after a name in its link target `d/l/..`",
    );
}

#[test]
fn a5_regular_file_over_a_symlink_is_refused() {
    let archive = Tar::new()
        .symlink("l", "etc/conf")
        .file("l", b"evil", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `l` appears twice in the archive",
    );
}

#[test]
fn a6_symlink_to_etc_passwd_is_refused_and_in_package_links_are_fine() {
    let archive = Tar::new().symlink("passwd", "/etc/passwd").end().gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `passwd` links to the absolute path `/etc/passwd`",
    );

    let sandbox = Sandbox::new();
    let archive = Tar::new()
        .file("etc/app.conf", b"conf", 0o644)
        .symlink("lib/app.conf", "../etc/app.conf")
        .symlink("current", "lib")
        .end()
        .gz();
    sandbox.publish_verified(&archive);
    assert_eq!(sandbox.install().code, 0);
    let dir = sandbox.install_dir();
    assert_eq!(
        std::fs::read_link(dir.join("lib/app.conf")).unwrap(),
        std::path::Path::new("../etc/app.conf")
    );
    assert_eq!(
        std::fs::read(dir.join("current/app.conf")).unwrap(),
        b"conf"
    );
}

#[test]
fn a7_hard_links_outside_are_refused_and_in_package_ones_work() {
    let archive = Tar::new().hardlink("h", "/etc/passwd").end().gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `h` is a hard link to a path outside the package",
    );
    let archive = Tar::new().hardlink("h", "../x").end().gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `h` is a hard link to a path outside the package",
    );
    let archive = Tar::new()
        .hardlink("h", "later")
        .file("later", b"x", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `h` is a hard link to something that is not an earlier regular file of the package",
    );

    let sandbox = Sandbox::new();
    let archive = Tar::new()
        .file("a", b"shared", 0o644)
        .hardlink("b", "a")
        .end()
        .gz();
    sandbox.publish_verified(&archive);
    assert_eq!(sandbox.install().code, 0);
    assert_eq!(
        std::fs::read(sandbox.install_dir().join("b")).unwrap(),
        b"shared"
    );
}

#[test]
fn a8_devices_and_fifos_are_refused() {
    for (kind, what) in [
        (CHAR, "a character device (type '3')"),
        (BLOCK, "a block device (type '4')"),
        (FIFO, "a fifo (type '6')"),
    ] {
        let archive = Tar::new()
            .header(b"dev/node", kind, 0, 0o666, b"")
            .end()
            .gz();
        assert_refused(
            &archive,
            &format!("unsafe archive: entry `dev/node` is {what}"),
        );
    }
}

#[test]
fn a9_modes_lose_special_bits_and_group_other_write_and_are_never_widened() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let archive = Tar::new()
        .header(b"setuid", REGULAR, 1, 0o6777, b"")
        .data(b"x")
        .header(b"sticky-dir/", DIR, 0, 0o1777, b"")
        .header(b"plain", REGULAR, 1, 0o666, b"")
        .data(b"y")
        .header(b"group-exec", REGULAR, 1, 0o070, b"")
        .data(b"z")
        .header(b"private", REGULAR, 1, 0o600, b"")
        .data(b"p")
        .header(b"private-dir/", DIR, 0, 0o700, b"")
        .header(b"private-dir/inner", REGULAR, 1, 0o640, b"")
        .data(b"i")
        .end()
        .gz();
    sandbox.publish_verified(&archive);
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "warning: {COORD}: a service running as another user could not read group-exec, private, private-dir/, private-dir/inner\n"
        )
    );
    let mode = |p: &str| {
        std::fs::metadata(sandbox.install_dir().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("setuid"), 0o755);
    assert_eq!(mode("sticky-dir"), 0o755);
    assert_eq!(mode("plain"), 0o644);
    assert_eq!(mode("group-exec"), 0o050);
    assert_eq!(mode("private"), 0o600);
    assert_eq!(mode("private-dir"), 0o700);
    assert_eq!(mode("private-dir/inner"), 0o640);
    // The install dir itself is 0755 whatever the archive says.
    assert_eq!(mode(""), 0o755);
}

#[test]
fn a10_duplicates_are_refused() {
    let cases = [
        (
            Tar::new()
                .file("x", b"1", 0o644)
                .file("x", b"2", 0o644)
                .end()
                .gz(),
            "x",
        ),
        (Tar::new().file("x", b"1", 0o644).dir("x/").end().gz(), "x/"),
        (Tar::new().dir("x/").file("x", b"1", 0o644).end().gz(), "x"),
        (Tar::new().dir("x/").dir("./x").end().gz(), "./x"),
    ];
    for (archive, second) in cases {
        assert_refused(
            &archive,
            &format!("unsafe archive: entry `{second}` appears twice in the archive"),
        );
    }
    // A file under a path a file already holds.
    let archive = Tar::new()
        .file("x", b"1", 0o644)
        .file("x/y", b"2", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `x/y` needs `x` to be a directory, but it is a file",
    );
}

#[test]
fn a11_bad_names_are_refused() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"bad\xffname",
            "`bad\u{FFFD}name` has a name that is not UTF-8",
        ),
        (
            b"new\nline",
            "`new\\nline` has a control character in its name",
        ),
        (
            b"esc\x1b[31m",
            "`esc\\u{1b}[31m` has a control character in its name",
        ),
    ];
    for (name, cause) in cases {
        let archive = Tar::new().header(name, REGULAR, 0, 0o644, b"").end().gz();
        assert_refused(&archive, &format!("unsafe archive: entry {cause}"));
    }
}

#[test]
fn a12_overlong_names_are_refused() {
    let component = "c".repeat(256);
    let archive = Tar::new()
        .long_name(component.as_bytes())
        .file("ignored", b"x", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        &format!(
            "unsafe archive: entry `{component}` has a name component of 256 bytes (limit 255)"
        ),
    );
    let path = "d/".repeat(2100) + "f";
    let archive = Tar::new()
        .long_name(path.as_bytes())
        .file("ignored", b"x", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `././@LongLink` has a long name of 4202 bytes (limit 4096)",
    );
    // The same path through a PAX record is refused by its length.
    let archive = Tar::new()
        .pax(&[("path", &path)])
        .file("ignored", b"x", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        &format!("unsafe archive: entry `{path}` has a name of 4201 bytes (limit 4096)"),
    );
    // A long-name header claiming a huge size is refused before it is read.
    let archive = Tar::new()
        .header(b"././@LongLink", b'L', 1 << 40, 0o644, b"")
        .end()
        .gz();
    assert_refused(
        &archive,
        "unsafe archive: entry `././@LongLink` has a long name of 1099511627776 bytes (limit 4096)",
    );
}

#[test]
fn a12_long_names_within_limits_install() {
    let sandbox = Sandbox::new();
    let path = format!("{}/{}", "a".repeat(200), "b".repeat(200));
    let archive = Tar::new()
        .long_name(path.as_bytes())
        .file("ignored", b"deep", 0o644)
        .end()
        .gz();
    sandbox.publish_verified(&archive);
    assert_eq!(sandbox.install().code, 0);
    assert_eq!(
        std::fs::read(sandbox.install_dir().join(&path)).unwrap(),
        b"deep"
    );
}

#[test]
fn a13_gzip_bomb_is_stopped_at_the_limit() {
    // 64 MiB of zeros compresses to ~64 KiB; with a 16 MiB limit configured
    // the header's declared size is refused before any byte is written.
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    tar.header(b"zeros", REGULAR, 64 << 20, 0o644, b"");
    tar.bytes.resize(tar.bytes.len() + (64 << 20), 0);
    let archive = tar.end().gz();
    assert!(archive.len() < 1 << 20);
    sandbox.publish_verified(&archive);
    let out = sandbox.install_with_config(r#"{"maxUnpackedBytes": 16777216}"#);
    assert_eq!(
        out.stderr,
        expected_refusal(
            &sandbox,
            "archive exceeds the unpacked size limit of 16777216"
        )
    );
    assert_eq!(out.code, 5);
    assert!(!sandbox.install_dir().exists());
}

#[test]
fn a13_many_files_summing_past_the_limit_are_refused() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    let chunk = vec![7u8; 1 << 20];
    for i in 0..20 {
        tar.file(&format!("f{i}"), &chunk, 0o644);
    }
    sandbox.publish_verified(&tar.end().gz());
    let out = sandbox.install_with_config(r#"{"maxUnpackedBytes": 10485760}"#);
    assert_eq!(
        out.stderr,
        expected_refusal(
            &sandbox,
            "archive exceeds the unpacked size limit of 10485760"
        )
    );
    assert_eq!(out.code, 5);
}

#[test]
fn a13_entry_count_limit() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    for i in 0..20 {
        tar.file(&format!("f{i}"), b"", 0o644);
    }
    sandbox.publish_verified(&tar.end().gz());
    let out = sandbox.install_with_config(r#"{"maxEntries": 10}"#);
    assert_eq!(
        out.stderr,
        expected_refusal(&sandbox, "archive exceeds the entry count limit of 10")
    );
    assert_eq!(out.code, 5);
}

#[test]
fn a14_header_larger_than_the_data_is_refused_without_partial_file() {
    let mut tar = Tar::new();
    tar.header(b"big", REGULAR, 1 << 30, 0o644, b"");
    tar.bytes.extend_from_slice(b"only sixteen byt");
    let archive = gzip(&tar.bytes);
    assert_refused(
        &archive,
        "corrupt archive: archive is truncated inside `big` (16 of 1073741824 bytes present)",
    );
}

#[test]
fn a15_truncated_and_corrupt_gzip_is_refused() {
    let good = good_archive();
    let half = &good[..good.len() / 2];
    assert_refused(half, "corrupt archive: archive is truncated");

    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff; // CRC32 field of the gzip trailer
    assert_refused(
        &bad_crc,
        "corrupt archive: corrupt gzip stream does not have a matching checksum",
    );

    let short = &good[..good.len() - 4]; // ISIZE missing
    assert_refused(short, "corrupt archive: archive is truncated");
}

#[test]
fn a16_trailing_garbage_after_gzip_is_refused() {
    let mut archive = good_archive();
    archive.extend_from_slice(b"garbage");
    assert_refused(
        &archive,
        "corrupt archive: trailing data after the gzip stream",
    );
    // Zero padding that turns into something else is not padding.
    let mut archive = good_archive();
    archive.extend_from_slice(&[0; 100]);
    archive.extend_from_slice(b"x");
    assert_refused(
        &archive,
        "corrupt archive: trailing data after the gzip stream",
    );
    // A second gzip member that is not gzip at all.
    let mut archive = good_archive();
    archive.extend_from_slice(&[0x1f, 0x8b, 0xff, 0xff]);
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&archive);
    let out = sandbox.install();
    assert_eq!(out.code, 5, "{out:?}");
    assert!(!sandbox.install_dir().exists());
}

#[test]
fn a17_empty_archives_are_refused() {
    assert_refused(b"", "corrupt archive: empty archive (0 bytes)");
    assert_refused(&gzip(b""), "corrupt archive: empty archive (no entries)");
    assert_refused(
        &gzip(&[0u8; 10240]),
        "corrupt archive: empty archive (no entries)",
    );
}

#[test]
fn a18_entries_after_end_of_archive_are_refused() {
    let archive = Tar::new()
        .file("a", b"1", 0o644)
        .end()
        .file("hidden", b"2", 0o644)
        .end()
        .gz();
    assert_refused(
        &archive,
        "corrupt archive: data after the end-of-archive marker",
    );
}

#[test]
fn a19_existing_link_in_target_is_never_followed() {
    // A previous occupant of the install dir's parent cannot redirect the
    // unpack: it always happens in a fresh temp dir, and the install dir
    // itself must not exist yet.
    let sandbox = Sandbox::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sandbox.root().join("com/example/hello")).unwrap();
    std::os::unix::fs::symlink(outside.path(), sandbox.install_dir()).unwrap();
    sandbox.publish_verified(&good_archive());
    let out = sandbox.install();
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot install {COORD}\n  caused by: {} exists but is not a complete copkg install; move it away first\n",
            sandbox.install_dir().display()
        )
    );
    assert_eq!(out.code, 1);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

// H3: archives as real tools write them are installed, by the same rules.

/// A tree like packages in the wild: long and non-ASCII names (npm writes PAX
/// records for those), a backslash in a name (systemd unit names), private
/// modes, an executable, links, and a fixed mtime on everything.
fn real_world_tree(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let long = format!("lib/{}/deep.js", "n".repeat(120));
    let files: [(&str, u32); 6] = [
        (long.as_str(), 0o644),
        ("lib/caf\u{e9}/m\u{f8}de.txt", 0o644),
        ("etc/foo\\x2dbar.service", 0o644),
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
fn snapshot(dir: &std::path::Path) -> Vec<(String, char, u32, i64, Vec<u8>)> {
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
                let target = std::fs::read_link(&path).unwrap();
                ('l', target.display().to_string().into_bytes())
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
fn h3_archives_from_gnu_tar_bsdtar_busybox_python_and_git_install_whole() {
    let source = tempfile::tempdir().unwrap();
    real_world_tree(source.path());
    let expected = snapshot(source.path());
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("a.tar.gz");
    let src = source.path().to_str().unwrap().to_owned();
    let python = "import sys, tarfile\n\
        fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT}[sys.argv[3]]\n\
        with tarfile.open(sys.argv[1], 'w:gz', format=fmt) as t:\n    t.add(sys.argv[2], arcname='.')\n";
    let tools: Vec<(&str, Vec<String>)> = vec![
        (
            "GNU tar (gnu)",
            vec![
                "tar".into(),
                "--format=gnu".into(),
                "-czf".into(),
                out.display().to_string(),
                "-C".into(),
                src.clone(),
                ".".into(),
            ],
        ),
        (
            "GNU tar (posix)",
            vec![
                "tar".into(),
                "--format=posix".into(),
                "-czf".into(),
                out.display().to_string(),
                "-C".into(),
                src.clone(),
                ".".into(),
            ],
        ),
        (
            "bsdtar",
            vec![
                "bsdtar".into(),
                "-czf".into(),
                out.display().to_string(),
                "-C".into(),
                src.clone(),
                ".".into(),
            ],
        ),
        (
            "busybox tar",
            vec![
                "busybox".into(),
                "tar".into(),
                "-czf".into(),
                out.display().to_string(),
                "-C".into(),
                src.clone(),
                ".".into(),
            ],
        ),
        (
            "python tarfile (pax)",
            vec![
                "python3".into(),
                "-c".into(),
                python.into(),
                out.display().to_string(),
                src.clone(),
                "pax".into(),
            ],
        ),
        (
            "python tarfile (gnu)",
            vec![
                "python3".into(),
                "-c".into(),
                python.into(),
                out.display().to_string(),
                src.clone(),
                "gnu".into(),
            ],
        ),
    ];
    for (tool, argv) in tools {
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(status.success(), "{tool} failed");
        let archive = std::fs::read(&out).unwrap();
        let sandbox = Sandbox::new();
        sandbox.publish_verified(&archive);
        let result = sandbox.install();
        assert_eq!(result.code, 0, "{tool}: {result:?}");
        // What the account cannot read is named, nothing else is said.
        assert_eq!(
            result.stderr,
            format!(
                "warning: {COORD}: a service running as another user could not read etc/secret.conf, private/, private/key\n"
            ),
            "{tool}"
        );
        let mut installed = snapshot(&sandbox.install_dir());
        // Modes, mtimes, contents and link targets as archived: private/
        // is 0750 in the tree and stays so; no bit is added.
        let mut want = expected.clone();
        installed.retain(|e| !e.0.is_empty());
        want.retain(|e| !e.0.is_empty());
        assert_eq!(installed, want, "{tool}");
    }
}

#[test]
fn h3_git_archive_installs_with_gits_modes_and_times() {
    let repo = tempfile::tempdir().unwrap();
    real_world_tree(repo.path());
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "core.quotepath=off",
            ])
            .args(args)
            .env("GIT_COMMITTER_DATE", "1600000000 +0000")
            .env("GIT_AUTHOR_DATE", "1600000000 +0000")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "x"]);
    let archive = std::process::Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .args(["archive", "--format=tar.gz", "HEAD"])
        .output()
        .unwrap()
        .stdout;
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&archive);
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    let dir = sandbox.install_dir();
    for name in [
        "etc/foo\\x2dbar.service",
        "lib/caf\u{e9}/m\u{f8}de.txt",
        "bin/run",
    ] {
        assert_eq!(
            std::fs::read_to_string(dir.join(name)).unwrap(),
            format!("content of {name}\n")
        );
    }
    assert_eq!(
        std::fs::read_link(dir.join("lib/run")).unwrap(),
        std::path::Path::new("../bin/run")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dir.join("bin/run")).unwrap().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(dir.join("bin/run")).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn h3_gzip_members_zero_padding_and_pax_records_are_accepted() {
    use std::io::Read;
    let tar = {
        let mut t = Tar::new();
        t.pax(&[
            ("path", "lib/named/by/pax.txt"),
            ("size", "5"),
            ("mtime", "1600000000.25"),
        ])
        .header(b"short", REGULAR, 5, 0o644, b"")
        .data(b"hello")
        .file("lib/second", b"world", 0o644)
        .mtime(1_500_000_000)
        .end();
        t.bytes.clone()
    };
    // Two gzip members (split inside the tar stream), then zero padding.
    let half = tar.len() / 2;
    let mut archive = gzip(&tar[..half]);
    archive.extend_from_slice(&gzip(&tar[half..]));
    archive.extend_from_slice(&[0; 4096]);
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&archive);
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    let dir = sandbox.install_dir();
    use std::os::unix::fs::MetadataExt;
    let mut text = String::new();
    std::fs::File::open(dir.join("lib/named/by/pax.txt"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello");
    assert_eq!(
        std::fs::metadata(dir.join("lib/named/by/pax.txt"))
            .unwrap()
            .mtime(),
        1_600_000_000
    );
    assert_eq!(
        std::fs::metadata(dir.join("lib/second")).unwrap().mtime(),
        1_500_000_000
    );
    assert!(!dir.join("short").exists());
}

#[test]
fn h3_what_stays_refused_names_the_entry() {
    let mismatch = Tar::new()
        .pax(&[("size", "9")])
        .header(b"lib/liar", REGULAR, 5, 0o644, b"")
        .data(b"hello")
        .end()
        .gz();
    assert_refused(
        &mismatch,
        "unsafe archive: entry `lib/liar` has a size of 9 in its PAX record but 5 in its header",
    );
    let pax_sparse = Tar::new()
        .pax(&[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")])
        .header(b"disk.img", REGULAR, 5, 0o644, b"")
        .data(b"hello")
        .end()
        .gz();
    assert_refused(
        &pax_sparse,
        "unsafe archive: entry `disk.img` is a sparse file (GNU sparse formats are not supported)",
    );
    let gnu_sparse = Tar::new()
        .header(b"old.img", b'S', 0, 0o644, b"")
        .end()
        .gz();
    assert_refused(
        &gnu_sparse,
        "unsafe archive: entry `old.img` is a sparse file (GNU sparse formats are not supported)",
    );
    let bad_pax = Tar::new()
        .header(b"PaxHeaders/x", b'x', 7, 0o644, b"")
        .data(b"garbage")
        .file("x", b"1", 0o644)
        .end()
        .gz();
    assert_refused(
        &bad_pax,
        "unsafe archive: entry `PaxHeaders/x` is a PAX header with a malformed record",
    );
}

#[test]
fn h3_directories_count_toward_the_size_limit() {
    let mut tar = Tar::new();
    for i in 0..300 {
        tar.dir(&format!("d{i}/"));
    }
    let archive = tar.file("f", b"x", 0o644).end().gz();
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&archive);
    let out = sandbox.install_with_config(r#"{"maxUnpackedBytes": 1048576}"#);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .ends_with("caused by: archive exceeds the unpacked size limit of 1048576\n"),
        "{}",
        out.stderr
    );
    assert!(!sandbox.install_dir().exists());
}

/// Small files are written from several threads while the archive is
/// unpacked: every one lands whole, with its mode and mtime, a hard link
/// to one of them works, a large file in between is streamed (by a thread
/// of its own, a hard link to it too), the
/// directories get their modes last, and the manifest (built from the
/// digests taken as the files were written) verifies clean.
#[test]
fn small_files_written_from_several_threads_are_whole_and_verify_clean() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    tar.dir("lib");
    let content = |n: usize| format!("file {n}\n").repeat(n % 97 + 1).into_bytes();
    for n in 0..600 {
        let mode = if n % 7 == 0 { 0o600 } else { 0o644 };
        tar.file(&format!("lib/f{n}"), &content(n), mode)
            .mtime(1_600_000_000 + n as u64);
        if n == 300 {
            tar.file("big", &vec![7u8; 3 << 20], 0o644);
        }
    }
    tar.hardlink("lib/link", "lib/f599");
    tar.hardlink("big-link", "big");
    tar.header(b"ro", b'5', 0, 0o750, b"").mtime(1_500_000_000);
    for n in 0..50 {
        tar.file(&format!("ro/inside{n}"), b"in a dir of its own mode", 0o644);
    }
    let archive = tar.end().gz();
    sandbox.publish_verified(&archive);
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    let dir = sandbox.install_dir();
    for n in 0..600 {
        let path = dir.join(format!("lib/f{n}"));
        assert_eq!(std::fs::read(&path).unwrap(), content(n), "{n}");
        let meta = std::fs::metadata(&path).unwrap();
        let mode = if n % 7 == 0 { 0o600 } else { 0o644 };
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{n}");
        assert_eq!(meta.mtime(), 1_600_000_000 + n as i64, "{n}");
    }
    assert_eq!(std::fs::read(dir.join("lib/link")).unwrap(), content(599));
    assert_eq!(std::fs::read(dir.join("big")).unwrap(), vec![7u8; 3 << 20]);
    assert_eq!(
        std::fs::read(dir.join("big-link")).unwrap(),
        vec![7u8; 3 << 20]
    );
    // The dir's mode and mtime come after every file written into it.
    let ro = std::fs::metadata(dir.join("ro")).unwrap();
    assert_eq!(ro.permissions().mode() & 0o777, 0o750);
    assert_eq!(ro.mtime(), 1_500_000_000);
    for n in 0..50 {
        assert_eq!(
            std::fs::read(dir.join(format!("ro/inside{n}"))).unwrap(),
            b"in a dir of its own mode"
        );
    }
    let verify = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("ok (653 files)"), "{verify:?}");
}
