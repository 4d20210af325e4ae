//! Services that come back without a resident daemon, end to end with real
//! processes and signals (as root): enable/disable, boot in `--after`
//! order, reconcile with its back-off and start limit, records of another
//! boot, reset-failed, the systemd units (checked by systemd-analyze and by
//! running their Exec lines) and the config keys.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const SVC: &str = "1.svc.test.local";

/// Packs and installs a package made of `files` (path, content) as
/// `com.example:<name>:1.0.0`.
fn install_package(sandbox: &Sandbox, name: &str, files: &[(&str, &str)]) -> String {
    let dir = sandbox.path().join("src").join(name);
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    let coordinate = format!("com.example:{name}:1.0.0");
    sandbox.pack_and_install(&dir, &coordinate);
    coordinate
}

/// A start.lua that spawns `sh -c SCRIPT sh SERVICE ARGS…` detached.
fn lua_service(script: &str) -> String {
    format!(
        r#"local ctx = ...
local args = {{ "-c", [==[{script}]==], "sh", ctx.service }}
for _, a in ipairs(ctx.args) do args[#args + 1] = a end
copkg.spawn({{
  program = "/bin/sh",
  args = args,
  cwd = ctx.runtime_dir,
  stdout = ctx.runtime_dir .. "/console/stdout.log",
  stderr = ctx.runtime_dir .. "/console/stderr.log",
}})
"#
    )
}

/// A package whose service sleeps until it is stopped.
fn sleeper(sandbox: &Sandbox) -> String {
    install_package(
        sandbox,
        "sleeper",
        &[("script.d/start.lua", &lua_service("exec sleep 600"))],
    )
}

/// A config file with these keys.
fn config(sandbox: &Sandbox, json: &str) -> PathBuf {
    let path = sandbox.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    path
}

/// copkg, with `--config` when one is given.
fn copkg_with(sandbox: &Sandbox, config: Option<&Path>) -> Command {
    let mut command = sandbox.copkg();
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
}

fn copkg(sandbox: &Sandbox, config: Option<&Path>, args: &[&str]) -> Output {
    run(copkg_with(sandbox, config).args(args))
}

fn start(sandbox: &Sandbox, config: Option<&Path>, package: &str, service: &str) -> Output {
    // As root, naming root keeps start's "runs as root" warning out of stderr.
    let out = copkg(
        sandbox,
        config,
        &["start", "--user", "root", package, service, "--"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    out
}

fn record_path(sandbox: &Sandbox, service: &str) -> PathBuf {
    sandbox
        .path()
        .join("runtime/.copkg/services")
        .join(format!("{service}.json"))
}

fn record(sandbox: &Sandbox, service: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(record_path(sandbox, service)).unwrap()).unwrap()
}

fn recorded_pid(sandbox: &Sandbox, service: &str) -> i32 {
    record(sandbox, service)["processes"][0]["pid"]
        .as_i64()
        .unwrap() as i32
}

/// Rewrites a record as if it had been written in another boot.
fn forge_other_boot(sandbox: &Sandbox, service: &str) {
    let mut rec = record(sandbox, service);
    assert_eq!(
        rec["boot_id"].as_str(),
        Some(
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .unwrap()
                .trim()
        ),
        "start records this boot's id"
    );
    rec["boot_id"] = "00000000-0000-4000-8000-000000000000".into();
    std::fs::write(record_path(sandbox, service), rec.to_string()).unwrap();
}

fn kill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
}

/// `status --json` of one service.
fn status(sandbox: &Sandbox, config: Option<&Path>, service: &str) -> serde_json::Value {
    let out = copkg(sandbox, config, &["--json", "status", service]);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|_| panic!("{out:?}"))
}

/// The JSON lines boot or reconcile printed.
fn actions(out: &Output) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Ends whatever the services of a sandbox still run, even when a test fails.
struct StopAll<'a>(&'a Sandbox, &'a [&'a str]);

impl Drop for StopAll<'_> {
    fn drop(&mut self) {
        for service in self.1 {
            let _ = self.0.copkg().args(["stop", service]).output();
        }
    }
}

#[test]
fn a_sigkilled_service_runs_again_after_the_next_reconcile() {
    let sandbox = Sandbox::new();
    let package = sleeper(&sandbox);
    let no_cgroups = config(&sandbox, r#"{"serviceCgroups": false}"#);
    for config in [None, Some(no_cgroups.as_path())] {
        let _stop = StopAll(&sandbox, &[SVC]);
        start(&sandbox, config, &package, SVC);
        let out = copkg(&sandbox, config, &["enable", SVC]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "enabled 1.svc.test.local\n")
        );
        // Reconcile has nothing to do while it runs.
        let out = copkg(&sandbox, config, &["reconcile"]);
        assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");

        let old = recorded_pid(&sandbox, SVC);
        kill(old);
        assert_eq!(status(&sandbox, config, SVC)["state"], "crashed");
        let out = copkg(&sandbox, config, &["reconcile"]);
        assert_eq!(out.code, 0, "{out:?}");
        let new = recorded_pid(&sandbox, SVC);
        assert_ne!(new, old);
        assert!(pid_alive(new));
        assert_eq!(
            out.stdout,
            format!("started {SVC} (pid {new}) from {package}\n")
        );
        // The restart is in the journal, as reconcile's.
        let history = copkg(&sandbox, config, &["--json", "history", "-n", "1", SVC]);
        let entry: serde_json::Value = serde_json::from_str(history.stdout.trim()).unwrap();
        assert_eq!(
            (entry["action"].as_str(), entry["result"].as_str()),
            (Some("reconcile"), Some("ok")),
            "{entry}"
        );
        let shown = status(&sandbox, config, SVC);
        assert_eq!(shown["state"], "running");
        assert_eq!(shown["enabled"], true);
        assert_eq!(shown["restarts"], 1);
        assert!(shown["last_crashed_at"].as_str().unwrap().ends_with('Z'));
        let line = copkg(&sandbox, config, &["status", SVC]).stdout;
        let prefix =
            format!("{SVC}\trunning\t{new}\t{package}\tenabled\trestarts=1\tlast-crash=20");
        assert!(line.starts_with(&prefix), "{line}");

        // Stopped on purpose: left alone, by reconcile and by a boot run again.
        let out = copkg(&sandbox, config, &["stop", SVC]);
        assert_eq!(out.code, 0, "{out:?}");
        for command in ["reconcile", "boot"] {
            let out = copkg(&sandbox, config, &[command]);
            assert_eq!(
                (out.code, out.stdout),
                (
                    0,
                    format!(
                        "{SVC} left alone: stopped with `copkg stop`{}\n",
                        if command == "boot" {
                            " in this boot"
                        } else {
                            ""
                        }
                    )
                ),
                "{command}"
            );
            assert_eq!(status(&sandbox, config, SVC)["state"], "stopped");
        }
        assert!(!pid_alive(new));
        let out = copkg(&sandbox, config, &["cleanup", SVC]);
        assert_eq!(out.code, 0, "{out:?}");
        // Cleanup forgets the unit too.
        let out = copkg(&sandbox, config, &["--json", "reconcile"]);
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn an_always_crashing_service_ends_failed_after_the_start_limit() {
    let sandbox = Sandbox::new();
    let _stop = StopAll(&sandbox, &[SVC]);
    let config = config(
        &sandbox,
        r#"{"startLimitBurst": 3, "startLimitIntervalSecs": 600, "restartBackoffSecs": 0}"#,
    );
    let config = Some(config.as_path());
    let package = install_package(
        &sandbox,
        "crasher",
        &[("script.d/start.lua", &lua_service("sleep 0.3; exit 3"))],
    );
    start(&sandbox, config, &package, SVC);
    assert_eq!(copkg(&sandbox, config, &["enable", SVC]).code, 0);

    // Reconcile after each crash until the limit: 3 failures are 2
    // restarts, then `failed`.
    let crash_then_reconcile = || {
        assert!(wait_until(Duration::from_secs(5), || {
            status(&sandbox, config, SVC)["state"] != "running"
        }));
        let out = copkg(&sandbox, config, &["--json", "reconcile"]);
        assert_eq!(out.code, 0, "{out:?}");
        actions(&out).remove(0)
    };
    let seen: Vec<String> = (0..3)
        .map(|_| {
            crash_then_reconcile()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seen, ["started", "started", "failed"]);
    let shown = status(&sandbox, config, SVC);
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["restarts"], 2);
    let out = copkg(&sandbox, config, &["status", SVC]);
    assert_eq!(out.code, 7);
    assert!(
        out.stdout.starts_with(&format!(
            "{SVC}\tfailed\t-\t{package}\tenabled\trestarts=2\t"
        )),
        "{out:?}"
    );

    // Past the limit: left alone.
    let started_at = record(&sandbox, SVC)["processes"].clone();
    let out = copkg(&sandbox, config, &["reconcile"]);
    assert_eq!(
        (out.code, out.stdout),
        (
            0,
            format!(
                "{SVC} is failed: 3 failures within 600 s (start limit); left alone until `copkg reset-failed {SVC}` or `copkg start`\n"
            )
        )
    );
    assert_eq!(record(&sandbox, SVC)["processes"], started_at, "restarted");

    // reset-failed: reconcile brings it back again.
    let out = copkg(&sandbox, config, &["reset-failed", SVC]);
    assert_eq!(
        (out.code, out.stdout),
        (
            0,
            format!("{SVC} is no longer failed; reconcile brings it back\n")
        )
    );
    assert_eq!(status(&sandbox, config, SVC)["state"], "crashed");
    let out = copkg(&sandbox, config, &["--json", "reset-failed", SVC]);
    assert_eq!(
        out.stdout,
        format!("{{\"changed\":false,\"service\":\"{SVC}\",\"was_failed\":false}}\n")
    );
    // The crash that was counted is forgotten: three more to the limit.
    let seen: Vec<String> = (0..4)
        .map(|_| {
            crash_then_reconcile()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seen, ["started", "started", "started", "failed"]);

    // So does `copkg start`: it runs, and its next crash is restarted.
    start(&sandbox, config, &package, SVC);
    assert_eq!(crash_then_reconcile()["action"], "started");
    assert_eq!(status(&sandbox, config, SVC)["restarts"], 6);
}

#[test]
fn restarts_back_off_doubling_within_the_window() {
    let sandbox = Sandbox::new();
    let _stop = StopAll(&sandbox, &[SVC]);
    let config = config(&sandbox, r#"{"restartBackoffSecs": 1.5}"#);
    let config = Some(config.as_path());
    let package = sleeper(&sandbox);
    start(&sandbox, config, &package, SVC);
    assert_eq!(copkg(&sandbox, config, &["enable", SVC]).code, 0);

    // The first restart is at once.
    kill(recorded_pid(&sandbox, SVC));
    let out = copkg(&sandbox, config, &["--json", "reconcile"]);
    assert_eq!(actions(&out)[0]["action"], "started", "{out:?}");
    let restarted = Instant::now();

    // The second waits restartBackoffSecs after the first.
    let pid = recorded_pid(&sandbox, SVC);
    kill(pid);
    let out = copkg(&sandbox, config, &["--json", "reconcile"]);
    let action = &actions(&out)[0];
    assert_eq!(action["action"], "backing-off", "{out:?}");
    let wait = action["wait_secs"].as_f64().unwrap();
    assert!(wait > 0.0 && wait <= 1.5, "{wait}");
    assert_eq!(
        recorded_pid(&sandbox, SVC),
        pid,
        "restarted while backing off"
    );
    assert_eq!(status(&sandbox, config, SVC)["state"], "crashed");
    let out = copkg(&sandbox, config, &["reconcile"]);
    assert!(
        out.stdout
            .starts_with(&format!("{SVC} crashed; backing off, next restart in ")),
        "{out:?}"
    );
    // It counts as one crash however often reconcile looks.
    std::thread::sleep(Duration::from_millis(1600).saturating_sub(restarted.elapsed()));
    let out = copkg(&sandbox, config, &["--json", "reconcile"]);
    assert_eq!(actions(&out)[0]["action"], "started", "{out:?}");
    let shown = status(&sandbox, config, SVC);
    assert_eq!(
        (shown["state"].as_str(), shown["restarts"].as_u64()),
        (Some("running"), Some(2))
    );

    // The third waits twice as long: 3 s after the second.
    kill(recorded_pid(&sandbox, SVC));
    let out = copkg(&sandbox, config, &["--json", "reconcile"]);
    let action = &actions(&out)[0];
    assert_eq!(action["action"], "backing-off", "{out:?}");
    let wait = action["wait_secs"].as_f64().unwrap();
    assert!(wait > 1.5 && wait <= 3.0, "{wait}");
}

#[test]
fn boot_starts_enabled_services_in_their_order_and_skips_those_after_a_failure() {
    let sandbox = Sandbox::new();
    let services = [
        "1.app.test.local",
        "1.db.test.local",
        "1.web.test.local",
        "1.bad.test.local",
        "1.dep.test.local",
        "1.lone.test.local",
    ];
    let _stop = StopAll(&sandbox, &services);
    let log = sandbox.path().join("order.log");
    // Each service appends its name to the log as it starts; `bad` fails
    // to start once the flag file exists.
    let flag = sandbox.path().join("break-bad");
    // (Written by start.lua itself, before it returns: the services' own
    // processes would race each other to the log.)
    let script = format!(
        "local ctx = ...\nif ctx.service == '1.bad.test.local' and io.open('{}') then error('bad is broken') end\nlocal log = assert(io.open('{}', 'a'))\nlog:write(ctx.service, '\\n')\nlog:close()\n{}",
        flag.display(),
        log.display(),
        lua_service("exec sleep 600").trim_start_matches("local ctx = ...\n")
    );
    let package = install_package(&sandbox, "ordered", &[("script.d/start.lua", &script)]);
    for service in services {
        start(&sandbox, None, &package, service);
    }
    let enable = |args: &[&str]| {
        let out = copkg(&sandbox, None, &[&["enable"], args].concat());
        assert_eq!(out.code, 0, "{out:?}");
    };
    enable(&[
        "1.web.test.local",
        "--after",
        "1.app.test.local",
        "1.db.test.local",
    ]);
    enable(&["1.app.test.local", "--after", "1.db.test.local"]);
    enable(&["1.db.test.local"]);
    enable(&["1.bad.test.local"]);
    enable(&["1.dep.test.local", "--after", "1.bad.test.local"]);
    // Not enabled: boot leaves it be.
    let lone_pid = recorded_pid(&sandbox, "1.lone.test.local");
    kill(lone_pid);

    // A reboot: nothing runs, and every record is of another boot.
    for service in &services[..5] {
        kill(recorded_pid(&sandbox, service));
        forge_other_boot(&sandbox, service);
        assert_eq!(status(&sandbox, None, service)["state"], "stopped");
    }
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&flag, "").unwrap();

    let out = copkg(&sandbox, None, &["boot"]);
    assert_eq!(out.code, 8, "{out:?}");
    let started = |service: &str| {
        format!(
            "started {service} (pid {}) from {package}",
            recorded_pid(&sandbox, service)
        )
    };
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "1.bad.test.local did not start".to_owned(),
            started("1.db.test.local"),
            started("1.app.test.local"),
            "1.dep.test.local left alone: after 1.bad.test.local, which does not run (error)"
                .to_owned(),
            started("1.web.test.local"),
        ]
    );
    assert!(out.stderr.contains("bad is broken"), "{out:?}");
    assert!(out.stderr.contains("1 of 5 starts failed"), "{out:?}");
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        order,
        "1.db.test.local\n1.app.test.local\n1.web.test.local\n"
    );
    assert_eq!(
        status(&sandbox, None, "1.dep.test.local")["state"],
        "stopped"
    );
    assert_eq!(
        status(&sandbox, None, "1.lone.test.local")["state"],
        "crashed"
    );

    // Boot again: what runs is left running.
    std::fs::remove_file(&flag).unwrap();
    let out = copkg(&sandbox, None, &["--json", "boot"]);
    assert_eq!(out.code, 0, "{out:?}");
    let got: Vec<(String, String)> = actions(&out)
        .iter()
        .map(|a| {
            (
                a["service"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("1.bad.test.local", "started"),
        ("1.db.test.local", "running"),
        ("1.app.test.local", "running"),
        ("1.dep.test.local", "started"),
        ("1.web.test.local", "running"),
    ]
    .iter()
    .map(|(s, a)| ((*s).to_owned(), (*a).to_owned()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_record_from_another_boot_is_stopped_untouched_by_reconcile_and_started_by_boot() {
    let sandbox = Sandbox::new();
    let _stop = StopAll(&sandbox, &[SVC]);
    let package = sleeper(&sandbox);
    start(&sandbox, None, &package, SVC);
    assert_eq!(copkg(&sandbox, None, &["enable", SVC]).code, 0);
    let pid = recorded_pid(&sandbox, SVC);
    forge_other_boot(&sandbox, SVC);

    // Its pid and start time mean nothing now: not running, not crashed,
    // and never signalled.
    let out = copkg(&sandbox, None, &["status", SVC]);
    assert_eq!(out.code, 7);
    assert_eq!(
        out.stdout,
        format!("{SVC}\tstopped\t-\t{package}\tenabled\trestarts=0\tlast-crash=-\n")
    );
    let out = copkg(&sandbox, None, &["stop", SVC]);
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{SVC} is not running\n"))
    );
    assert!(pid_alive(pid), "a process of 'another boot' was signalled");
    kill(pid);

    let out = copkg(&sandbox, None, &["reconcile"]);
    assert_eq!(
        (out.code, out.stdout),
        (
            0,
            format!(
                "{SVC} left alone: it has not run since the last boot (`copkg boot` starts it)\n"
            )
        )
    );
    assert_eq!(status(&sandbox, None, SVC)["state"], "stopped");

    let out = copkg(&sandbox, None, &["boot"]);
    assert_eq!(out.code, 0, "{out:?}");
    let new = recorded_pid(&sandbox, SVC);
    assert_ne!(new, pid);
    assert!(pid_alive(new));
    assert_eq!(
        out.stdout,
        format!("started {SVC} (pid {new}) from {package}\n")
    );
    let pid_file = sandbox
        .path()
        .join(format!("runtime/.copkg/pids/{SVC}.pid"));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{new}\n")
    );

    // A record written before copkg kept boot ids still loads.
    let mut rec = record(&sandbox, SVC);
    rec.as_object_mut().unwrap().remove("boot_id");
    std::fs::write(record_path(&sandbox, SVC), rec.to_string()).unwrap();
    assert_eq!(status(&sandbox, None, SVC)["state"], "running");
}

#[test]
fn disable_keeps_reconcile_and_boot_away_and_both_are_idempotent() {
    let sandbox = Sandbox::new();
    let _stop = StopAll(&sandbox, &[SVC]);
    let package = sleeper(&sandbox);
    start(&sandbox, None, &package, SVC);
    let json = |args: &[&str]| {
        let out = copkg(&sandbox, None, &[&["--json"], args].concat());
        assert_eq!(out.code, 0, "{out:?}");
        serde_json::from_str::<serde_json::Value>(out.stdout.trim()).unwrap()
    };
    assert_eq!(json(&["enable", SVC])["changed"], true);
    assert_eq!(json(&["enable", SVC])["changed"], false);
    assert_eq!(json(&["disable", SVC])["changed"], true);
    let again = json(&["disable", SVC]);
    assert_eq!(
        (again["changed"].as_bool(), again["enabled"].as_bool()),
        (Some(false), Some(false))
    );
    let out = copkg(&sandbox, None, &["disable", SVC]);
    assert_eq!(out.stdout, format!("{SVC} is not enabled\n"));

    let pid = recorded_pid(&sandbox, SVC);
    kill(pid);
    let out = copkg(&sandbox, None, &["reconcile"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    let out = copkg(&sandbox, None, &["boot"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert_eq!(recorded_pid(&sandbox, SVC), pid);
    let out = copkg(&sandbox, None, &["status", SVC]);
    assert_eq!(
        out.stdout,
        format!("{SVC}\tcrashed\t-\t{package}\tdisabled\trestarts=0\tlast-crash=-\n")
    );
    assert_eq!(status(&sandbox, None, SVC)["enabled"], false);

    // Enabled again, the next reconcile brings it back.
    assert_eq!(json(&["enable", SVC])["changed"], true);
    let out = copkg(&sandbox, None, &["reconcile"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_ne!(recorded_pid(&sandbox, SVC), pid);
    assert_eq!(status(&sandbox, None, SVC)["state"], "running");
}

#[test]
fn enable_refuses_cycles_naming_them_and_unknown_services() {
    let sandbox = Sandbox::new();
    let (a, b, c) = ("1.a.test.local", "1.b.test.local", "1.c.test.local");
    let _stop = StopAll(&sandbox, &[a, b, c]);
    let package = sleeper(&sandbox);
    for service in [a, b, c] {
        start(&sandbox, None, &package, service);
    }
    assert_eq!(copkg(&sandbox, None, &["enable", a, "--after", b]).code, 0);
    assert_eq!(copkg(&sandbox, None, &["enable", b, "--after", c]).code, 0);
    let out = copkg(&sandbox, None, &["enable", c, "--after", a]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: {c} cannot start after that: the order would loop ({c} after {a} after {b} after {c})\n"
        )
    );
    let out = copkg(&sandbox, None, &["enable", a, "--after", a]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(&format!("({a} after {a})")), "{out:?}");
    // Nothing was recorded for the refused ones.
    let shown = status(&sandbox, None, c);
    assert_eq!(shown["enabled"], false);
    let unit: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            sandbox
                .path()
                .join(format!("runtime/.copkg/units/{a}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(unit["after"], serde_json::json!([b]));

    let out = copkg(&sandbox, None, &["enable", "1.nope.test.local"]);
    assert_eq!(out.code, 11, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: no such service: 1.nope.test.local"),
        "{out:?}"
    );
    let out = copkg(
        &sandbox,
        None,
        &["enable", a, "--after", "1.nope.test.local"],
    );
    assert_eq!(out.code, 11, "{out:?}");
    for command in ["disable", "reset-failed", "systemd-unit"] {
        let out = copkg(&sandbox, None, &[command, "1.nope.test.local"]);
        assert_eq!(out.code, 11, "{command}: {out:?}");
    }
    let out = copkg(&sandbox, None, &["enable", "not-a-service"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn start_limit_and_backoff_config_values_are_validated() {
    let sandbox = Sandbox::new();
    let cases = [
        (r#"{"startLimitBurst": 0}"#, "`startLimitBurst`"),
        (r#"{"startLimitBurst": -1}"#, "`startLimitBurst`"),
        (
            r#"{"startLimitIntervalSecs": 0}"#,
            "`startLimitIntervalSecs`",
        ),
        (
            r#"{"startLimitIntervalSecs": 1e300}"#,
            "`startLimitIntervalSecs`",
        ),
        (r#"{"restartBackoffSecs": -0.5}"#, "`restartBackoffSecs`"),
        (r#"{"restartBackoffSecs": 4000}"#, "`restartBackoffSecs`"),
        (r#"{"restartBackoffSecs": "1"}"#, "`restartBackoffSecs`"),
    ];
    for (json, key) in cases {
        let path = config(&sandbox, json);
        let out = copkg(&sandbox, Some(&path), &["reconcile"]);
        assert_eq!(out.code, 2, "{json}: {out:?}");
        assert!(out.stderr.contains(key), "{json}: {out:?}");
    }
    let path = config(
        &sandbox,
        r#"{"startLimitBurst": 1, "startLimitIntervalSecs": 0.5, "restartBackoffSecs": 0}"#,
    );
    let out = copkg(&sandbox, Some(&path), &["reconcile"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
}

/// The words of a systemd Exec line (plain words and double-quoted ones,
/// as `systemd_unit` writes them).
fn exec_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next().unwrap() {
                        'n' => word.push('\n'),
                        'x' => {
                            let hex: String = [chars.next().unwrap(), chars.next().unwrap()]
                                .iter()
                                .collect();
                            word.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                        }
                        other => word.push(other),
                    },
                    c => word.push(c),
                }
            }
        } else {
            word.push(c);
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
    words
}

fn systemd_analyze_verify(dir: &Path, units: &[&str]) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .current_dir(dir)
        .output()
        .expect("systemd-analyze (Debian package systemd; .ci/run installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings (an unknown key, a bad value) leave the status 0: none may appear.
    let about_ours = stderr
        .lines()
        .filter(|l| units.iter().any(|u| l.contains(u)))
        .collect::<Vec<_>>();
    assert!(out.status.success() && about_ours.is_empty(), "{stderr}");
}

#[test]
fn systemd_units_verify_and_their_exec_lines_work() {
    let sandbox = Sandbox::new();
    let _stop = StopAll(&sandbox, &[SVC]);
    let package = install_package(
        &sandbox,
        "reloadable",
        &[(
            "script.d/start.lua",
            &lua_service(
                "trap 'echo reloaded >> log/reload.log' HUP; while :; do sleep 0.05; done",
            ),
        )],
    );
    let config = config(&sandbox, r#"{"startLimitBurst": 4}"#);
    let out = run(sandbox.copkg().args(["--config"]).arg(&config).args([
        "start",
        "--user",
        "root",
        &package,
        SVC,
        "--",
        "two words",
        "100%",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["systemd-unit", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    let unit = out.stdout;
    let units = sandbox.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    let name = format!("copkg-{SVC}.service");
    std::fs::write(units.join(&name), &unit).unwrap();
    systemd_analyze_verify(&units, &[&name]);
    assert!(unit.contains("\nType=forking\n"), "{unit}");
    assert!(unit.contains("\nStartLimitBurst=4\n"), "{unit}");
    let setting = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {unit}"))
            .to_owned()
    };
    let pid_file = PathBuf::from(setting("PIDFile"));
    assert_eq!(
        pid_file,
        sandbox
            .path()
            .join(format!("runtime/.copkg/pids/{SVC}.pid"))
    );
    let main_pid = || -> i32 {
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(main_pid(), recorded_pid(&sandbox, SVC));

    // Run the Exec lines as systemd would, with an empty environment.
    let exec = |key: &str| {
        let words = exec_words(&setting(key));
        let out = run(Command::new(&words[0]).args(&words[1..]).env_clear());
        assert_eq!(out.code, 0, "{key}: {out:?}");
        out
    };
    exec("ExecReload");
    let reload_log = sandbox.path().join(format!("runtime/{SVC}/log/reload.log"));
    assert!(wait_until(Duration::from_secs(5), || reload_log.exists()));
    exec("ExecStop");
    assert!(!pid_file.exists(), "stop leaves the pid file");
    assert_eq!(status(&sandbox, None, SVC)["state"], "stopped");
    exec("ExecStart");
    let pid = main_pid();
    assert!(pid_alive(pid));
    assert_eq!(pid, recorded_pid(&sandbox, SVC));
    // The arguments came through systemd's quoting intact.
    assert_eq!(
        record(&sandbox, SVC)["args"],
        serde_json::json!(["two words", "100%"])
    );

    // contrib/: the boot unit, the reconcile unit and its timer.
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let binary = env!("CARGO_BIN_EXE_copkg");
    let names = [
        "copkg-boot.service",
        "copkg-reconcile.service",
        "copkg-reconcile.timer",
    ];
    for file in names {
        let text = std::fs::read_to_string(contrib.join(file)).unwrap();
        std::fs::write(
            units.join(file),
            text.replace("/usr/local/bin/copkg", binary),
        )
        .unwrap();
    }
    systemd_analyze_verify(&units, &names);
    // Their Exec lines, with this sandbox's config in place of /etc's.
    for file in ["copkg-boot.service", "copkg-reconcile.service"] {
        let text = std::fs::read_to_string(units.join(file)).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        let words: Vec<String> = exec_words(line)
            .into_iter()
            .map(|w| {
                if w == "/etc/copkg/config.json" {
                    config.display().to_string()
                } else {
                    w
                }
            })
            .collect();
        let out = run(sandbox.copkg().args(&words[1..]));
        assert_eq!(out.code, 0, "{file}: {out:?}");
    }
    // A service handed to systemd should not be enabled in copkg too.
    assert_eq!(copkg(&sandbox, None, &["enable", SVC]).code, 0);
    let out = copkg(&sandbox, None, &["systemd-unit", SVC]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("is enabled in copkg too"), "{out:?}");

    // The cron lines name the same commands.
    let cron = std::fs::read_to_string(contrib.join("copkg.cron")).unwrap();
    assert!(
        cron.contains("@reboot") && cron.contains(" boot "),
        "{cron}"
    );
    assert!(
        cron.contains("* * * * *") && cron.contains(" reconcile "),
        "{cron}"
    );
}

/// A forking daemon whose main process (the pid start.pid names) dies
/// while a worker of it lives on (an nginx master killed): crashed, not
/// running; reconcile ends the orphaned worker and starts it again; stop
/// ends what is left of it too.
#[test]
fn a_daemon_whose_main_process_died_is_crashed_and_its_leftovers_are_ended() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "forking",
        &[(
            "script.d/start.py",
            r#"import subprocess, sys
rt = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--runtime-dir=")][0]
master = subprocess.Popen(["/bin/sh", "-c", "sleep 600 & wait"], cwd=rt, start_new_session=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(rt + "/run/start.pid", "w") as f:
    f.write(f"{master.pid}\n")
"#,
        )],
    );
    let no_cgroups = config(&sandbox, r#"{"serviceCgroups": false}"#);
    for config in [None, Some(no_cgroups.as_path())] {
        let _stop = StopAll(&sandbox, &[SVC]);
        start(&sandbox, config, &package, SVC);
        assert_eq!(copkg(&sandbox, config, &["enable", SVC]).code, 0);
        let pids = |sandbox: &Sandbox| -> Vec<i32> {
            status(sandbox, config, SVC)["pids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap() as i32)
                .collect()
        };
        // The main process: the one start.pid named.
        let master = record(&sandbox, SVC)["main"][0]["pid"].as_i64().unwrap() as i32;
        let before = pids(&sandbox);
        assert_eq!(before.len(), 2, "{before:?}");
        assert!(before.contains(&master));
        let worker = *before.iter().find(|p| **p != master).unwrap();
        kill(master);
        assert!(pid_alive(worker));
        assert_eq!(status(&sandbox, config, SVC)["state"], "crashed");

        let out = copkg(&sandbox, config, &["reconcile"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr
                .contains("its main process is gone; ending what it left running"),
            "{out:?}"
        );
        assert!(!pid_alive(worker), "the orphaned worker still runs");
        let shown = status(&sandbox, config, SVC);
        assert_eq!(shown["state"], "running", "{shown}");
        assert_eq!(shown["restarts"], 1, "{shown}");

        // Stop of a crashed service ends its leftovers too.
        let now = pids(&sandbox);
        let master = record(&sandbox, SVC)["main"][0]["pid"].as_i64().unwrap() as i32;
        let worker = *now.iter().find(|p| **p != master).unwrap();
        kill(master);
        let out = copkg(&sandbox, config, &["stop", SVC]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(!pid_alive(worker), "stop left the worker running");
        assert_eq!(status(&sandbox, config, SVC)["state"], "stopped");
        assert_eq!(copkg(&sandbox, config, &["cleanup", SVC]).code, 0);
    }
}
