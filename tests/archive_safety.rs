//! shared/SECURITY.md part A: hostile archives, built here byte by byte,
//! installed through the real binary from a file repository. Each must be
//! refused whole with exit code 5 and a message naming the entry, leave
//! nothing outside the target and nothing at the install dir, and the next
//! good install must succeed.

mod common;

use common::*;

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
fn a9_modes_are_normalized() {
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
        .end()
        .gz();
    sandbox.publish_verified(&archive);
    assert_eq!(sandbox.install().code, 0);
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
    assert_eq!(mode("group-exec"), 0o755);
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
    // A second gzip member counts as trailing data too.
    let mut archive = good_archive();
    archive.extend_from_slice(&gzip(b"more"));
    assert_refused(
        &archive,
        "corrupt archive: trailing data after the gzip stream",
    );
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
