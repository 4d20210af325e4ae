//! `copkg export` on one machine, `copkg import` on another (two pairs of
//! roots here): the clone gets the same packages (the same bytes, pinned
//! by sha256), the same services running with the same arguments and
//! account, enabled in the same order; a second import changes nothing;
//! a hostile export changes nothing at all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const WEB: &str = "1.web.clone.local";
const TICK: &str = "1.tick.clone.local";
const IDLE: &str = "1.idle.clone.local";

/// copkg on "the other machine": its own roots, the same repository.
fn other(sandbox: &Sandbox) -> Command {
    let mut cmd = sandbox.copkg();
    cmd.env("COPKG_SOFTWARE_ROOT", sandbox.path().join("software2"))
        .env("COPKG_RUNTIME_ROOT", sandbox.path().join("runtime2"))
        .arg("--repo")
        .arg(sandbox.repo());
    cmd
}

fn ok(out: Output) -> Output {
    assert_eq!(out.code, 0, "{out:?}");
    out
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn changes(out: &Output) -> usize {
    json_lines(out)
        .iter()
        .filter(|r| r["changed"].as_bool().expect("changed"))
        .count()
}

/// Each service's state, package and enabled flag, by `status --json`.
fn services(cmd: &mut Command) -> Vec<(String, String, String, bool)> {
    let out = run(cmd.args(["--json", "status"]));
    json_lines(&out)
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
                s["package"].as_str().unwrap().to_owned(),
                s["enabled"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

#[test]
fn import_makes_another_machine_the_same_and_twice_changes_nothing() {
    let sandbox = Sandbox::new();
    // nobody runs one service: it must reach the roots.
    std::fs::set_permissions(
        sandbox.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sandbox.pack_and_install(&example_dir("ticker"), "com.example:ticker:1.0");
    sandbox.pack_and_install(&example_dir("ticker"), "com.example:ticker:2.0");
    sandbox.pack_and_install(&example_dir("hello"), "com.example:hello:1.0");
    let here = |args: &[&str]| ok(run(sandbox.copkg().args(args)));
    here(&[
        "start",
        "--user",
        "nobody",
        "com.example:ticker:1.0",
        TICK,
        "--",
        "600",
    ]);
    here(&[
        "start",
        "--user",
        "root",
        "com.example:ticker:2.0",
        WEB,
        "--",
        "601",
    ]);
    here(&[
        "start",
        "--user",
        "root",
        "com.example:ticker:2.0",
        IDLE,
        "--",
        "602",
    ]);
    here(&["stop", IDLE]);
    here(&["enable", WEB]);
    here(&["enable", TICK, "--after", WEB]);

    let exported = here(&["export"]);
    let file = write(&sandbox.path().join("export.json"), &exported.stdout);
    let export: serde_json::Value = serde_json::from_str(&exported.stdout).unwrap();
    // In start order: WEB before TICK, which starts after it.
    let order: Vec<&str> = export["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    let web_at = order.iter().position(|s| *s == WEB).unwrap();
    let tick_at = order.iter().position(|s| *s == TICK).unwrap();
    assert!(web_at < tick_at, "{order:?}");
    assert_eq!(export["packages"].as_array().unwrap().len(), 3);

    // Four runs: check, real, check again, real again.
    let import = |dry: bool| {
        let mut cmd = other(&sandbox);
        cmd.arg("--json");
        if dry {
            cmd.arg("--dry-run");
        }
        ok(run(cmd.arg("import").arg(&file)))
    };
    let plan = import(true);
    // 3 installs, 2 starts (the stopped, not enabled one stays out), 2 enables.
    assert_eq!(changes(&plan), 7, "{}", plan.stdout);
    assert!(!sandbox.path().join("software2").exists());
    assert!(!sandbox.path().join("runtime2").exists());
    let done = import(false);
    assert_eq!(changes(&done), 7, "{}", done.stdout);
    assert_eq!(changes(&import(true)), 0);
    assert_eq!(changes(&import(false)), 0);

    // The clone runs what ran, as the same accounts, enabled alike.
    let mut there = services(&mut other(&sandbox));
    there.sort();
    let mut want = vec![
        (
            TICK.to_owned(),
            "running".to_owned(),
            "com.example:ticker:1.0".to_owned(),
            true,
        ),
        (
            WEB.to_owned(),
            "running".to_owned(),
            "com.example:ticker:2.0".to_owned(),
            true,
        ),
    ];
    want.sort();
    assert_eq!(there, want);
    let status = ok(run(other(&sandbox).args(["--json", "status", TICK])));
    assert_eq!(json_lines(&status)[0]["user"], "nobody");
    let exported_there = ok(run(other(&sandbox).arg("export")));
    let there: serde_json::Value = serde_json::from_str(&exported_there.stdout).unwrap();
    assert_eq!(there["packages"], export["packages"]);

    // A service that runs here with other arguments is reported, left
    // running, and the rest goes on: exit 6.
    ok(run(other(&sandbox).args(["stop", WEB])));
    ok(run(other(&sandbox).args(["stop", TICK])));
    ok(run(other(&sandbox).args([
        "start",
        "--user",
        "root",
        "com.example:ticker:2.0",
        WEB,
        "--",
        "999",
    ])));
    let out = run(other(&sandbox).arg("import").arg(&file));
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.stderr.contains(&format!("cannot start {WEB}")),
        "{}",
        out.stderr
    );
    let running: Vec<_> = services(&mut other(&sandbox))
        .into_iter()
        .filter(|s| s.1 == "running")
        .map(|s| s.0)
        .collect();
    assert_eq!(running.len(), 2, "{running:?}");

    for service in [WEB, TICK, IDLE] {
        let _ = run(sandbox.copkg().args(["stop", service]));
        let _ = run(other(&sandbox).args(["stop", service]));
    }
}

#[test]
fn a_hostile_export_changes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.pack(&example_dir("hello"), "com.example:hello:1.0");
    let cases = [
        (
            r#"{"format":"copkg-export/1","packages":[{"coordinate":"com.example:hello:1.0"}],"services":[{"service":"../../etc","package":"com.example:hello:1.0"}]}"#,
            "service `../../etc`",
        ),
        (
            r#"{"format":"copkg-export/1","packages":[{"coordinate":"com.example:hello:1.0"}],"services":[],"hooks":"os.execute('id')"}"#,
            "unknown field",
        ),
        (
            r#"{"format":"copkg-export/1","packages":[{"coordinate":"com.example:hello:1.0","sha256":"00"}],"services":[]}"#,
            "digest",
        ),
        ("not json", "not a copkg export"),
    ];
    for (text, says) in cases {
        let file = write(&sandbox.path().join("bad.json"), text);
        let out = run(other(&sandbox).arg("import").arg(&file));
        assert_eq!(out.code, 2, "{text}: {out:?}");
        assert!(out.stderr.contains(says), "{text}: {}", out.stderr);
        assert!(!sandbox.path().join("software2").exists(), "{text}");
    }
    // A wrong digest pin is found by the install, and nothing is installed.
    let wrong = "0".repeat(64);
    let file = write(
        &sandbox.path().join("pinned.json"),
        &format!(
            r#"{{"format":"copkg-export/1","packages":[{{"coordinate":"com.example:hello:1.0","sha256":"{wrong}"}}],"services":[]}}"#
        ),
    );
    let out = run(other(&sandbox).arg("import").arg(&file));
    assert_eq!(out.code, 4, "{out:?}");
    let listed = ok(run(other(&sandbox).arg("list")));
    assert_eq!(listed.stdout, "");
}
