//! `copkg prune` end to end with real installs, a registered (stopped)
//! service and a pinned coordinate; `copkg completions` and `copkg man`.

mod common;

use common::*;

const SVC: &str = "1.ticker.test.local";

/// Packs and installs `packages-example/<name>` as each of `versions`.
fn install_versions(sandbox: &Sandbox, name: &str, versions: &[&str]) {
    for version in versions {
        sandbox.pack_and_install(&example_dir(name), &format!("com.example:{name}:{version}"));
    }
}

fn installed(sandbox: &Sandbox) -> String {
    let out = run(sandbox.copkg().arg("list"));
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

#[test]
fn prune_keeps_the_newest_the_pinned_and_the_used() {
    let sandbox = Sandbox::new();
    install_versions(
        &sandbox,
        "hello",
        &["1.9", "1.0-rc1", "1.10", "1.0", "2.0-beta"],
    );
    install_versions(&sandbox, "ticker", &["1.0", "1.1", "2.0"]);
    // A service of ticker 1.0, stopped but still registered.
    let started =
        run(sandbox
            .copkg()
            .args(["start", "--user", "root", "com.example:ticker:1.0", SVC]));
    assert_eq!(started.code, 0, "{started:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"pinned": ["com.example:hello:1.0-rc1"]}"#).unwrap();
    let prune = |args: &[&str]| {
        run(sandbox
            .copkg()
            .arg("--config")
            .arg(&config)
            .args(args)
            .args(["prune", "--keep", "2"]))
    };
    let before = installed(&sandbox);
    let dir = |version: &str| sandbox.root().join("com/example/hello").join(version);

    // --dry-run prints the plan and changes nothing.
    let plan = prune(&["--dry-run"]);
    assert_eq!(
        (plan.code, plan.stdout.as_str(), plan.stderr.as_str()),
        (
            0,
            format!(
                "would remove com.example:hello:1.9 from {}\n\
                 would remove com.example:hello:1.0 from {}\n\
                 kept com.example:hello:1.0-rc1: pinned in the config\n\
                 kept com.example:ticker:1.0: used by stopped service {SVC}\n",
                dir("1.9").display(),
                dir("1.0").display()
            )
            .as_str(),
            ""
        )
    );
    assert_eq!(installed(&sandbox), before);
    let json = prune(&["--dry-run", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (&json["changed"], &json["dry_run"]),
        (&true.into(), &true.into())
    );

    // The real run removes what the plan said, and says why it kept the rest.
    let out = prune(&["--json"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "changed": true,
            "dry_run": false,
            "keep": 2,
            "removed": [
                {"coordinate": "com.example:hello:1.9", "dir": dir("1.9")},
                {"coordinate": "com.example:hello:1.0", "dir": dir("1.0")},
            ],
            "kept": [
                {"coordinate": "com.example:hello:2.0-beta", "reason": "newest"},
                {"coordinate": "com.example:hello:1.10", "reason": "newest"},
                {"coordinate": "com.example:hello:1.0-rc1", "reason": "pinned"},
                {"coordinate": "com.example:ticker:2.0", "reason": "newest"},
                {"coordinate": "com.example:ticker:1.1", "reason": "newest"},
                {"coordinate": "com.example:ticker:1.0", "reason": "used",
                 "service": SVC, "state": "stopped"},
            ],
            "failed": [],
        })
    );
    assert_eq!(
        installed(&sandbox),
        "com.example:hello:1.0-rc1\ncom.example:hello:1.10\ncom.example:hello:2.0-beta\n\
         com.example:ticker:1.0\ncom.example:ticker:1.1\ncom.example:ticker:2.0\n"
    );
    assert!(!dir("1.9").exists() && !dir("1.0").exists());

    // Again: nothing to remove, success, changed false.
    let again = prune(&["--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        (&json["changed"], &json["removed"]),
        (&false.into(), &serde_json::json!([]))
    );
    let again = prune(&[]);
    assert_eq!(
        (again.code, again.stderr.as_str()),
        (0, "nothing to prune\n"),
        "{again:?}"
    );

    // Each removal is in the journal.
    let history = run(sandbox.copkg().args(["history", "com.example:hello:1.9"]));
    assert!(history.stdout.contains("prune"), "{history:?}");

    // Once the service is cleaned up, its version goes too.
    assert_eq!(run(sandbox.copkg().args(["cleanup", SVC])).code, 0);
    let out = prune(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("removed com.example:ticker:1.0 from "),
        "{out:?}"
    );
}

#[test]
fn pinned_must_list_coordinates() {
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"pinned": ["com.example:hello:1", "hello"]}"#).unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["prune", "--keep", "1"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: invalid config value for `pinned`: entry 2: "),
        "{}",
        out.stderr
    );
    std::fs::write(&config, r#"{"pinned": "com.example:hello:1"}"#).unwrap();
    let out = run(sandbox.copkg().arg("--config").arg(&config).arg("list"));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("`pinned`"), "{}", out.stderr);
}

#[test]
fn dry_run_is_refused_where_it_is_not_honoured() {
    let sandbox = Sandbox::new();
    let out = run(sandbox.copkg().args(["--dry-run", "boot"]));
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            2,
            "error: `copkg boot` has no --dry-run (see `copkg boot --help`)\n"
        )
    );
    assert_eq!(run(sandbox.copkg().args(["--dry-run", "list"])).code, 0);
}

#[test]
fn completions_and_man_page() {
    let sandbox = Sandbox::new();
    let bash = run(sandbox.copkg().args(["completions", "bash"]));
    assert_eq!(bash.code, 0, "{bash:?}");
    for command in [
        "install",
        "uninstall",
        "prune",
        "start",
        "upgrade",
        "completions",
        "man",
    ] {
        assert!(
            bash.stdout.contains(command),
            "bash completion lacks {command}"
        );
    }
    for shell in ["zsh", "fish"] {
        let out = run(sandbox.copkg().args(["completions", shell]));
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("prune"), "{shell}");
    }
    assert_eq!(run(sandbox.copkg().args(["completions", "tcsh"])).code, 2);

    // Works with a config that would not load.
    let man = run(sandbox.copkg().args(["--config", "/nonexistent", "man"]));
    assert_eq!(man.code, 0, "{man:?}");
    // clap_mangen opens with the apostrophe string definitions, then .TH.
    let first_macro = man
        .stdout
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap();
    assert!(first_macro.starts_with(".TH copkg 1"), "{first_macro}");
    for command in ["install", "prune", "status", "completions"] {
        assert!(man.stdout.contains(command), "man page lacks {command}");
    }
}
