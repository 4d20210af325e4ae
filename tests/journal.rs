//! The audit journal end to end: what each journaled command writes, what
//! never reaches it (credentials), concurrent writers, rotation, a planted
//! symlink, and `copkg history`.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;

use common::*;

const SVC: &str = "1.svc.test.local";
const LIMIT: u64 = 8 << 20;

fn state_dir(sandbox: &Sandbox) -> PathBuf {
    sandbox.path().join("runtime/.copkg")
}

fn journal_path(sandbox: &Sandbox) -> PathBuf {
    state_dir(sandbox).join("journal.jsonl")
}

/// Every entry of the current journal file, each line parsed.
fn entries(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    std::fs::read_to_string(journal_path(sandbox))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// (action, target, result, exit code) of each entry.
fn summary(entries: &[serde_json::Value]) -> Vec<(String, String, String, u64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
                e["result"].as_str().unwrap().to_owned(),
                e["exit_code"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn row(action: &str, target: &str, result: &str, code: u64) -> (String, String, String, u64) {
    (action.into(), target.into(), result.into(), code)
}

/// Packs `files` as `com.example:<name>:<version>` into the repository.
fn pack_package(sandbox: &Sandbox, name: &str, version: &str, files: &[(&str, &str)]) -> String {
    let dir = sandbox.path().join("src").join(name).join(version);
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    let coordinate = format!("com.example:{name}:{version}");
    sandbox.pack(&dir, &coordinate);
    coordinate
}

fn copkg(sandbox: &Sandbox, args: &[&str]) -> Output {
    run(sandbox
        .copkg()
        .env_remove("SUDO_USER")
        .arg("--repo")
        .arg(sandbox.repo())
        .args(args))
}

#[test]
fn every_change_is_journaled_with_its_result_exit_code_and_user() {
    let sandbox = Sandbox::new();
    let sleeper = [("script.d/start.lua", lua_service("exec sleep 60"))];
    let sleeper: Vec<(&str, &str)> = sleeper.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let v1 = pack_package(&sandbox, "sleeper", "1.0.0", &sleeper);
    let v2 = pack_package(
        &sandbox,
        "sleeper",
        "2.0.0",
        &[("script.d/start.lua", "error('v2 never starts')\n")],
    );
    let steps: &[(&[&str], i32)] = &[
        (&["install", &v1], 0),
        (&["install", &v1], 0),
        (&["start", "--user", "root", &v1, SVC], 0),
        (&["start", "--user", "root", &v1, SVC], 0),
        (&["reload", SVC], 0),
        (&["restart", SVC], 0),
        (&["upgrade", SVC, &v2], 12),
        (&["stop", SVC], 0),
        (&["stop", SVC], 0),
        (&["stop", "9.nope.test.local"], 11),
        (&["start", &v1, "Not.A.Service"], 2),
        (&["cleanup", SVC], 0),
        (&["cleanup", SVC], 0),
        (&["uninstall", &v2, &v1], 0),
        (&["adopt", &v1], 3),
    ];
    for (args, code) in steps {
        let out = copkg(&sandbox, args);
        assert_eq!(out.code, *code, "{args:?}: {out:?}");
        // Reads journal nothing.
        for read in [
            &["status"][..],
            &["list"],
            &["resolve", &v1],
            &["verify", "--all"],
            &["history"],
        ] {
            copkg(&sandbox, read);
        }
    }
    let entries = entries(&sandbox);
    assert_eq!(
        summary(&entries),
        [
            row("install", &v1, "ok", 0),
            row("install", &v1, "unchanged", 0),
            row("start", SVC, "ok", 0),
            row("start", SVC, "unchanged", 0),
            row("reload", SVC, "ok", 0),
            row("restart", SVC, "ok", 0),
            row("upgrade", SVC, "error", 12),
            row("stop", SVC, "ok", 0),
            row("stop", SVC, "unchanged", 0),
            row("stop", "9.nope.test.local", "error", 11),
            row("start", "Not.A.Service", "error", 2),
            row("cleanup", SVC, "ok", 0),
            row("cleanup", SVC, "unchanged", 0),
            row("uninstall", &v2, "ok", 0),
            row("uninstall", &v1, "ok", 0),
            row("adopt", &v1, "error", 3),
        ]
    );
    let me = nix_uid();
    for entry in &entries {
        assert_eq!(entry["uid"].as_u64(), Some(me), "{entry}");
        assert_eq!(entry["user"].as_str(), Some("root"), "{entry}");
        assert!(entry.get("sudo_user").is_none(), "{entry}");
        assert!(entry["pid"].as_u64().is_some_and(|pid| pid > 1), "{entry}");
        let time = entry["time"].as_str().unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
        let epoch = entry["epoch"].as_u64().unwrap();
        assert!(epoch > 1_700_000_000, "{epoch}");
        let changed = entry["changed"].as_bool().unwrap();
        assert_eq!(changed, entry["result"] == "ok", "{entry}");
        assert_eq!(entry.get("error").is_some(), entry["result"] == "error");
        // The command line as given, after the program name.
        let command = entry["command"].as_str().unwrap();
        let action = entry["action"].as_str().unwrap();
        assert!(
            command.starts_with(&format!("--repo {} {action} ", sandbox.repo().display())),
            "{command}"
        );
    }
    // The rollback is in the upgrade's entry: what failed and what runs.
    let upgrade = &entries[6];
    let error = upgrade["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "upgrade of {SVC} to {v2} failed; rolled back to {v1}"
        )),
        "{error}"
    );
    assert!(!error.contains('\n'));
    assert_eq!(
        upgrade["command"],
        format!("--repo {} upgrade {SVC} {v2}", sandbox.repo().display())
    );

    // Under sudo, the person behind it (the service is cleaned up: 11).
    let out = run(sandbox
        .copkg()
        .env("SUDO_USER", "alice")
        .args(["stop", SVC]));
    assert_eq!(out.code, 11, "{out:?}");
    let last = self::entries(&sandbox).pop().unwrap();
    assert_eq!(last["sudo_user"], "alice");
    // The journal is copkg's alone.
    let mode = std::fs::metadata(journal_path(&sandbox))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn nix_uid() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_multi_coordinate_install_journals_each_and_never_a_password() {
    let sandbox = Sandbox::new();
    let hello = pack_package(&sandbox, "hello", "1.0.0", &[("bin/hello", "hi\n")]);
    let server = StaticServer::start(&sandbox.repo());
    let url = server.url.replace("http://", "http://deployer:s3cret-pw@");
    let missing = "com.example:missing:1.0.0";
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(&url)
        .args(["install", &hello, missing]));
    assert_eq!(out.code, 3, "{out:?}");
    let out = run(sandbox
        .copkg()
        .arg(format!("--repo={url}"))
        .args(["install", &hello]));
    assert_eq!(out.code, 0, "{out:?}");
    let entries = entries(&sandbox);
    // The parallel installs' entries, in either order, then the second run's.
    let mut first = summary(&entries[..2]);
    first.sort();
    let mut expected = vec![
        row("install", &hello, "ok", 0),
        row("install", missing, "error", 3),
    ];
    expected.sort();
    assert_eq!(first, expected);
    assert_eq!(
        summary(&entries[2..]),
        [row("install", &hello, "unchanged", 0)]
    );
    let text = std::fs::read_to_string(journal_path(&sandbox)).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("deployer"), "{text}");
    let redacted = server.url.replace("http://", "http://<redacted>@");
    assert_eq!(
        entries[2]["command"],
        format!("'--repo={redacted}' install {hello}")
    );
    assert!(
        entries[0]["command"]
            .as_str()
            .unwrap()
            .contains(&format!("'{redacted}' install")),
        "{}",
        entries[0]
    );
    let error = entries.iter().find(|e| e["target"] == missing).unwrap()["error"]
        .as_str()
        .unwrap();
    assert!(error.contains("not found"), "{error}");
}

#[test]
fn concurrent_copkg_processes_write_whole_lines() {
    let sandbox = Sandbox::new();
    let hello = pack_package(&sandbox, "hello", "1.0.0", &[("bin/hello", "hi\n")]);
    // Long arguments make long lines, each still written at once.
    let padding = format!("--user=root:{}", "x".repeat(1500));
    let mut children = Vec::new();
    for n in 0..8 {
        children.push(
            sandbox
                .copkg()
                .arg("--repo")
                .arg(sandbox.repo())
                .args(["install", &hello])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        children.push(
            sandbox
                .copkg()
                .args(["start", &padding, &hello, &format!("{n}.svc.test.local")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut child in children {
        child.wait().unwrap();
    }
    let entries = entries(&sandbox);
    assert_eq!(entries.len(), 16);
    let installs: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "install")
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(installs.len(), 8);
    assert_eq!(
        installs.iter().filter(|r| **r == "ok").count(),
        1,
        "{installs:?}"
    );
    let mut starts: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "start")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    starts.sort();
    assert_eq!(
        starts,
        (0..8)
            .map(|n| format!("{n}.svc.test.local"))
            .collect::<Vec<_>>()
    );
    for entry in entries.iter().filter(|e| e["action"] == "start") {
        assert!(entry["command"].as_str().unwrap().len() > 1500);
    }
}

/// A valid journal line for `target`, padded to about `len` bytes.
fn line(target: &str, len: usize) -> String {
    let mut line = serde_json::json!({
        "time": "2024-01-01T00:00:00Z", "epoch": 1_704_067_200u64, "uid": 0,
        "user": "root", "pid": 1, "action": "stop", "command": "",
        "target": target, "result": "unchanged", "changed": false, "exit_code": 0,
    })
    .to_string();
    let pad = len.saturating_sub(line.len() + 1);
    line = line.replacen(
        "\"command\":\"\"",
        &format!("\"command\":\"{}\"", "c".repeat(pad)),
        1,
    );
    line.push('\n');
    line
}

/// Fills `path` with lines of about 1 KiB named `prefix.N`, then one named
/// `prefix.last`, to 50 bytes under `bytes`.
fn fill(path: &std::path::Path, prefix: &str, bytes: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut n = 0;
    while written + 2048 < bytes {
        let text = line(&format!("{prefix}.{n}"), 1024);
        written += text.len() as u64;
        file.write_all(text.as_bytes()).unwrap();
        n += 1;
    }
    // The last line brings the file to just under `bytes`.
    let last = (bytes - written - 50) as usize;
    file.write_all(line(&format!("{prefix}.last"), last).as_bytes())
        .unwrap();
    file.flush().unwrap();
}

#[test]
fn rotation_keeps_the_journal_bounded_and_history_reads_across_files() {
    let sandbox = Sandbox::new();
    assert_eq!(copkg(&sandbox, &["stop", SVC]).code, 11);
    let state = state_dir(&sandbox);
    let rotated = |n: usize| state.join(format!("journal.jsonl.{n}"));
    // A full journal and full rotated files, the oldest `three`.
    fill(&journal_path(&sandbox), "current", LIMIT);
    for (n, name) in [(1, "one"), (2, "two"), (3, "three")] {
        fill(&rotated(n), name, LIMIT);
    }
    let out = copkg(&sandbox, &["stop", "2.svc.test.local"]);
    assert_eq!(out.code, 11, "{out:?}");
    assert_eq!(
        std::fs::metadata(rotated(1)).unwrap().len(),
        LIMIT - 50,
        "filled to just under the limit"
    );
    // Rotated: the new entry alone in a new file, the old files shifted,
    // the oldest gone, the whole bounded.
    let entries = entries(&sandbox);
    assert_eq!(entries.len(), 1, "not rotated");
    assert_eq!(
        summary(&entries),
        [row("stop", "2.svc.test.local", "error", 11)]
    );
    assert!(!rotated(4).exists());
    let tail = |path: PathBuf| {
        let text = std::fs::read_to_string(path).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        last["target"].as_str().unwrap().to_owned()
    };
    assert_eq!(tail(rotated(1)), "current.last");
    assert_eq!(tail(rotated(2)), "one.last");
    assert_eq!(tail(rotated(3)), "two.last");
    let total: u64 = [journal_path(&sandbox), rotated(1), rotated(2), rotated(3)]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total <= 4 * (LIMIT + 4096), "{total}");

    // history reads across the files, oldest first.
    let out = copkg(&sandbox, &["--json", "history", "-n", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let shown: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        shown
            .iter()
            .map(|e| e["target"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["current.last", "2.svc.test.local"]
    );
    let out = copkg(&sandbox, &["--json", "history", "one.0"]);
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    let out = copkg(&sandbox, &["--json", "history", "three.0"]);
    assert_eq!(out.stdout, "", "the oldest file is dropped");
}

#[test]
fn a_symlink_planted_at_the_journal_path_is_not_followed() {
    let sandbox = Sandbox::new();
    let hello = pack_package(&sandbox, "hello", "1.0.0", &[("bin/hello", "hi\n")]);
    let other = pack_package(&sandbox, "hello", "2.0.0", &[("bin/hello", "hi\n")]);
    assert_eq!(copkg(&sandbox, &["stop", SVC]).code, 11);
    let victim = sandbox.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::remove_file(journal_path(&sandbox)).unwrap();
    std::os::unix::fs::symlink(&victim, journal_path(&sandbox)).unwrap();

    // The installs work; the journal warns once.
    let out = copkg(&sandbox, &["install", &hello, &other]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr
            .matches("warning: copkg's journal is not written")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        std::fs::symlink_metadata(journal_path(&sandbox))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // history refuses to read through it.
    let out = copkg(&sandbox, &["history"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("journal.jsonl is not a regular file"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unusable_state_dir_warns_once_and_the_install_still_works() {
    let sandbox = Sandbox::new();
    let hello = pack_package(&sandbox, "hello", "1.0.0", &[("bin/hello", "hi\n")]);
    let other = pack_package(&sandbox, "hello", "2.0.0", &[("bin/hello", "hi\n")]);
    let runtime = sandbox.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = copkg(&sandbox, &["install", &hello, &other]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.root().join("com/example/hello/2.0.0").is_dir());
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("journal"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0].contains("is not safe for copkg's state"),
        "{}",
        warnings[0]
    );
    assert!(!state_dir(&sandbox).exists());
}

#[test]
fn history_filters_escapes_and_prints_json() {
    let sandbox = Sandbox::new();
    let hello = pack_package(&sandbox, "hello", "1.0.0", &[("bin/hello", "hi\n")]);
    assert_eq!(copkg(&sandbox, &["install", &hello]).code, 0);
    assert_eq!(copkg(&sandbox, &["stop", SVC]).code, 11);
    assert_eq!(copkg(&sandbox, &["stop", "bad\u{1b}[31m\nforged"]).code, 2);
    assert_eq!(copkg(&sandbox, &["install", &hello]).code, 0);

    let out = copkg(&sandbox, &["history"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(lines[0].starts_with("TIME "), "{}", lines[0]);
    // Aligned: every row has its ACTION where the header has it.
    let column = lines[0].find("ACTION").unwrap();
    for line in &lines[1..] {
        assert_eq!(line.find("root  ").map(|at| at + 6), Some(column), "{line}");
    }
    assert!(
        lines[1].contains(&format!("install  {hello}")),
        "{}",
        lines[1]
    );
    assert!(lines[1].trim_end().ends_with("  0     ok"), "{}", lines[1]);
    assert!(
        lines[2].ends_with(&format!("11    error: no such service: {SVC}")),
        "{}",
        lines[2]
    );
    // The forged target stays on its line, escaped.
    assert!(lines[3].contains("bad\\u{1b}[31m\\nforged"), "{}", lines[3]);
    assert!(lines[4].trim_end().ends_with("unchanged"), "{}", lines[4]);

    // Filtered by target, and the last N.
    let out = copkg(&sandbox, &["--json", "history", &hello]);
    let shown: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        summary(&shown),
        [
            row("install", &hello, "ok", 0),
            row("install", &hello, "unchanged", 0)
        ]
    );
    assert_eq!(
        shown,
        [entries(&sandbox)[0].clone(), entries(&sandbox)[3].clone()]
    );
    let out = copkg(&sandbox, &["--json", "history", "-n", "1", &hello]);
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(out.stdout.contains("\"unchanged\""), "{}", out.stdout);
    let out = copkg(&sandbox, &["history", "9.none.test.local"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");

    // A corrupt line is skipped with one warning.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(journal_path(&sandbox))
        .unwrap();
    file.write_all(b"{\"half\": \nnot json either\n").unwrap();
    assert_eq!(copkg(&sandbox, &["stop", SVC]).code, 11);
    let out = copkg(&sandbox, &["--json", "history"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 5);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "warning: skipped 2 corrupt lines of copkg's journal in {}",
            state_dir(&sandbox).display()
        )
    );
    // history journals nothing.
    assert_eq!(entries_count(&sandbox), 7);
}

fn entries_count(sandbox: &Sandbox) -> usize {
    std::fs::read_to_string(journal_path(sandbox))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn lua_scripts_journal_each_change_they_make() {
    let sandbox = Sandbox::new();
    let sleeper = lua_service("exec sleep 60");
    let v1 = pack_package(
        &sandbox,
        "sleeper",
        "1.0.0",
        &[("script.d/start.lua", &sleeper)],
    );
    let hello = pack_package(&sandbox, "hello", "1.0.0", &[("bin/hello", "hi\n")]);
    let script = sandbox.path().join("deploy.lua");
    std::fs::write(
        &script,
        format!(
            "copkg.install('{v1}')\ncopkg.start('{v1}', '{SVC}', {{}}, {{ user = 'root' }})\ncopkg.restart('{SVC}')\ncopkg.stop('{SVC}')\nassert(not pcall(copkg.stop, '9.nope.test.local'))\ncopkg.install_many({{'{hello}', 'com.example:missing:1.0.0'}})\ncopkg.uninstall('{hello}')\n"
        ),
    )
    .unwrap();
    let out = copkg(&sandbox, &["run", script.to_str().unwrap(), "x y"]);
    assert_eq!(out.code, 0, "{out:?}");
    let entries = entries(&sandbox);
    assert_eq!(
        summary(&entries),
        [
            row("install", &v1, "ok", 0),
            row("start", SVC, "ok", 0),
            row("restart", SVC, "ok", 0),
            row("stop", SVC, "ok", 0),
            row("stop", "9.nope.test.local", "error", 11),
            row("install", &hello, "ok", 0),
            row("install", "com.example:missing:1.0.0", "error", 3),
            row("uninstall", &hello, "ok", 0),
        ]
    );
    for entry in &entries {
        assert_eq!(
            entry["command"],
            format!(
                "--repo {} run {} 'x y'",
                sandbox.repo().display(),
                script.display()
            )
        );
    }
}
