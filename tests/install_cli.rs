//! The store commands end to end through the binary: pack, install from a
//! real static HTTP server (python3) and from file repositories, list,
//! resolve, uninstall; checksums and pins; config files, site scripts and
//! exit codes (SECURITY.md C5, C6, E1–E5).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Packs `packages-example/hello` into the sandbox repository as COORD.
fn pack_example(sandbox: &Sandbox) -> Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello");
    run(sandbox
        .copkg()
        .arg("pack")
        .arg(&dir)
        .args(["--coordinate", COORD, "--out"])
        .arg(sandbox.repo()))
}

fn archive_bytes(sandbox: &Sandbox) -> Vec<u8> {
    std::fs::read(sandbox.repo().join(ARCHIVE_PATH)).unwrap()
}

#[test]
fn pack_install_list_resolve_uninstall_over_http() {
    let sandbox = Sandbox::new();
    let packed = pack_example(&sandbox);
    assert_eq!(packed.code, 0, "{packed:?}");
    let digest = sha256_hex(&archive_bytes(&sandbox));
    let archive = sandbox.repo().join(ARCHIVE_PATH);
    assert_eq!(
        packed.stdout,
        format!(
            "packed {COORD} into {} (sha256 {digest})\n",
            archive.display()
        )
    );
    let sidecar = std::fs::read_to_string(format!("{}.sha256", archive.display())).unwrap();
    assert_eq!(sidecar, format!("{digest}  hello-1.0.0-copkg.tar.gz\n"));

    let server = StaticServer::start(&sandbox.repo());
    let install = || {
        run(sandbox
            .copkg()
            .args(["--repo", &server.url, "install", COORD]))
    };
    let out = install();
    let dir = sandbox.install_dir();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            format!("installed {COORD} in {}\n", dir.display()).as_str(),
            ""
        )
    );
    let hello = std::process::Command::new(dir.join("bin/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&hello.stdout), "hello from copkg\n");

    let out = install();
    assert_eq!(
        (out.code, out.stdout),
        (
            0,
            format!("{COORD} is already installed in {}\n", dir.display())
        )
    );

    let out = run(sandbox.copkg().arg("list"));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("{COORD}\n").as_str())
    );

    let out = run(sandbox
        .copkg()
        .args(["--repo", &server.url, "resolve", COORD]));
    let url = format!("{}/{ARCHIVE_PATH}", server.url);
    let zip = url.replace(".tar.gz", ".zip");
    assert_eq!(
        out.stdout,
        format!(
            "coordinate: {COORD}\ninstall dir: {}\nstate: installed (sha256 {digest}, from {url})\narchive: {url}\nsha256: {url}.sha256\nzip: {zip}\nzip sha256: {zip}.sha256\n",
            dir.display()
        )
    );

    let out = run(sandbox.copkg().args(["uninstall", COORD]));
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("uninstalled {COORD} from {}\n", dir.display()))
    );
    assert!(!dir.exists());
    assert_eq!(
        std::fs::read_dir(sandbox.root().join(".copkg/trash"))
            .unwrap()
            .count(),
        0
    );
    let out = run(sandbox.copkg().args(["uninstall", COORD]));
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{COORD} is not installed\n"))
    );
    let out = run(sandbox.copkg().arg("list"));
    assert_eq!(out.stdout, "");
}

#[test]
fn pack_is_reproducible_and_refuses_to_replace_a_different_archive() {
    let sandbox = Sandbox::new();
    assert_eq!(pack_example(&sandbox).code, 0);
    let first = archive_bytes(&sandbox);
    assert_eq!(pack_example(&sandbox).code, 0);
    assert_eq!(archive_bytes(&sandbox), first);

    // The same tree copied elsewhere, with new mtimes, packs to the same bytes.
    let copy = sandbox.path().join("copy");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let other = Sandbox::new();
    let out = run(other
        .copkg()
        .arg("pack")
        .arg(&copy)
        .args(["--coordinate", COORD, "--out"])
        .arg(other.repo()));
    assert_eq!(out.code, 0);
    assert_eq!(archive_bytes(&other), first);

    std::fs::write(copy.join("etc/hello.conf"), "GREETING=changed\n").unwrap();
    let out = run(sandbox
        .copkg()
        .arg("pack")
        .arg(&copy)
        .args(["--coordinate", COORD, "--out"])
        .arg(sandbox.repo()));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("already exists with different content"),
        "{}",
        out.stderr
    );
    assert_eq!(archive_bytes(&sandbox), first);
}

#[test]
fn install_many_from_stdin_in_parallel() {
    let sandbox = Sandbox::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello");
    let coordinates: Vec<String> = (1..=6)
        .map(|i| format!("com.example:hello:1.0.{i}"))
        .collect();
    for c in &coordinates {
        let out = run(sandbox
            .copkg()
            .arg("pack")
            .arg(&dir)
            .args(["--coordinate", c, "--out"])
            .arg(sandbox.repo()));
        assert_eq!(out.code, 0);
    }
    let input = format!("# rollout\n\n{}\n", coordinates.join("\n"));
    let mut child = sandbox
        .copkg()
        .args(["-q", "--repo"])
        .arg(sandbox.repo())
        .args(["install", "-j", "3", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    let want: Vec<String> = coordinates
        .iter()
        .map(|c| {
            format!(
                "installed {c} in {}",
                sandbox
                    .root()
                    .join("com/example/hello")
                    .join(&c[18..])
                    .display()
            )
        })
        .collect();
    assert_eq!(lines, want);
    let listed = run(sandbox.copkg().arg("list")).stdout;
    assert_eq!(listed, coordinates.join("\n") + "\n");
}

/// copkg `install -j 2 -` with stdin kept open, and its stdout lines as
/// they come.
struct StreamingInstall {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl StreamingInstall {
    fn start(sandbox: &Sandbox) -> Self {
        let mut child = sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .args(["install", "-j", "2", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        StreamingInstall {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, text: &str) {
        self.try_send(text).unwrap();
    }

    fn try_send(&mut self, text: &str) -> std::io::Result<()> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("no result line from copkg within 30 s")
    }

    /// Waits for the exit (at most 30 s); its code and stderr.
    fn wait(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "copkg did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        use std::io::Read;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

impl Drop for StreamingInstall {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn install_from_stdin_starts_each_line_as_it_arrives() {
    let sandbox = Sandbox::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello");
    for version in ["1.0.1", "1.0.2"] {
        sandbox.pack(&dir, &format!("com.example:hello:{version}"));
    }
    let installed = |version: &str| {
        format!(
            "installed com.example:hello:{version} in {}",
            sandbox
                .root()
                .join("com/example/hello")
                .join(version)
                .display()
        )
    };
    let mut install = StreamingInstall::start(&sandbox);
    install.send("com.example:hello:1.0.1\n");
    // Installed and reported while stdin is still open.
    assert_eq!(install.next_line(), installed("1.0.1"));
    assert!(
        sandbox
            .root()
            .join("com/example/hello/1.0.1/.copkg-install.json")
            .is_file()
    );
    // A duplicate, a comment and a new one; then the end of stdin.
    install.send("# more\ncom.example:hello:1.0.1\n\ncom.example:hello:1.0.2\n");
    assert_eq!(install.next_line(), installed("1.0.2"));
    drop(install.stdin.take());
    let (code, stderr) = install.wait();
    assert_eq!((code, stderr.as_str()), (0, ""));
    let listed = run(sandbox.copkg().arg("list")).stdout;
    assert_eq!(listed, "com.example:hello:1.0.1\ncom.example:hello:1.0.2\n");
}

#[test]
fn a_bad_line_on_stdin_ends_the_install_after_what_started() {
    let sandbox = Sandbox::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello");
    sandbox.pack(&dir, COORD);
    let mut install = StreamingInstall::start(&sandbox);
    install.send(&format!("{COORD}\n"));
    assert!(
        install
            .next_line()
            .starts_with(&format!("installed {COORD} in "))
    );
    // stdin stays open: the bad line alone ends the command.
    install.send("com.example:hello\n");
    let stdin = install.stdin.take();
    let (code, stderr) = install.wait();
    drop(stdin);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("error: stdin line 2\n  caused by: invalid"),
        "{stderr}"
    );
    // A line too long to be a coordinate is refused without being read whole.
    let mut install = StreamingInstall::start(&sandbox);
    // copkg stops reading (and exits) long before the end of it.
    let _ = install.try_send(&"a".repeat(1 << 20));
    let stdin = install.stdin.take();
    let (code, stderr) = install.wait();
    drop(stdin);
    assert_eq!(
        (code, stderr.as_str()),
        (2, "error: stdin line 1: longer than 4096 bytes\n")
    );
}

#[test]
fn partial_failure_reports_each_and_exits_with_the_first_code() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let out = run(sandbox.copkg().arg("--repo").arg(sandbox.repo()).args([
        "install",
        "-j",
        "1",
        COORD,
        "com.example:missing:1",
    ]));
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("installed {COORD} in {}\n", sandbox.install_dir().display())
    );
    let missing = sandbox.repo().join("com/example/missing/1/missing-1-copkg");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot install com.example:missing:1\n  caused by: com.example:missing:1 was not found in any repository\n  {0}.tar.gz: not found\n  {0}.zip: not found\nerror: 1 of 2 installs failed\n",
            missing.display()
        )
    );
}

#[test]
fn an_unreachable_repository_is_a_network_failure_not_a_not_found() {
    let sandbox = Sandbox::new();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let empty = tempfile::tempdir().unwrap();
    let out = run(sandbox
        .copkg()
        .args(["--repo", &closed, "--repo"])
        .arg(empty.path())
        .args(["install", COORD]));
    assert_eq!(out.code, 9, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("error: cannot install {COORD}"),
            format!("  caused by: {COORD}: not every repository could be reached"),
        ]
    );
    assert!(
        lines[2].starts_with(&format!(
            "  {closed}/{ARCHIVE_PATH}.sha256: cannot connect: "
        )),
        "{}",
        out.stderr
    );
    let missing = empty.path().join(ARCHIVE_PATH).display().to_string();
    assert_eq!(
        lines[3..],
        [
            format!("  {missing}: not found"),
            format!("  {}: not found", missing.replace(".tar.gz", ".zip")),
        ]
    );

    // Every repository answering "not found" is exit 3.
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(empty.path())
        .args(["install", COORD]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("was not found in any repository"),
        "{}",
        out.stderr
    );

    // A dead proxy is named.
    let dead = format!("http://user:pw@127.0.0.1:{}", free_port());
    let out = run(sandbox.copkg().env("HTTP_PROXY", &dead).args([
        "--repo",
        "http://repo.invalid/",
        "install",
        COORD,
    ]));
    assert_eq!(out.code, 9, "{out:?}");
    let port = dead.rsplit(':').next().unwrap();
    assert!(
        out.stderr.contains(&format!(
            "http://repo.invalid/{ARCHIVE_PATH}.sha256: cannot connect (through proxy http://<redacted>@127.0.0.1:{port})"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(":pw@"), "{}", out.stderr);
}

#[test]
fn c5_sidecar_formats_through_a_real_server() {
    let archive = good_archive();
    let hex = sha256_hex(&archive);
    let accepted = [
        hex.clone(),
        format!("{hex}  hello-1.0.0-copkg.tar.gz\n"),
        format!("{hex} *hello-1.0.0-copkg.tar.gz\n"),
        format!("{}\r\n", hex.to_uppercase()),
        format!("\n\n{hex}\n"),
    ];
    for text in accepted {
        let sandbox = Sandbox::new();
        sandbox.publish(&archive, Some(&text));
        let server = StaticServer::start(&sandbox.repo());
        let out = run(sandbox
            .copkg()
            .args(["--repo", &server.url, "install", COORD]));
        assert_eq!(out.code, 0, "{text:?}: {out:?}");
    }
    for text in ["", "   \n", "not a digest\n", &hex[..40]] {
        let sandbox = Sandbox::new();
        sandbox.publish(&archive, Some(text));
        let out = sandbox.install();
        assert_eq!(out.code, 4, "{text:?}: {out:?}");
        assert!(
            out.stderr.contains("invalid checksum sidecar"),
            "{}",
            out.stderr
        );
        assert!(!sandbox.install_dir().exists());
    }
}

#[test]
fn c6_digest_mismatch_installs_nothing_and_is_not_retried_on_the_next_mirror() {
    let sandbox = Sandbox::new();
    let archive = good_archive();
    sandbox.publish(&archive, Some(&format!("{}\n", "0".repeat(64))));
    let mirror = Sandbox::new();
    mirror.publish_verified(&archive);
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("--repo")
        .arg(mirror.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot install {COORD}\n  caused by: checksum mismatch for {COORD} from {}: expected sha256 {}, got {}\n",
            sandbox.repo().join(ARCHIVE_PATH).display(),
            "0".repeat(64),
            sha256_hex(&archive)
        )
    );
    assert!(!sandbox.install_dir().exists());
    assert_eq!(
        std::fs::read_dir(sandbox.root().join(".copkg/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn digest_pins_are_enforced() {
    let sandbox = Sandbox::new();
    let archive = good_archive();
    let hex = sha256_hex(&archive);
    sandbox.publish(&archive, None);
    // A pin needs no sidecar.
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", &format!("{COORD}@sha256:{hex}")]));
    assert_eq!(out.code, 0, "{out:?}");
    // A different pin on an installed package is a mismatch, not a no-op.
    let other = "1".repeat(64);
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", &format!("{COORD}@sha256:{other}")]));
    assert_eq!(out.code, 4, "{out:?}");
    // A wrong pin on a fresh install is refused.
    let fresh = Sandbox::new();
    fresh.publish(&archive, None);
    let out = run(fresh
        .copkg()
        .arg("--repo")
        .arg(fresh.repo())
        .args(["install", &format!("{COORD}@sha256:{other}")]));
    assert_eq!(out.code, 4, "{out:?}");
    assert!(!fresh.install_dir().exists());
}

#[test]
fn missing_sidecar_is_refused_unless_configured_if_present() {
    let sandbox = Sandbox::new();
    sandbox.publish(&good_archive(), None);
    assert_eq!(sandbox.install().code, 3);
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"checksum": "if-present"}"#).unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        format!("warning: {COORD} was installed without a checksum to verify it against\n")
    );
    let out = run(sandbox.copkg().arg("--json").arg("list"));
    assert!(out.stdout.contains("\"verified\":false"), "{}", out.stdout);
}

#[test]
fn e3_malformed_coordinates_are_usage_errors() {
    let sandbox = Sandbox::new();
    for bad in [
        "a:b",
        "a:b:c:d",
        "../x:y:1",
        "a::1",
        "a b:c:1",
        "a:b:1@sha256:xyz",
    ] {
        let out = run(sandbox
            .copkg()
            .args(["--repo", "/nonexistent", "install", bad]));
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.starts_with("error: invalid"),
            "{bad}: {}",
            out.stderr
        );
    }
    let out = run(sandbox.copkg().args(["install"]));
    assert_eq!(out.code, 2);
}

#[test]
fn e4_config_errors_name_file_line_and_key() {
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        "{\n  \"packageDir\": \"/x\",\n  \"packageBaseURL\": \"http://h\"\n}\n",
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--config").arg(&config).arg("list"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with(&format!(
            "error: invalid config file {}: unknown field `packageBaseURL`",
            config.display()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("at line 3"), "{}", out.stderr);

    std::fs::write(
        &config,
        "{\n  \"packageDir\": \"/x\"\n  \"username\": \"u\"\n}\n",
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--config").arg(&config).arg("list"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("at line 3"), "{}", out.stderr);

    // The user's own config file is read from $HOME/.copkg/config.json.
    std::fs::create_dir_all(sandbox.path().join("home/.copkg")).unwrap();
    std::fs::write(
        sandbox.path().join("home/.copkg/config.json"),
        "{\"bogus\": 1}",
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("list"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("home/.copkg/config.json: unknown field `bogus`"),
        "{}",
        out.stderr
    );
}

#[test]
fn e5_password_is_never_printed() {
    let sandbox = Sandbox::new();
    let server = FaultServer::start(|_, _, stream| respond(stream, "401 Unauthorized", &[], b"no"));
    let config = sandbox.path().join("config.json");
    let secret = "hunter2-very-secret";
    std::fs::write(
        &config,
        format!(
            r#"{{"packageBaseUrl": "{}", "username": "deploy", "password": "{secret}"}}"#,
            server.url
        ),
    )
    .unwrap();
    for args in [
        vec!["-v", "install", COORD],
        vec!["resolve", COORD],
        vec!["--json", "resolve", COORD],
    ] {
        let out = run(sandbox.copkg().arg("--config").arg(&config).args(&args));
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{args:?}: {out:?}"
        );
    }
    // A password inside a repository URL is not printed either.
    let url = format!("http://deploy:{secret}@127.0.0.1:{}/", server.port);
    let out = run(sandbox.copkg().args(["--repo", &url, "install", COORD]));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!out.stderr.contains(secret), "{}", out.stderr);
    let out = run(sandbox.copkg().args(["--repo", &url, "resolve", COORD]));
    assert!(!out.stdout.contains(secret), "{}", out.stdout);
    // Nor by --help, which shows environment variables.
    let out = run(sandbox.copkg().env("COPKG_REPO", &url).arg("--help"));
    assert_eq!(out.code, 0);
    assert!(!out.stdout.contains(secret), "{}", out.stdout);
}

#[test]
fn e1_site_script_errors_show_path_and_line_and_nothing_is_done() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return {\n  install_path = function(pkg)\n    return pkg.missing.field\n  end,\n}\n",
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}:3: attempt to index a nil value (field 'missing')",
            site.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(sandbox.tree(), ["home", "site.lua"]);

    std::fs::write(&site, "return {\n  install_path = function(pkg)\n").unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .args(["resolve", COORD]));
    // A site script that does not load is refused at load: a usage error.
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "error: site script refused: {}:3:",
            site.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn e2_site_hook_escaping_the_root_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { install_path = function(pkg) return '../../escape' end }\n",
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 8, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: site policy failed for {COORD}\n  caused by: hook `install_path` returned an invalid result: `result` = `../../escape` must not have empty, `.` or `..` components\n"
        )
    );
    assert_eq!(sandbox.tree(), ["home", "site.lua"]);
}

#[test]
fn site_script_changes_layout_for_install_and_pack() {
    let sandbox = Sandbox::new();
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        r#"local default = require("copkg.policy")
return {
  install_path = function(pkg) return "apps/" .. pkg.artifact .. "-" .. pkg.version end,
  repository_paths = function(pkg)
    local name = pkg.artifact .. "/" .. pkg.artifact .. "-" .. pkg.version .. ".tgz"
    return { archive = name, sha256 = name .. ".sha256" }
  end,
}
"#,
    )
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello");
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .arg("pack")
        .arg(&dir)
        .args(["--coordinate", COORD, "--out"])
        .arg(sandbox.repo()));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.repo().join("hello/hello-1.0.0.tgz").is_file());
    assert!(
        sandbox
            .repo()
            .join("hello/hello-1.0.0.tgz.sha256")
            .is_file()
    );
    let out = run(sandbox
        .copkg()
        .env("COPKG_SITE", &site)
        .env("COPKG_REPO", sandbox.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.root().join("apps/hello-1.0.0/bin/hello").is_file());
}

#[test]
fn original_copkg_config_keys_set_roots_and_repository() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let server = StaticServer::start(&sandbox.repo());
    let root = sandbox.path().join("comoyo/software");
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"packageDir": "{}", "packageBaseUrl": "{}", "runtimeBaseDir": "/tmp/rt"}}"#,
            root.display(),
            server.url
        ),
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .env_remove("COPKG_SOFTWARE_ROOT")
        .arg("--config")
        .arg(&config)
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(root.join("com/example/hello/1.0.0/bin/hello").is_file());
    // The flag beats the config file.
    let flag_root = sandbox.path().join("flag-root");
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .arg("--software-root")
        .arg(&flag_root)
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(flag_root.join("com/example/hello/1.0.0").is_dir());
}

#[test]
fn no_repository_configured_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let out = run(sandbox.copkg().args(["install", COORD]));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot install {COORD}\n  caused by: no repository is configured (use --repo, COPKG_REPO or a config file)\n"
        )
    );
}

#[test]
fn list_output_pipes_into_install() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    assert_eq!(sandbox.install().code, 0);
    let listed = run(sandbox.copkg().arg("list")).stdout;
    let other = Sandbox::new();
    let mut child = other
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(listed.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(run(other.copkg().arg("list")).stdout, listed);
}

#[test]
fn progress_line_only_on_a_terminal() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    // Through pipes (every other test): nothing but the result.
    let out = sandbox.install();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    run(sandbox.copkg().args(["uninstall", COORD]));
    // On a terminal (script(1) gives copkg a pty): a progress line, cleared before the result.
    let command = format!(
        "HOME={} COPKG_SOFTWARE_ROOT={} {} --repo {} install {COORD}",
        sandbox.path().join("home").display(),
        sandbox.root().display(),
        env!("CARGO_BIN_EXE_copkg"),
        sandbox.repo().display()
    );
    let out = run(std::process::Command::new("script").args(["-qec", &command, "/dev/null"]));
    assert_eq!(out.code, 0, "{out:?}");
    let size = std::fs::metadata(sandbox.repo().join(ARCHIVE_PATH))
        .unwrap()
        .len() as f64
        / 1048576.0;
    let expected = format!(
        "\r\x1b[K{COORD}: {size:.1} / {size:.1} MiB (100%)\r\x1b[Kinstalled {COORD} in {}",
        sandbox.install_dir().display()
    );
    assert!(out.stdout.contains(&expected), "{:?}", out.stdout);
}

#[test]
fn progress_bars_of_parallel_installs_only_on_a_terminal() {
    let sandbox = Sandbox::new();
    let mut coordinates = Vec::new();
    for n in 1..=3 {
        let dir = sandbox.path().join(format!("pkg{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data"), vec![n as u8; 100_000]).unwrap();
        let coordinate = format!("com.example:tool{n}:1.0");
        sandbox.pack(&dir, &coordinate);
        coordinates.push(coordinate);
    }
    // Through pipes: the results on stdout, nothing on stderr.
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("install")
        .args(&coordinates));
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 3, "{out:?}");
    // On a terminal: a total (and a bar a download) on stderr, the
    // results printed above the bars.
    let command = format!(
        "HOME={} COPKG_SOFTWARE_ROOT={} {} --repo {} install {}",
        sandbox.path().join("home").display(),
        sandbox.path().join("second").display(),
        env!("CARGO_BIN_EXE_copkg"),
        sandbox.repo().display(),
        coordinates.join(" ")
    );
    let out = run(std::process::Command::new("script").args(["-qec", &command, "/dev/null"]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("total ["), "{:?}", out.stdout);
    assert!(out.stdout.contains("/3 installed, "), "{:?}", out.stdout);
    for coordinate in &coordinates {
        assert!(
            out.stdout.contains(&format!("installed {coordinate} in ")),
            "{:?}",
            out.stdout
        );
    }
}

#[test]
fn h6_config_values_out_of_range_are_usage_errors_naming_the_key() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let fifo = sandbox.path().join("ca.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let cases = [
        (r#"{"scriptTimeoutSecs": 1e300}"#, "scriptTimeoutSecs"),
        (r#"{"scriptTimeoutSecs": -1}"#, "scriptTimeoutSecs"),
        (r#"{"connectTimeoutSecs": 0}"#, "connectTimeoutSecs"),
        (r#"{"readTimeoutSecs": 1e300}"#, "readTimeoutSecs"),
        (r#"{"retries": 1000000}"#, "retries"),
        (r#"{"lowSpeedTimeSecs": 0}"#, "lowSpeedTimeSecs"),
        (r#"{"lockTimeoutSecs": -5}"#, "lockTimeoutSecs"),
        (r#"{"lowSpeedTimeSecs": 1e300}"#, "lowSpeedTimeSecs"),
        (
            r#"{"lowSpeedLimitBytes": 2000000000000}"#,
            "lowSpeedLimitBytes",
        ),
        (r#"{"maxEntries": 0}"#, "maxEntries"),
        (r#"{"scriptOutputBytes": 0}"#, "scriptOutputBytes"),
        (r#"{"packageDir": ""}"#, "packageDir"),
        (r#"{"runtimeBaseDir": ""}"#, "runtimeBaseDir"),
        (
            r#"{"logCleanup": {"compressAfterDays": -2}}"#,
            "logCleanup.compressAfterDays",
        ),
    ];
    for (json, key) in cases {
        let out = sandbox.install_with_config(json);
        assert_eq!(out.code, 2, "{json}: {out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("error: invalid config value for `{key}`: ")),
            "{json}: {}",
            out.stderr
        );
    }
    // Nothing was installed anywhere, the current dir included.
    assert!(!sandbox.install_dir().exists());
    for (ca, why) in [
        ("/dev/zero", "not a regular file"),
        (fifo.to_str().unwrap(), "not a regular file"),
    ] {
        let started = Instant::now();
        let out = sandbox.install_with_config(&format!(r#"{{"caFile": "{ca}"}}"#));
        assert!(started.elapsed() < Duration::from_secs(10), "{ca} was read");
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("error: cannot read config file {ca}"))
                && out.stderr.contains(why),
            "{}",
            out.stderr
        );
    }
    let big = sandbox.path().join("big.json");
    std::fs::write(&big, vec![b' '; 2 << 20]).unwrap();
    let out = run(sandbox.copkg().arg("--config").arg(&big).arg("list"));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("larger than 1048576 bytes"),
        "{}",
        out.stderr
    );
}

/// A package with files, a symlink and a file to lose, for `verify`.
fn verify_archive() -> Vec<u8> {
    Tar::new()
        .dir("bin/")
        .file("bin/hello", b"#!/bin/sh\necho hello\n", 0o755)
        .file("etc/hello.conf", b"greeting=hello\n", 0o644)
        .file("lib/old", b"old\n", 0o644)
        .symlink("lib/conf", "../etc/hello.conf")
        .end()
        .gz()
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn verify_reports_a_clean_install_then_exactly_what_changed() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&verify_archive());
    assert_eq!(sandbox.install().code, 0);
    let dir = sandbox.install_dir();
    let verify = |json: bool| {
        let mut cmd = sandbox.copkg();
        if json {
            cmd.arg("--json");
        }
        run(cmd.args(["verify", COORD]))
    };

    let out = verify(false);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, format!("{COORD}: ok (3 files)\n").as_str(), "")
    );
    let out = verify(true);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(
        json_lines(&out.stdout),
        [serde_json::json!({
            "coordinate": COORD, "dir": dir, "ok": true, "manifest": true, "files": 3,
            "differences": [], "changed": false,
        })]
    );

    // Same size, other content; one file gone, one new; a chmod; a link retargeted.
    let conf = dir.join("etc/hello.conf");
    let size = std::fs::metadata(&conf).unwrap().len();
    std::fs::write(&conf, "greeting=howdy\n").unwrap();
    assert_eq!(std::fs::metadata(&conf).unwrap().len(), size);
    std::fs::remove_file(dir.join("lib/old")).unwrap();
    std::fs::write(dir.join("lib/new"), "new\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("bin/hello"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    std::fs::remove_file(dir.join("lib/conf")).unwrap();
    std::os::unix::fs::symlink("../bin/hello", dir.join("lib/conf")).unwrap();

    let out = verify(false);
    assert_eq!(out.code, 13, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{COORD}: mode bin/hello (0755 → 0777)\n\
             {COORD}: modified etc/hello.conf\n\
             {COORD}: target lib/conf (../etc/hello.conf → ../bin/hello)\n\
             {COORD}: extra lib/new\n\
             {COORD}: missing lib/old\n"
        )
    );
    assert_eq!(
        out.stderr,
        "error: verify found differences in 1 of 1 installed packages\n"
    );
    let out = verify(true);
    assert_eq!(out.code, 13, "{out:?}");
    assert_eq!(
        json_lines(&out.stdout),
        [serde_json::json!({
            "coordinate": COORD, "dir": dir, "ok": false, "manifest": true, "files": 3,
            "differences": [
                {"path": "bin/hello", "kind": "mode", "expected": "0755", "actual": "0777"},
                {"path": "etc/hello.conf", "kind": "modified"},
                {"path": "lib/conf", "kind": "target",
                 "expected": "../etc/hello.conf", "actual": "../bin/hello"},
                {"path": "lib/new", "kind": "extra"},
                {"path": "lib/old", "kind": "missing"},
            ],
            "changed": false,
        })]
    );
}

#[test]
fn verify_all_reports_every_installed_package() {
    let sandbox = Sandbox::new();
    let hello = example_dir("hello");
    let second = "com.example:hello:1.0.1";
    sandbox.pack_and_install(&hello, COORD);
    sandbox.pack_and_install(&hello, second);
    let changed = sandbox.root().join("com/example/hello/1.0.1/bin/hello");
    let mut script = std::fs::read(&changed).unwrap();
    script.extend_from_slice(b"# changed\n");
    std::fs::write(&changed, script).unwrap();

    let want = format!("{COORD}: ok (3 files)\n{second}: modified bin/hello\n");
    let stderr = "error: verify found differences in 1 of 2 installed packages\n";
    for args in [vec!["verify", "--all"], vec!["verify", COORD, second]] {
        let out = run(sandbox.copkg().args(&args));
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (13, want.as_str(), stderr),
            "{args:?}"
        );
    }
    let out = run(sandbox.copkg().args(["--json", "verify", "--all"]));
    assert_eq!(out.code, 13, "{out:?}");
    let results: Vec<_> = json_lines(&out.stdout)
        .iter()
        .map(|v| (v["coordinate"].clone(), v["ok"].clone()))
        .collect();
    assert_eq!(
        results,
        [(COORD.into(), true.into()), (second.into(), false.into())]
    );

    // Once the change is undone, all is clean again.
    sandbox.pack_and_install(&hello, "com.example:other:1");
    std::fs::copy(hello.join("bin/hello"), &changed).unwrap();
    let out = run(sandbox.copkg().args(["verify", "--all"]));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            format!(
                "{COORD}: ok (3 files)\n{second}: ok (3 files)\ncom.example:other:1: ok (3 files)\n"
            )
            .as_str(),
            ""
        )
    );
}

#[test]
fn verify_of_a_package_not_installed_is_not_found() {
    let sandbox = Sandbox::new();
    let out = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            3,
            "",
            format!(
                "error: cannot verify {COORD}\n  caused by: no package is installed at {}\n",
                sandbox.install_dir().display()
            )
            .as_str()
        )
    );
    // Nothing installed at all: --all has nothing to report.
    let out = run(sandbox.copkg().args(["verify", "--all"]));
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    // Neither or both of COORD and --all is a usage error.
    assert_eq!(run(sandbox.copkg().arg("verify")).code, 2);
    assert_eq!(
        run(sandbox.copkg().args(["verify", "--all", COORD])).code,
        2
    );

    // A layout mapping every version to one dir: the dir holds 1.0.0, so
    // 1.0.1 is not installed, whatever a check of its files would say.
    sandbox.publish_verified(&verify_archive());
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { install_path = function(pkg) return 'apps/' .. pkg.artifact end }\n",
    )
    .unwrap();
    let with_site = || {
        let mut cmd = sandbox.copkg();
        cmd.arg("--site")
            .arg(&site)
            .arg("--repo")
            .arg(sandbox.repo());
        cmd
    };
    assert_eq!(run(with_site().args(["install", COORD])).code, 0);
    let out = run(with_site().args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "com.example:hello:1.0.0: ok (3 files)\n")
    );
    let out = run(with_site().args(["verify", "com.example:hello:1.0.1"]));
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            3,
            format!(
                "error: cannot verify com.example:hello:1.0.1\n  caused by: {} holds {COORD}, not com.example:hello:1.0.1\n",
                sandbox.root().join("apps/hello").display()
            )
            .as_str()
        )
    );
}

#[test]
fn verify_reports_an_install_without_a_manifest() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&verify_archive());
    assert_eq!(sandbox.install().code, 0);
    let dir = sandbox.install_dir();
    std::fs::remove_file(dir.join(".copkg-manifest.json")).unwrap();
    let out = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            13,
            format!("{COORD}: no manifest (installed before copkg recorded one)\n").as_str(),
            "error: verify found differences in 1 of 1 installed packages\n"
        )
    );
    let out = run(sandbox.copkg().args(["--json", "verify", COORD]));
    assert_eq!(out.code, 13);
    assert_eq!(
        json_lines(&out.stdout),
        [serde_json::json!({
            "coordinate": COORD, "dir": dir, "ok": false, "manifest": false, "files": null,
            "differences": [], "changed": false,
        })]
    );
}

#[test]
fn a_manifest_in_an_archive_or_a_package_dir_is_refused() {
    for name in [".copkg-manifest.json", "./.copkg-manifest.json"] {
        let sandbox = Sandbox::new();
        sandbox.publish_verified(
            &Tar::new()
                .file("bin/hello", b"#!/bin/sh\n", 0o755)
                .file(name, b"{\"copkg_manifest\":1}\n", 0o644)
                .end()
                .gz(),
        );
        let out = sandbox.install();
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                5,
                format!(
                    "error: cannot install {COORD}\n  caused by: cannot unpack {COORD} from {}\n  caused by: unsafe archive: entry `{name}` uses a name reserved by copkg\n",
                    sandbox.repo().join(ARCHIVE_PATH).display()
                )
                .as_str()
            )
        );
        assert!(!sandbox.install_dir().exists());
    }

    let sandbox = Sandbox::new();
    let tree = sandbox.path().join("tree");
    std::fs::create_dir_all(tree.join("lib")).unwrap();
    std::fs::write(tree.join(".copkg-manifest.json"), "{}\n").unwrap();
    let out = run(sandbox
        .copkg()
        .arg("pack")
        .arg(&tree)
        .args(["--coordinate", COORD, "--out"])
        .arg(sandbox.repo()));
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            2,
            format!(
                "error: cannot pack {COORD}\n  caused by: cannot pack {}: the name is reserved by copkg\n",
                tree.join(".copkg-manifest.json").display()
            )
            .as_str()
        )
    );
    assert!(!sandbox.repo().join(ARCHIVE_PATH).exists());

    // Below the top the name is the package's own: packed, installed, verified.
    std::fs::rename(
        tree.join(".copkg-manifest.json"),
        tree.join("lib/.copkg-manifest.json"),
    )
    .unwrap();
    sandbox.pack_and_install(&tree, COORD);
    let out = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("{COORD}: ok (1 file)\n").as_str())
    );
}

/// Every subcommand's `--help` ends with an "Examples:" section, and each
/// example line that runs copkg parses as copkg's own command line; at
/// least one of them runs that subcommand. The subcommands come from clap,
/// so a new one without examples fails here.
#[test]
fn every_subcommand_help_has_working_examples() {
    use clap::{CommandFactory, FromArgMatches};
    use copkg::cli::Cli;

    let sandbox = Sandbox::new();
    let cli = Cli::command();
    let visible: Vec<&clap::Command> = cli.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    assert!(visible.len() >= 29, "{} subcommands", visible.len());
    for sub in visible {
        let name = sub.get_name();
        let out = run(sandbox.copkg().args([name, "--help"]));
        assert_eq!(out.code, 0, "{name} --help: {out:?}");
        let examples = out
            .stdout
            .split_once("\nExamples:\n")
            .unwrap_or_else(|| {
                panic!(
                    "`copkg {name} --help` has no Examples section:\n{}",
                    out.stdout
                )
            })
            .1;
        let mut runs_it = false;
        for line in examples
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
        {
            // Each command of a pipeline or list, without its redirection;
            // environment assignments before copkg are allowed.
            for part in line.split(['|', ';']).flat_map(|p| p.split("&&")) {
                let words: Vec<&str> = part
                    .split(" > ")
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                let Some(at) = words.iter().position(|w| *w == "copkg") else {
                    continue;
                };
                if !words[..at].iter().all(|w| w.contains('=')) {
                    continue;
                }
                let matches = Cli::command()
                    .try_get_matches_from(&words[at..])
                    .and_then(|m| Cli::from_arg_matches(&m).map(|_| m))
                    .unwrap_or_else(|e| {
                        panic!("`copkg {name} --help` example `{part}` does not parse:\n{e}")
                    });
                let example_of = matches.subcommand_name();
                runs_it |= example_of == Some(name);
            }
        }
        assert!(
            runs_it,
            "`copkg {name} --help` has no example running `copkg {name}`:\n{examples}"
        );
    }
}
