//! The download cache end to end, against real HTTP servers on 127.0.0.1
//! that count the requests they answer: a second install (another root, or
//! after an uninstall) fetches no archive; an altered entry is refused and
//! fetched again; an entry is checked against the keys of the repository
//! that asks for it; `--offline`; the size bound; concurrent installs.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A server of the sandbox repository that records every request.
fn counting_server(repo: &Path) -> FaultServer {
    let repo = repo.to_owned();
    FaultServer::start(move |request, _, stream| serve_file(&repo, request, stream))
}

/// Requests for archives (not sidecars or signatures) the server answered.
fn archive_requests(server: &FaultServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(".tar.gz"))
        .count()
}

/// `copkg --repo URL install COORDS…` into the software root `root`.
fn install_into(sb: &Sandbox, root: &Path, repo: &str, args: &[&str]) -> Output {
    run(sb
        .copkg()
        .env("COPKG_SOFTWARE_ROOT", root)
        .args(["--repo", repo, "install"])
        .args(args))
}

/// The cache entry of an archive with this content.
fn entry(sb: &Sandbox, archive: &[u8]) -> PathBuf {
    sb.cache()
        .join("entries")
        .join(format!("sha256-{}", sha256_hex(archive)))
}

fn hello(root: &Path) -> String {
    std::fs::read_to_string(root.join("com/example/hello/1.0.0/bin/hello")).unwrap_or_default()
}

#[test]
fn a_second_install_into_a_fresh_root_fetches_no_archive() {
    let sb = Sandbox::new();
    sb.publish_verified(&good_archive());
    let server = counting_server(&sb.repo());
    let first = install_into(&sb, &sb.root(), &server.url, &[COORD]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(archive_requests(&server), 1);
    // The archive is cached under its digest, its sidecar beside it.
    let cached = entry(&sb, &good_archive());
    assert_eq!(
        std::fs::read(cached.join("archive")).unwrap(),
        good_archive()
    );
    assert_eq!(
        std::fs::read_to_string(cached.join("archive.sha256")).unwrap(),
        format!(
            "{}  hello-1.0.0-copkg.tar.gz\n",
            sha256_hex(&good_archive())
        )
    );

    // Another software root: the archive comes from the cache.
    let second = sb.path().join("second");
    let out = install_into(&sb, &second, &server.url, &[COORD]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(hello(&second), "#!/bin/sh\necho hello\n");
    // Uninstalled and installed again: from the cache too.
    assert_eq!(run(sb.copkg().args(["uninstall", COORD])).code, 0);
    let out = install_into(&sb, &sb.root(), &server.url, &[COORD]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(hello(&sb.root()), "#!/bin/sh\necho hello\n");
    assert_eq!(archive_requests(&server), 1, "{:?}", server.requests());
    // The sidecar is still asked for each time: the repository decides
    // which digest is right.
    let sidecars = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(".sha256"))
        .count();
    assert_eq!(sidecars, 3);
    // The install records where the package is from, not the cache.
    let marker: serde_json::Value = serde_json::from_slice(
        &std::fs::read(second.join("com/example/hello/1.0.0/.copkg-install.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        marker["source"],
        format!("{}/{ARCHIVE_PATH}", server.url).as_str()
    );
}

#[test]
fn an_altered_cache_entry_is_refused_and_fetched_again() {
    let sb = Sandbox::new();
    sb.publish_verified(&good_archive());
    let server = counting_server(&sb.repo());
    assert_eq!(install_into(&sb, &sb.root(), &server.url, &[COORD]).code, 0);
    // A local attacker swaps the cached archive (and its cached sidecar)
    // for one of their own.
    let evil = Tar::new()
        .file("bin/hello", b"#!/bin/sh\necho owned\n", 0o755)
        .end()
        .gz();
    let cached = entry(&sb, &good_archive());
    std::fs::write(cached.join("archive"), &evil).unwrap();
    std::fs::write(cached.join("archive.sha256"), sha256_hex(&evil)).unwrap();

    let second = sb.path().join("second");
    let out = install_into(&sb, &second, &server.url, &[COORD]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(hello(&second), "#!/bin/sh\necho hello\n");
    assert_eq!(archive_requests(&server), 2);
    // The entry was replaced by what the repository serves.
    assert_eq!(
        std::fs::read(cached.join("archive")).unwrap(),
        good_archive()
    );

    // Offline, an altered entry is refused (and removed): not found, and
    // nothing is installed.
    std::fs::write(cached.join("archive"), &evil).unwrap();
    let third = sb.path().join("third");
    let out = run(sb.copkg().env("COPKG_SOFTWARE_ROOT", &third).args([
        "--offline",
        "--repo",
        &server.url,
        "install",
        COORD,
    ]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("altered (now removed) in the download cache"),
        "{}",
        out.stderr
    );
    assert!(!third.join("com").exists());
    assert!(!cached.exists());
    assert_eq!(archive_requests(&server), 2);
}

#[test]
fn offline_installs_come_from_the_cache_and_file_repositories_only() {
    let sb = Sandbox::new();
    sb.publish_verified(&good_archive());
    let server = counting_server(&sb.repo());
    let url = server.url.clone();
    assert_eq!(install_into(&sb, &sb.root(), &url, &[COORD]).code, 0);
    let requests = server.requests().len();

    let offline = |root: &Path, repo: &str, coordinate: &str| {
        run(sb.copkg().env("COPKG_SOFTWARE_ROOT", root).args([
            "--offline",
            "--repo",
            repo,
            "install",
            coordinate,
        ]))
    };
    // Nothing is asked of the server: the install comes from the cache.
    let second = sb.path().join("second");
    let out = offline(&second, &url, COORD);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(hello(&second), "#!/bin/sh\necho hello\n");
    // A pin finds the entry by its digest; a pin that is not the cached
    // archive's is a miss.
    let pinned = format!("{COORD}@sha256:{}", sha256_hex(&good_archive()));
    let out = offline(&sb.path().join("pinned"), &url, &pinned);
    assert_eq!(out.code, 0, "{out:?}");
    let wrong = format!("{COORD}@sha256:{}", "ab".repeat(32));
    let out = offline(&sb.path().join("wrong"), &url, &wrong);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(server.requests().len(), requests, "{:?}", server.requests());

    // A miss is "not found" (exit 3), saying where it looked.
    drop(server);
    let out = offline(&sb.path().join("third"), &url, "com.example:hello:2.0.0");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("hello-2.0.0-copkg.tar.gz: not in the download cache"),
        "{}",
        out.stderr
    );
    // A file repository is read as ever.
    let out = offline(
        &sb.path().join("fourth"),
        sb.repo().to_str().unwrap(),
        COORD,
    );
    assert_eq!(out.code, 0, "{out:?}");
}

/// `copkg keygen` and `copkg pack --sign` of `packages-example/hello` into
/// `repo`: the same (reproducible) archive in each repository, signed by
/// each repository's own key. Returns the public key line.
fn signed_repo(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let prefix = sb.path().join(name);
    let out = run(sb.copkg().args(["keygen", "--out"]).arg(&prefix));
    assert_eq!(out.code, 0, "{out:?}");
    let repo = sb.path().join(format!("repo-{name}"));
    let out = run(sb
        .copkg()
        .arg("pack")
        .arg(example_dir("hello"))
        .args(["--coordinate", "com.example:hello:1.0.0", "--out"])
        .arg(&repo)
        .arg("--sign")
        .arg(prefix.with_extension("key")));
    assert_eq!(out.code, 0, "{out:?}");
    let public = std::fs::read_to_string(prefix.with_extension("pub")).unwrap();
    (repo, public.lines().nth(1).unwrap().to_owned())
}

#[test]
fn a_cache_entry_is_checked_against_the_keys_of_the_repository_that_asks() {
    let sb = Sandbox::new();
    let (repo_a, key_a) = signed_repo(&sb, "a");
    let (repo_b, key_b) = signed_repo(&sb, "b");
    let archive = std::fs::read(repo_a.join(ARCHIVE_PATH)).unwrap();
    assert_eq!(archive, std::fs::read(repo_b.join(ARCHIVE_PATH)).unwrap());
    let server_a = counting_server(&repo_a);
    // B serves its sidecar and signature, and for the archive bytes that
    // are not it: an install from B succeeds only from the cache.
    let served_b = repo_b.clone();
    let server_b = FaultServer::start(move |request, _, stream| {
        if request.path.ends_with(".tar.gz") {
            let len = std::fs::metadata(served_b.join(ARCHIVE_PATH))
                .unwrap()
                .len();
            respond(stream, "200 OK", &[], &vec![b'x'; len as usize]);
        } else {
            serve_file(&served_b, request, stream);
        }
    });
    let install_as = |coordinate: &str, root: &str, url: &str, key: &str, extra: &[&str]| {
        let config = sb.path().join(format!("{root}.json"));
        std::fs::write(
            &config,
            format!(r#"{{"repositories": [{{"url": "{url}", "publicKeys": ["{key}"]}}]}}"#),
        )
        .unwrap();
        run(sb
            .copkg()
            .env("COPKG_SOFTWARE_ROOT", sb.path().join(root))
            .arg("--config")
            .arg(&config)
            .args(extra)
            .args(["install", coordinate]))
    };
    let install =
        |root: &str, url: &str, key: &str, extra: &[&str]| install_as(COORD, root, url, key, extra);
    let out = install("one", &server_a.url, &key_a, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    // The signature is kept beside the archive.
    let cached = entry(&sb, &archive);
    assert_eq!(
        std::fs::read(cached.join("archive.minisig")).unwrap(),
        std::fs::read(repo_a.join(format!("{ARCHIVE_PATH}.minisig"))).unwrap()
    );

    // Offline, repository B (which trusts only key B) finds the entry
    // repository A signed through the pin: refused (exit 10), nothing
    // installed. Without the pin, B has never served it: not found.
    let pinned = format!("{COORD}@sha256:{}", sha256_hex(&archive));
    let out = install_as(&pinned, "two", &server_b.url, &key_b, &["--offline"]);
    assert_eq!(out.code, 10, "{out:?}");
    assert!(out.stderr.contains("cached"), "{}", out.stderr);
    assert!(!sb.path().join("two/com").exists());
    let out = install("two", &server_b.url, &key_b, &["--offline"]);
    assert_eq!(out.code, 3, "{out:?}");
    // Offline, repository A's own key accepts it.
    let out = install("three", &server_a.url, &key_a, &["--offline"]);
    assert_eq!(out.code, 0, "{out:?}");

    // Online, B's own signature (fetched from B) is checked on the cached
    // bytes: they are what B's sidecar names, so they are installed, not
    // B's archive. (B's URL is new to the cache, so its archive was asked
    // for with the sidecar, at once, and dropped unread.)
    let out = install("four", &server_b.url, &key_b, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(sb.path().join("four/com/example/hello/1.0.0/bin/hello")).unwrap(),
        std::fs::read(example_dir("hello").join("bin/hello")).unwrap()
    );
    assert_eq!(archive_requests(&server_a), 1);
    // Now the cache knows B's URL: asked again, B gets no archive request.
    let before = archive_requests(&server_b);
    assert_eq!(
        run(sb
            .copkg()
            .env("COPKG_SOFTWARE_ROOT", sb.path().join("four"))
            .args(["uninstall", COORD]))
        .code,
        0
    );
    let out = install("four", &server_b.url, &key_b, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        archive_requests(&server_b),
        before,
        "{:?}",
        server_b.requests()
    );
    // A repository whose key did not sign what it serves is refused,
    // whatever the cache holds.
    let out = install("five", &server_b.url, &key_a, &[]);
    assert_eq!(out.code, 10, "{out:?}");
    assert!(!sb.path().join("five/com").exists());
}

#[test]
fn archives_without_a_sidecar_are_cached_by_url() {
    let sb = Sandbox::new();
    sb.publish(&good_archive(), None);
    let server = counting_server(&sb.repo());
    let config = sb.path().join("config.json");
    std::fs::write(&config, r#"{"checksum": "if-present"}"#).unwrap();
    let install = |root: &str, extra: &[&str]| {
        run(sb
            .copkg()
            .env("COPKG_SOFTWARE_ROOT", sb.path().join(root))
            .arg("--config")
            .arg(&config)
            .args(["--repo", &server.url, "install"])
            .args(extra)
            .arg(COORD))
    };
    assert_eq!(install("one", &[]).code, 0);
    assert_eq!(install("two", &[]).code, 0);
    assert_eq!(archive_requests(&server), 1);
    let names: Vec<String> = std::fs::read_dir(sb.cache().join("entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() == 1 && names[0].starts_with("url-"),
        "{names:?}"
    );
    // --reinstall (after a republish) fetches it again.
    assert_eq!(install("two", &["--reinstall"]).code, 0);
    assert_eq!(archive_requests(&server), 2);
}

#[test]
fn the_cache_keeps_to_its_size_bound_and_can_be_turned_off() {
    let sb = Sandbox::new();
    sb.publish_verified(&good_archive());
    let server = counting_server(&sb.repo());
    let install = |root: &str, config: &str| {
        let path = sb.path().join("config.json");
        std::fs::write(&path, config).unwrap();
        run(sb
            .copkg()
            .env("COPKG_SOFTWARE_ROOT", sb.path().join(root))
            .arg("--config")
            .arg(&path)
            .args(["--repo", &server.url, "install", COORD]))
    };
    // A bound smaller than the archive keeps nothing.
    assert_eq!(install("one", r#"{"cacheMaxBytes": 100}"#).code, 0);
    assert_eq!(install("two", r#"{"cacheMaxBytes": 100}"#).code, 0);
    assert_eq!(archive_requests(&server), 2);
    assert!(!entry(&sb, &good_archive()).exists());
    // 0 turns the cache off: nothing is written to it.
    std::fs::remove_dir_all(sb.cache()).unwrap();
    assert_eq!(install("three", r#"{"cacheMaxBytes": 0}"#).code, 0);
    assert!(!sb.cache().exists());
    // cacheDir in the config is where it goes; COPKG_CACHE_DIR beats it.
    let elsewhere = sb.path().join("elsewhere");
    let config = format!(r#"{{"cacheDir": "{}"}}"#, elsewhere.display());
    assert_eq!(install("env", &config).code, 0);
    assert!(entry(&sb, &good_archive()).join("archive").exists());
    assert!(!elsewhere.exists());
    let path = sb.path().join("config.json");
    let out = run(sb
        .copkg()
        .env_remove("COPKG_CACHE_DIR")
        .env("COPKG_SOFTWARE_ROOT", sb.path().join("four"))
        .arg("--config")
        .arg(&path)
        .args(["--repo", &server.url, "install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        elsewhere
            .join("entries")
            .join(format!("sha256-{}", sha256_hex(&good_archive())))
            .join("archive")
            .exists()
    );
}

#[test]
fn concurrent_installs_fill_the_cache_once_and_completely() {
    let sb = Sandbox::new();
    // Eight packages, each with content of its own.
    let mut coordinates = Vec::new();
    for n in 0..8 {
        let dir = sb.path().join(format!("pkg{n}"));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/tool"), format!("#!/bin/sh\necho {n}\n")).unwrap();
        let coordinate = format!("com.example:tool{n}:1.0");
        sb.pack(&dir, &coordinate);
        coordinates.push(coordinate);
    }
    let server = counting_server(&sb.repo());
    let args: Vec<&str> = ["-j", "8"]
        .into_iter()
        .chain(coordinates.iter().map(String::as_str))
        .collect();
    // Two processes at once, each installing all eight, eight at a time,
    // into roots of their own.
    let spawn = |root: &str| {
        sb.copkg()
            .env("COPKG_SOFTWARE_ROOT", sb.path().join(root))
            .args(["--repo", &server.url, "install"])
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut one, mut two) = (spawn("one"), spawn("two"));
    assert!(one.wait().unwrap().success());
    assert!(two.wait().unwrap().success());
    let fetched = archive_requests(&server);
    assert!((8..=16).contains(&fetched), "{fetched}");
    // Every entry is whole, and no temp dir is left.
    let entries = std::fs::read_dir(sb.cache().join("entries"))
        .unwrap()
        .count();
    assert_eq!(entries, 8);
    assert_eq!(
        std::fs::read_dir(sb.cache().join("tmp")).unwrap().count(),
        0
    );
    // A third root: every archive from the cache.
    let out = install_into(&sb, &sb.path().join("three"), &server.url, &args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(archive_requests(&server), fetched);
    for (n, coordinate) in coordinates.iter().enumerate() {
        let name = coordinate.split(':').nth(1).unwrap();
        let tool = sb
            .path()
            .join(format!("three/com/example/{name}/1.0/bin/tool"));
        assert_eq!(
            std::fs::read_to_string(tool).unwrap(),
            format!("#!/bin/sh\necho {n}\n")
        );
    }
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.push((entry.path(), meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_dry_run_looks_into_the_cache_and_changes_nothing_there() {
    let sb = Sandbox::new();
    sb.publish_verified(&good_archive());
    let server = counting_server(&sb.repo());
    let dry = |args: &[&str]| {
        run(sb
            .copkg()
            .args(["--dry-run", "--repo", &server.url, "install"])
            .args(args))
    };
    // No cache yet: the repository is asked, and no cache dir is made.
    let out = dry(&[COORD]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("from {}/{ARCHIVE_PATH}", server.url)),
        "{out:?}"
    );
    assert!(!sb.cache().exists(), "a dry run made the cache dir");
    // A coordinate the repository lacks fails as the install would.
    let out = dry(&["com.example:hello:9.9"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");

    // Cached, then uninstalled: the dry run names the cache, fetches no
    // archive, and leaves every cache file as it was (no mark of use).
    assert_eq!(install_into(&sb, &sb.root(), &server.url, &[COORD]).code, 0);
    assert_eq!(run(sb.copkg().args(["uninstall", COORD])).code, 0);
    let fetched = archive_requests(&server);
    let before = listing(&sb.cache());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = dry(&[COORD]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("from the download cache (as "),
        "{out:?}"
    );
    assert_eq!(archive_requests(&server), fetched);
    assert_eq!(listing(&sb.cache()), before);
    assert!(!sb.root().join("com/example/hello/1.0.0").exists());
}
