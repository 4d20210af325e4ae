//! Repository metadata end to end: `copkg pack` keeps each artifact's
//! maven-metadata.xml (under a lock, in Maven order); `copkg versions`
//! lists what file and HTTP repositories offer; `G:A:latest` and
//! `G:A:latest-prerelease` resolve in install and start; hostile metadata
//! from a server is refused.

mod common;

use std::path::Path;

use common::*;

const VERSIONS: [&str; 6] = [
    "1.9",
    "2.0-rc1",
    "1.10",
    "2.0-SNAPSHOT",
    "1.10-1",
    "1.0-beta",
];

/// Packs `packages-example/hello` as each of `versions`.
fn pack_versions(sb: &Sandbox, versions: &[&str]) {
    for version in versions {
        sb.pack(
            &example_dir("hello"),
            &format!("com.example:hello:{version}"),
        );
    }
}

fn metadata_file(repo: &Path) -> String {
    std::fs::read_to_string(repo.join("com/example/hello/maven-metadata.xml")).unwrap()
}

#[test]
fn pack_keeps_maven_metadata_in_maven_order() {
    let sb = Sandbox::new();
    pack_versions(&sb, &VERSIONS);
    // Packing a version again adds nothing.
    pack_versions(&sb, &["1.9"]);
    let text = metadata_file(&sb.repo());
    let (head, updated) = text.split_once("    <lastUpdated>").unwrap();
    assert_eq!(
        head,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<metadata>
  <groupId>com.example</groupId>
  <artifactId>hello</artifactId>
  <versioning>
    <latest>2.0-SNAPSHOT</latest>
    <release>2.0-rc1</release>
    <versions>
      <version>1.0-beta</version>
      <version>1.9</version>
      <version>1.10</version>
      <version>1.10-1</version>
      <version>2.0-rc1</version>
      <version>2.0-SNAPSHOT</version>
    </versions>
"
    );
    let (stamp, tail) = updated.split_once("</lastUpdated>").unwrap();
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{stamp}"
    );
    assert!(stamp.starts_with("20"), "{stamp}");
    assert_eq!(tail, "\n  </versioning>\n</metadata>\n");
    // No lock file or temp file is left in the repository.
    let names: Vec<String> = std::fs::read_dir(sb.repo().join("com/example/hello"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !VERSIONS.contains(&n.as_str()))
        .collect();
    assert_eq!(names, ["maven-metadata.xml"]);
}

#[test]
fn concurrent_packs_of_one_artifact_each_add_their_version() {
    let sb = Sandbox::new();
    let children: Vec<_> = (1..=8)
        .map(|n| {
            sb.copkg()
                .arg("pack")
                .arg(example_dir("hello"))
                .args(["--coordinate", &format!("com.example:hello:{n}.0"), "--out"])
                .arg(sb.repo())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let out = run(sb.copkg().args([
        "--repo",
        sb.repo().to_str().unwrap(),
        "versions",
        "com.example:hello",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "1.0\n2.0\n3.0\n4.0\n5.0\n6.0\n7.0\n8.0\n");
}

#[test]
fn versions_lists_what_file_and_http_repositories_offer() {
    let sb = Sandbox::new();
    pack_versions(&sb, &VERSIONS[..3]);
    // A second repository, served over HTTP, with other versions.
    let other = sb.path().join("other");
    for version in ["1.10", "3.0-alpha-1"] {
        let out = run(sb
            .copkg()
            .arg("pack")
            .arg(example_dir("hello"))
            .args([
                "--coordinate",
                &format!("com.example:hello:{version}"),
                "--out",
            ])
            .arg(&other));
        assert_eq!(out.code, 0, "{out:?}");
    }
    let server = StaticServer::start(&other);
    let versions = |extra: &[&str]| {
        run(sb
            .copkg()
            .args(["--repo", sb.repo().to_str().unwrap(), "--repo", &server.url])
            .args(extra)
            .args(["versions", "com.example:hello"]))
    };
    let out = versions(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "1.9\n1.10\n2.0-rc1\n3.0-alpha-1\n");
    assert_eq!(out.stderr, "latest: 1.10, latest-prerelease: 3.0-alpha-1\n");
    let out = versions(&["--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        json["versions"],
        serde_json::json!(["1.9", "1.10", "2.0-rc1", "3.0-alpha-1"])
    );
    assert_eq!(json["latest"], "1.10");
    assert_eq!(json["latest_prerelease"], "3.0-alpha-1");
    assert_eq!(json["changed"], false);
    assert_eq!(
        json["repositories"][1],
        serde_json::json!({"url": server.url, "versions": ["1.10", "3.0-alpha-1"]})
    );
    // Offline, the HTTP repository is not asked.
    let out = versions(&["--offline"]);
    assert_eq!(out.stdout, "1.9\n1.10\n2.0-rc1\n");

    // An artifact no repository knows: not found (exit 3); not G:A: usage.
    let out = run(sb
        .copkg()
        .args(["--repo", &server.url, "versions", "com.example:nothing"]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("com/example/nothing/maven-metadata.xml: not found"),
        "{}",
        out.stderr
    );
    for bad in ["com.example", "com.example:../x", "a:b:c"] {
        let out = run(sb.copkg().args(["--repo", &server.url, "versions", bad]));
        assert_eq!(out.code, 2, "{bad}: {out:?}");
    }
}

#[test]
fn latest_installs_the_newest_release_and_pre_releases_only_when_asked() {
    let sb = Sandbox::new();
    pack_versions(&sb, &VERSIONS);
    let server = StaticServer::start(&sb.repo());
    let install = |coordinate: &str| {
        run(sb
            .copkg()
            .args(["--repo", &server.url, "install", coordinate]))
    };
    let out = install("com.example:hello:latest");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "installed com.example:hello:1.10-1 in {}\n",
            sb.root().join("com/example/hello/1.10-1").display()
        )
    );
    let out = install("com.example:hello:latest-prerelease");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("installed com.example:hello:2.0-SNAPSHOT in"),
        "{}",
        out.stdout
    );
    // From stdin too.
    let out = run(sb
        .copkg()
        .args(["--repo", &server.url, "install", "-"])
        .stdin(std::fs::File::open(write(&sb, "list", "com.example:hello:latest\n")).unwrap()));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("com.example:hello:1.10-1 is already installed"),
        "{}",
        out.stdout
    );

    // start resolves it as install does.
    for version in ["1.0", "1.1", "2.0-rc1"] {
        sb.pack(
            &example_dir("ticker"),
            &format!("com.example:ticker:{version}"),
        );
    }
    let out = run(sb.copkg().args([
        "--repo",
        &server.url,
        "start",
        "--install",
        "--user",
        "root",
        "com.example:ticker:latest",
        "1.ticker.test.local",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("from com.example:ticker:1.1 in"),
        "{}",
        out.stdout
    );
    assert_eq!(
        run(sb.copkg().args(["stop", "1.ticker.test.local"])).code,
        0
    );

    // A pin names one archive: it cannot go with latest.
    let out = install(&format!(
        "com.example:hello:latest@sha256:{}",
        "ab".repeat(32)
    ));
    assert_eq!(out.code, 2, "{out:?}");
    // Only pre-releases listed: `latest` finds none (exit 3) and says how
    // to ask for them.
    let pre = Sandbox::new();
    pack_versions(&pre, &["1.0-rc1"]);
    let out = run(pre.copkg().args([
        "--repo",
        pre.repo().to_str().unwrap(),
        "install",
        "com.example:hello:latest",
    ]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("com.example:hello:latest-prerelease"),
        "{}",
        out.stderr
    );
}

fn write(sb: &Sandbox, name: &str, text: &str) -> std::path::PathBuf {
    let path = sb.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn latest_is_reserved_and_cannot_be_packed() {
    let sb = Sandbox::new();
    for version in ["latest", "LATEST", "latest-prerelease"] {
        let out = run(sb
            .copkg()
            .arg("pack")
            .arg(example_dir("hello"))
            .args([
                "--coordinate",
                &format!("com.example:hello:{version}"),
                "--out",
            ])
            .arg(sb.repo()));
        assert_eq!(out.code, 2, "{version}: {out:?}");
        assert!(out.stderr.contains("is reserved"), "{}", out.stderr);
    }
    assert!(!sb.repo().exists());
}

#[test]
fn hostile_metadata_from_a_server_is_refused() {
    let cases: [(&str, Vec<u8>, i32, &str); 4] = [
        (
            "an external entity",
            br#"<?xml version="1.0"?>
<!DOCTYPE metadata [<!ENTITY v SYSTEM "file:///etc/hostname">]>
<metadata><versioning><versions><version>&v;</version></versions></versioning></metadata>"#
                .to_vec(),
            1,
            "DTD",
        ),
        (
            "a version that is a path",
            b"<metadata><versioning><versions><version>../../../etc</version></versions></versioning></metadata>".to_vec(),
            1,
            "is not a valid version",
        ),
        (
            "another artifact's file",
            b"<metadata><groupId>com.evil</groupId><artifactId>x</artifactId></metadata>".to_vec(),
            1,
            "it is the metadata of com.evil:x",
        ),
        (
            "a huge file",
            [b"<metadata>".as_slice(), &vec![b' '; 2 << 20], b"</metadata>"].concat(),
            1,
            "larger than 1048576 bytes",
        ),
    ];
    for (what, body, code, needle) in cases {
        let server = FaultServer::start(move |request, _, stream| {
            if request.path.ends_with("maven-metadata.xml") {
                respond(stream, "200 OK", &[], &body);
            } else {
                respond(stream, "404 Not Found", &[], b"");
            }
        });
        for args in [
            ["versions", "com.example:hello"],
            ["install", "com.example:hello:latest"],
        ] {
            let sb = Sandbox::new();
            let out = run(sb.copkg().args(["--repo", &server.url]).args(args));
            assert_eq!(out.code, code, "{what}: {out:?}");
            assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
            assert!(!sb.root().join("com").exists(), "{what}");
        }
    }
}
