//! Services end to end with real processes and signals: the example
//! packages' full cycle, and every case of shared/SECURITY.md part D, with
//! B6 (uninstall while running) and B7 (no inherited lock fds).

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SVC: &str = "1.svc.test.local";

/// Packs and installs a package made of `files` (path, content, mode) as
/// `com.example:<name>:1.0.0`.
fn install_package(sandbox: &Sandbox, name: &str, files: &[(&str, &str, u32)]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = sandbox.path().join("src").join(name);
    for (path, content, mode) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let coordinate = format!("com.example:{name}:1.0.0");
    sandbox.pack_and_install(&dir, &coordinate);
    coordinate
}

/// Installs one of packages-example/.
fn install_example(sandbox: &Sandbox, name: &str) -> String {
    let coordinate = format!("com.example:{name}:1.0.0");
    sandbox.pack_and_install(&example_dir(name), &coordinate);
    coordinate
}

fn runtime_dir(sandbox: &Sandbox, service: &str) -> PathBuf {
    sandbox.path().join("runtime").join(service)
}

fn start(sandbox: &Sandbox, package: &str, service: &str, args: &[&str]) -> Output {
    // As root, naming root keeps start's "runs as root" warning out of stderr.
    run(sandbox
        .copkg()
        .args(["start", "--user", "root", package, service, "--"])
        .args(args))
}

/// A config file that turns cgroups off (copkg then tracks as a subreaper).
fn no_cgroups_config(sandbox: &Sandbox) -> PathBuf {
    let config = sandbox.path().join("no-cgroups.json");
    std::fs::write(&config, r#"{"serviceCgroups": false}"#).unwrap();
    config
}

/// copkg, with `--config` when one is given.
fn copkg_with(sandbox: &Sandbox, config: Option<&PathBuf>) -> Command {
    let mut command = sandbox.copkg();
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
}

/// copkg's record of a service, in its state dir under the runtime root.
fn record_path(sandbox: &Sandbox, service: &str) -> PathBuf {
    sandbox
        .path()
        .join("runtime/.copkg/services")
        .join(format!("{service}.json"))
}

fn record(sandbox: &Sandbox, service: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(record_path(sandbox, service)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn recorded_pid(sandbox: &Sandbox, service: &str) -> i32 {
    record(sandbox, service)["processes"][0]["pid"]
        .as_i64()
        .unwrap() as i32
}

fn http_get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    use std::io::Write;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split("\r\n\r\n").nth(1).map(str::to_owned)
}

#[test]
fn full_cycle_of_the_http_example() {
    let sandbox = Sandbox::new();
    let package = install_example(&sandbox, "webapp");
    let port = free_port();
    let service = "1.web.prod.trd";
    let out = start(&sandbox, &package, service, &[&format!("--port={port}")]);
    assert_eq!(out.code, 0, "{out:?}");
    let pid = recorded_pid(&sandbox, service);
    let runtime = runtime_dir(&sandbox, service);
    assert_eq!(
        out.stdout,
        format!(
            "started {service} (pid {pid}) from {package} in {}\n",
            runtime.display()
        )
    );
    for sub in ["log", "etc", "console", "data", "run"] {
        assert!(runtime.join(sub).is_dir(), "{sub}");
    }
    assert_eq!(
        http_get(port).as_deref(),
        Some("hello from 1.web.prod.trd\n")
    );

    let out = run(sandbox.copkg().args(["status", service]));
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{service}\trunning\t{pid}\t{package}\n"))
    );
    let out = run(sandbox.copkg().args(["--json", "status"]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["state"], "running");
    assert_eq!(status["pids"][0], pid);

    let out = run(sandbox.copkg().args(["stop", service]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("stopped {service}\n").as_str()),
        "{out:?}"
    );
    assert!(!pid_alive(pid));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still open"
    );
    let log = std::fs::read_to_string(runtime.join("log/access.log")).unwrap();
    assert!(log.contains("\"GET / HTTP/1.0\" 200"), "{log}");
    assert!(
        log.contains("stopping on signal 15"),
        "stop.py asked it to finish: {log}"
    );
    let out = run(sandbox.copkg().args(["status", service]));
    assert_eq!(
        (out.code, out.stdout),
        (7, format!("{service}\tstopped\t-\t{package}\n"))
    );
    assert!(!runtime.join("run/start.pid").exists());

    let out = run(sandbox.copkg().args(["cleanup", service]));
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("removed {}\n", runtime.display()))
    );
    assert!(!runtime.exists());

    // Started again, then killed behind copkg's back: crashed.
    let out = start(&sandbox, &package, service, &[&format!("--port={port}")]);
    assert_eq!(out.code, 0, "{out:?}");
    let pid = recorded_pid(&sandbox, service);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    let out = run(sandbox.copkg().args(["status", service]));
    assert_eq!(
        (out.code, out.stdout),
        (7, format!("{service}\tcrashed\t-\t{package}\n"))
    );
}

#[test]
fn start_lua_picks_the_platform_binary() {
    let sandbox = Sandbox::new();
    let package = install_example(&sandbox, "ticker");
    let service = "1.ticker.dev.local";
    let out = start(&sandbox, &package, service, &["0.1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let log = runtime_dir(&sandbox, service).join("log/ticker.log");
    let tag = format!("tick ({}-{})", std::env::consts::OS, std::env::consts::ARCH);
    let ticked = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&tag))
    });
    assert!(ticked, "{:?}", std::fs::read_to_string(&log));
    let out = run(sandbox.copkg().args(["stop", service]));
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn d1_dead_pid_is_crashed_and_stop_sends_nothing_and_clears_it() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "d1",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let pid = recorded_pid(&sandbox, SVC);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    let out = run(sandbox.copkg().args(["status", SVC]));
    assert_eq!(out.stdout, format!("{SVC}\tcrashed\t-\t{package}\n"));
    // Stopping what does not run succeeds and says so (like `systemctl stop`).
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("{SVC} is not running\n"));
    assert_eq!(
        out.stderr,
        format!("{SVC} was crashed; cleared its pid file\n")
    );
    let out = run(sandbox.copkg().args(["--json", "stop", SVC]));
    assert_eq!(
        out.stdout,
        format!("{{\"changed\":false,\"service\":\"{SVC}\",\"status\":\"stopped\"}}\n")
    );
    assert!(!runtime_dir(&sandbox, SVC).join("run/start.pid").exists());
    let out = run(sandbox.copkg().args(["status", SVC]));
    assert_eq!(out.stdout, format!("{SVC}\tstopped\t-\t{package}\n"));
}

#[test]
fn d2_reused_pid_is_never_signalled() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "d2",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let service_pid = recorded_pid(&sandbox, SVC);
    // The service dies and its pid "is reused" by an unrelated process: the
    // record is pointed at a live process with another start time.
    let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // (Gone, not only signalled: a loaded machine takes a moment.)
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(
        service_pid
    )));
    let path = record_path(&sandbox, SVC);
    let mut rec = record(&sandbox, SVC);
    let start_time = rec["processes"][0]["start_time"].as_u64().unwrap();
    rec["processes"][0]["pid"] = (unrelated.id() as i64).into();
    rec["processes"][0]["pgrp"] = (unrelated.id() as i64).into();
    rec["processes"][0]["start_time"] = (start_time.saturating_sub(7)).into();
    std::fs::write(&path, rec.to_string()).unwrap();
    std::fs::write(
        runtime_dir(&sandbox, SVC).join("run/start.pid"),
        format!("{}\n", unrelated.id()),
    )
    .unwrap();

    let out = run(sandbox.copkg().args(["status", SVC]));
    assert_eq!(out.stdout, format!("{SVC}\tcrashed\t-\t{package}\n"));
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("{SVC} is not running\n").as_str()),
        "{out:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        unrelated.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[test]
fn d3_zombie_is_not_running() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "d3",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let real = recorded_pid(&sandbox, SVC);
    // A child of this test that exits and is not reaped is a zombie.
    let zombie = Command::new("true").spawn().unwrap();
    let zpid = zombie.id() as i32;
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(zpid)));
    let stat = std::fs::read_to_string(format!("/proc/{zpid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[0], "Z");
    let mut rec = record(&sandbox, SVC);
    // As without a cgroup (not root): the recorded pids are all copkg has.
    rec["cgroup"] = serde_json::Value::Null;
    rec["processes"][0]["pid"] = zpid.into();
    rec["processes"][0]["pgrp"] = fields[2].parse::<i64>().unwrap().into();
    rec["processes"][0]["start_time"] = fields[19].parse::<u64>().unwrap().into();
    std::fs::write(record_path(&sandbox, SVC), rec.to_string()).unwrap();
    let out = run(sandbox.copkg().args(["status", SVC]));
    assert_eq!(out.stdout, format!("{SVC}\tcrashed\t-\t{package}\n"));
    drop(zombie);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(real),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[test]
fn d4_g4_a_pid_file_is_a_hint_checked_against_what_the_script_started() {
    let sandbox = Sandbox::new();
    // A world-writable pid file naming the daemon the script started: the
    // daemon is one of the script's processes, so it is adopted.
    let honest = r#"#!/usr/bin/env python3
import os, subprocess, sys
runtime = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--runtime-dir=")][0]
p = subprocess.Popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
path = os.path.join(runtime, "run", "start.pid")
with open(path, "w") as f:
    f.write(f"{p.pid}\n")
os.chmod(path, 0o666)
"#;
    let package = install_package(&sandbox, "d4", &[("script.d/start.py", honest, 0o755)]);
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);

    // A pid file naming what the script did not start — pid 1, an older
    // process, copkg's own parent — is refused, and what the script did
    // start is ended.
    let mut older = Command::new("sleep").arg("60").spawn().unwrap();
    for (i, stranger) in ["1".to_owned(), older.id().to_string(), "$PPID".to_owned()]
        .iter()
        .enumerate()
    {
        let liar = format!(
            "#!/bin/sh
sh -c 'exec sleep 60' </dev/null >/dev/null 2>&1 &
echo $! > \"$COPKG_RUNTIME_DIR/started.pid\"
echo {stranger} > \"$COPKG_RUNTIME_DIR/run/start.pid\"
"
        );
        let name = format!("liar{i}");
        let package = install_package(&sandbox, &name, &[("script.d/start.py", &liar, 0o755)]);
        let service = format!("{}.liar.test.local", i + 1);
        let out = start(&sandbox, &package, &service, &[]);
        assert_eq!(out.code, 8, "{stranger}: {out:?}");
        assert!(
            out.stderr
                .contains("which is not a process the start script started"),
            "{stranger}: {}",
            out.stderr
        );
        let daemon: i32 =
            std::fs::read_to_string(runtime_dir(&sandbox, &service).join("started.pid"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || !pid_alive(daemon)),
            "the script's daemon was left running"
        );
        let out = run(sandbox.copkg().args(["status", &service]));
        assert!(
            out.stdout.starts_with(&format!("{service}\tfailed\t-\t")),
            "{}",
            out.stdout
        );
    }
    assert!(
        older.try_wait().unwrap().is_none(),
        "an older process was signalled"
    );
    older.kill().unwrap();
    older.wait().unwrap();
}

#[test]
fn d5_service_ignoring_term_is_killed_and_one_surviving_the_schedule_is_an_error() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "d5",
        &[(
            "script.d/start.lua",
            &lua_service("trap '' TERM; while :; do sleep 0.05; done"),
            0o644,
        )],
    );
    let config = sandbox.path().join("config.json");
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let pid = recorded_pid(&sandbox, SVC);
    std::fs::write(&config, r#"{"stopSchedule": "TERM/0.3/KILL/5"}"#).unwrap();
    let started = Instant::now();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["stop", SVC]));
    assert_eq!((out.code, out.stdout), (0, format!("stopped {SVC}\n")));
    assert!(!pid_alive(pid));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "TERM was not waited for"
    );

    // A schedule must end in KILL (one that outlives its last step is an
    // error: service.rs tests that case).
    std::fs::write(&config, r#"{"stopSchedule": "TERM/10"}"#).unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["status"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("ending in KILL"), "{}", out.stderr);
}

#[test]
fn d6_stop_ends_the_whole_process_group() {
    let sandbox = Sandbox::new();
    let children = "sleep 300 & sleep 300 & sh -c 'sleep 300' & wait";
    let package = install_package(
        &sandbox,
        "d6",
        &[("script.d/start.lua", &lua_service(children), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let leader = recorded_pid(&sandbox, SVC);
    let members = || -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(')')
                            .map(|(_, r)| r.split_whitespace().nth(2).map(str::to_owned))
                    })
                    .flatten()
                    .is_some_and(|pgrp| pgrp == leader.to_string())
            })
            .filter(|pid| pid_alive(*pid))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || members().len() >= 4),
        "{:?}",
        members()
    );
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        wait_until(Duration::from_secs(2), || members().is_empty()),
        "left: {:?}",
        members()
    );
}

#[test]
fn d7_b7_detached_service_is_isolated() {
    let sandbox = Sandbox::new();
    // The shell notes what only it can see, then becomes `sleep`, whose
    // descriptors are then exactly what the service was given.
    let probe = r#"echo "umask $(umask)" > probe.tmp; echo "cwd $(pwd)" >> probe.tmp; mv probe.tmp probe.txt; exec sleep 60"#;
    let package = install_package(
        &sandbox,
        "d7",
        &[("script.d/start.lua", &lua_service(probe), 0o644)],
    );
    // copkg itself gets an extra inherited descriptor (fd 7) from its parent.
    let mut copkg = sandbox.copkg();
    copkg.args(["start", "--user", "root", &package, SVC]);
    let program = copkg.get_program().to_owned();
    let args: Vec<String> = copkg
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(r#"exec 7</etc/hostname; exec "$0" "$@""#)
        .arg(&program)
        .args(&args);
    for (key, value) in copkg.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    let child = shell
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let copkg_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");

    let runtime = runtime_dir(&sandbox, SVC);
    let probe_file = runtime.join("probe.txt");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&probe_file).is_ok_and(|t| t.contains("cwd"))
    }));
    let text = std::fs::read_to_string(&probe_file).unwrap();
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap()
            .to_owned()
    };
    let pid = recorded_pid(&sandbox, SVC);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (ppid, pgrp, session): (i32, i32, i32) = (
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
        fields[3].parse().unwrap(),
    );
    assert_eq!((pgrp, session), (pid, pid), "own session and process group");
    assert_ne!(ppid as u32, copkg_pid, "not a child of copkg");
    // Once the shell has become `sleep`, its descriptors are what it was
    // given (sleep itself opens its locale's messages for a moment as it
    // starts: that passes).
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    }));
    let fds_now = || {
        let mut fds: Vec<(u32, PathBuf)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_str().unwrap().parse().unwrap(),
                    std::fs::read_link(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        fds.sort();
        fds
    };
    wait_until(Duration::from_secs(2), || fds_now().len() == 3);
    let fds = fds_now();
    let numbers: Vec<u32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(
        numbers,
        [0, 1, 2],
        "no inherited descriptors (copkg's locks and the parent's fd 7 included): {fds:?}"
    );
    let link = |fd: u32| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
    assert_eq!(link(0), Path::new("/dev/null"));
    assert_eq!(link(1), runtime.join("console/stdout.log"));
    assert_eq!(link(2), runtime.join("console/stderr.log"));
    assert_eq!(line("umask"), "0022");
    assert_eq!(line("cwd"), runtime.display().to_string());
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn d8_two_starts_at_once_give_one_instance() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "d8",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            sandbox
                .copkg()
                .args(["start", "--user", "root", &package, SVC])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both succeed: one starts it, the other finds the same start done.
    let mut said: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    said.sort();
    assert_eq!(said, [format!("{SVC} already"), format!("started {SVC}")]);
    let out = run(sandbox.copkg().args(["--json", "status", SVC]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["pids"].as_array().unwrap().len(), 1);
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn stop_of_a_service_whose_lock_is_held_times_out_naming_it() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "locked",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let lock = sandbox
        .path()
        .join(format!("runtime/.copkg/locks/{SVC}.lock"));
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        !Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    }));
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"lockTimeoutSecs": 1}"#).unwrap();
    let started = Instant::now();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["stop", SVC]));
    let took = started.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "waiting for another copkg working on {SVC} (lock {0})\n\
             error: timed out waiting for another copkg working on {SVC}: it showed no progress for 1 s (lock {0})\n",
            lock.display()
        )
    );
    // Still running; once the lock is free, stop works.
    let pid = recorded_pid(&sandbox, SVC);
    assert!(pid_alive(pid));
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(wait_until(Duration::from_secs(10), || !pid_alive(pid)));
}

#[test]
fn d9_hanging_or_flooding_start_script_is_bounded() {
    let sandbox = Sandbox::new();
    let hang = "#!/bin/sh\necho about to hang\nsleep 300\n";
    let package = install_package(&sandbox, "hang", &[("script.d/start.py", hang, 0o755)]);
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"scriptTimeoutSecs": 1, "scriptOutputBytes": 1000}"#,
    )
    .unwrap();
    let started = Instant::now();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["start", "--user", "root", &package, SVC]));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.code, 8, "{out:?}");
    let script = sandbox
        .root()
        .join("com/example/hang/1.0.0/script.d/start.py");
    assert_eq!(
        out.stderr,
        format!(
            "error: {SVC} did not start\n  caused by: {} did not finish within 1 s and was killed; its output ends with:\nabout to hang\n",
            script.display()
        )
    );

    let flood = "#!/bin/sh\nyes 'flooding the console' | head -c 5000000\nexit 3\n";
    let package = install_package(&sandbox, "flood", &[("script.d/start.py", flood, 0o755)]);
    let out = run(sandbox.copkg().arg("--config").arg(&config).args([
        "start",
        &package,
        "2.svc.test.local",
    ]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains(
            "failed with exit code 3; its output ends with:\n[4999000 earlier bytes not kept]\n"
        ),
        "{}",
        &out.stderr[..out.stderr.len().min(600)]
    );
    assert!(
        out.stderr.len() < 2000,
        "output was not bounded: {} bytes",
        out.stderr.len()
    );
}

#[test]
fn d10_start_without_a_live_pid_fails_with_the_console_tail() {
    let sandbox = Sandbox::new();
    let no_pidfile = "#!/bin/sh\necho 'configuring'\necho 'boom: missing config' >&2\n";
    let package = install_package(
        &sandbox,
        "nopid",
        &[("script.d/start.py", no_pidfile, 0o755)],
    );
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 8, "{out:?}");
    let runtime = runtime_dir(&sandbox, SVC);
    assert!(
        out.stderr.starts_with(&format!(
            "error: {SVC} did not start\n  caused by: the start script exited without writing {} and left no process running; its output ends with:\n--- start script output ---\n",
            runtime.join("run/start.pid").display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("configuring") && out.stderr.contains("boom: missing config"),
        "{}",
        out.stderr
    );

    let dead = format!(
        "{}\nrm -f \"$COPKG_RUNTIME_DIR/console/stdout.log\"\necho 'crashing at startup' > \"$COPKG_RUNTIME_DIR/console/stdout.log\"\n",
        "#!/bin/sh\nsh -c 'exit 0' & pid=$!; wait $pid\necho $pid > \"$COPKG_RUNTIME_DIR/run/start.pid\""
    );
    let package = install_package(&sandbox, "deadpid", &[("script.d/start.py", &dead, 0o755)]);
    let out = start(&sandbox, &package, "2.svc.test.local", &[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains("names no live process"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("crashing at startup"),
        "console tail missing: {}",
        out.stderr
    );
    // The failed start is in the registry, as failed.
    let out = run(sandbox.copkg().args(["status", "2.svc.test.local"]));
    assert_eq!(
        out.stdout,
        "2.svc.test.local\tfailed\t-\tcom.example:deadpid:1.0.0\n"
    );
}

#[test]
fn b6_uninstall_refuses_while_a_service_runs() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "b6",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let digest = record(&sandbox, SVC)["package"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(digest, package);
    let pinned = {
        let marker = std::fs::read_to_string(
            sandbox
                .root()
                .join("com/example/b6/1.0.0/.copkg-install.json"),
        )
        .unwrap();
        let marker: serde_json::Value = serde_json::from_str(&marker).unwrap();
        format!("{package}@sha256:{}", marker["sha256"].as_str().unwrap())
    };
    // Running: refused, by any spelling of the coordinate, --force or not.
    for args in [
        vec!["uninstall", package.as_str()],
        vec!["uninstall", pinned.as_str()],
        vec!["uninstall", "--force", package.as_str()],
    ] {
        let out = run(sandbox.copkg().args(&args));
        assert_eq!(out.code, 6, "{args:?}: {out:?}");
        assert!(
            out.stderr.ends_with(&format!(
                "is used by running service {SVC}; stop it first (--force never removes the package of a running service)\n"
            )),
            "{args:?}: {}",
            out.stderr
        );
        assert!(sandbox.root().join("com/example/b6/1.0.0").is_dir());
    }
    // Stopped but registered: refused unless --force (SPEC §4).
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    let out = run(sandbox.copkg().args(["uninstall", &package]));
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: {package} is used by stopped service {SVC}; clean it up first, or use --force\n"
        )
    );
    assert_eq!(
        run(sandbox.copkg().args(["uninstall", "--force", &package])).code,
        0
    );
    assert!(!sandbox.root().join("com/example/b6/1.0.0").exists());
}

#[test]
fn hierarchical_runtime_dirs_and_lifecycle_hooks() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "hooks",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let kept = sandbox.path().join("kept");
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        format!(
            r#"local default = require("copkg.policy")
local kept = "{}"
return {{
  runtime_path = default.runtime_path_hierarchical,
  before_start = function(ctx)
    copkg.write_file(ctx.runtime_dir .. "/etc/instance.conf", "service=" .. ctx.service .. "\ncell=" .. ctx.cell .. "\n")
  end,
  after_stop = function(ctx)
    copkg.write_file(ctx.runtime_dir .. "/log/stopped", ctx.package .. "\n")
  end,
  before_cleanup = function(ctx)
    copkg.write_file(kept .. "-" .. ctx.instance, copkg.read_file(ctx.runtime_dir .. "/log/stopped"))
  end,
}}
"#,
            kept.display()
        ),
    )
    .unwrap();
    let copkg = || {
        let mut cmd = sandbox.copkg();
        cmd.arg("--site").arg(&site);
        cmd
    };
    let service = "1.idee.prod.trd";
    let out = run(copkg().args(["start", "--user", "root", &package, service]));
    assert_eq!(out.code, 0, "{out:?}");
    let runtime = sandbox.path().join("runtime/trd/prod/idee/1");
    assert_eq!(
        std::fs::read_to_string(runtime.join("etc/instance.conf")).unwrap(),
        "service=1.idee.prod.trd\ncell=trd\n"
    );
    // Status with no names finds hierarchical dirs too.
    let out = run(sandbox.copkg().arg("status"));
    assert!(
        out.stdout.starts_with(&format!("{service}\trunning\t")),
        "{out:?}"
    );
    assert_eq!(run(copkg().args(["stop", service])).code, 0);
    assert_eq!(
        std::fs::read_to_string(runtime.join("log/stopped")).unwrap(),
        format!("{package}\n")
    );
    assert_eq!(run(copkg().args(["cleanup", service])).code, 0);
    assert!(!runtime.exists());
    assert_eq!(
        std::fs::read_to_string(format!("{}-1", kept.display())).unwrap(),
        format!("{package}\n")
    );
}

#[test]
fn failing_before_start_hook_aborts_the_start() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "abort",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let site = sandbox.path().join("site.lua");
    std::fs::write(&site, "return {\n  before_start = function(ctx)\n    error(\"no starts in \" .. ctx.cell)\n  end,\n}\n").unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .args(["start", "--user", "root", &package, SVC]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: hook `before_start` failed for {SVC}\n  caused by: {}:3: no starts in local\n",
            site.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!record_path(&sandbox, SVC).exists());
}

#[test]
fn start_refuses_packages_not_installed_or_without_a_start_script() {
    let sandbox = Sandbox::new();
    let out = start(&sandbox, "com.example:nope:1", SVC, &[]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stderr,
        "error: com.example:nope:1 is not installed (install it first, or use start --install)\n"
    );
    let package = install_package(&sandbox, "noscript", &[("lib/x", "x", 0o644)]);
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr
            .contains("has neither script.d/start.lua nor script.d/start.py"),
        "{}",
        out.stderr
    );
    let out = start(&sandbox, &package, "1.Bad.service", &[]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn clean_logs_compresses_deletes_and_never_touches_open_files() {
    let sandbox = Sandbox::new();
    let holder = "exec 3>>log/current.log; echo started >&3; exec sleep 60";
    let package = install_package(
        &sandbox,
        "logs",
        &[("script.d/start.lua", &lua_service(holder), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let log = runtime_dir(&sandbox, SVC).join("log");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(log.join("current.log")).is_ok_and(|t| t == "started\n")
    }));
    std::fs::write(log.join("old.log"), "x".repeat(10_000)).unwrap();
    age(&log.join("old.log"), 3);
    std::fs::write(log.join("fresh.log"), "fresh").unwrap();
    std::fs::create_dir_all(log.join("archive")).unwrap();
    std::fs::write(log.join("archive/ancient.log.gz"), "gz").unwrap();
    age(&log.join("archive/ancient.log.gz"), 40);
    age(&log.join("current.log"), 10);

    let out = run(sandbox.copkg().arg("clean-logs"));
    assert_eq!(out.code, 0, "{out:?}");
    let left: u64 = ["current.log", "old.log.gz", "fresh.log"]
        .iter()
        .map(|f| std::fs::metadata(log.join(f)).unwrap().len())
        .sum();
    assert_eq!(
        out.stdout,
        format!(
            "{SVC}: compressed 1, deleted 1, {left} bytes left in {}\n",
            log.display()
        )
    );
    assert!(!log.join("old.log").exists());
    assert!(!log.join("archive/ancient.log.gz").exists());
    assert!(
        log.join("current.log").exists(),
        "the file the service writes was touched"
    );
    assert_eq!(
        std::fs::read_to_string(log.join("current.log")).unwrap(),
        "started\n"
    );

    // Over a tiny size budget: everything not held open goes, compressed
    // first, and the file held open is rotated (copied, emptied; the copy
    // compressed, then deleted too).
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"logCleanup": {"maxBytes": 1}}"#).unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["clean-logs", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{SVC}: rotated 1, compressed 1, deleted 3, 0 bytes left in {}\n",
            log.display()
        )
    );
    assert_eq!(std::fs::metadata(log.join("current.log")).unwrap().len(), 0);
    assert!(!log.join("fresh.log").exists() && !log.join("old.log.gz").exists());
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

/// Every path below `dir` with its content, mode, owner and mtime: what a
/// test expects to find unchanged.
fn tree_state(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32, u32, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                dirs.push(path.clone());
            }
            let content = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            out.push((path, content, meta.mode(), meta.uid(), meta.mtime()));
        }
    }
    out.sort();
    out
}

/// Sets the mtime of `path` `days` back.
fn age(path: &Path, days: u64) {
    let when = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// The uid that plays a service's hostile account.
const NOBODY: u32 = 65534;

/// Gives `path` to the account, as its own log files and dirs are.
fn give_to_account(path: &Path, mode: u32) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn clean_logs_never_follows_a_link_the_account_planted_in_its_log_dir() {
    use std::os::unix::fs::MetadataExt;
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "hostile",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let log = runtime_dir(&sandbox, SVC).join("log");
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(outside.join("deeper")).unwrap();
    for file in ["victim.log", "deeper/victim.log"] {
        std::fs::write(outside.join(file), "not the service's\n").unwrap();
        age(&outside.join(file), 3);
    }
    std::fs::create_dir(log.join("sub")).unwrap();
    for (file, mode) in [("sub/old.log", 0o640), ("sub/private.log", 0o600)] {
        std::fs::write(log.join(file), "x".repeat(10_000)).unwrap();
        give_to_account(&log.join(file), mode);
        age(&log.join(file), 3);
    }
    std::os::unix::fs::symlink(&outside, log.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim.log"), log.join("sub/evil.log")).unwrap();
    give_to_account(&log.join("sub"), 0o755);
    give_to_account(&log, 0o755);
    let before = tree_state(&outside);

    let out = run(sandbox.copkg().args(["clean-logs", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    let left: u64 = ["sub/old.log.gz", "sub/private.log.gz"]
        .iter()
        .map(|f| std::fs::metadata(log.join(f)).unwrap().len())
        .sum();
    assert_eq!(
        out.stdout,
        format!(
            "{SVC}: compressed 2, deleted 0, {left} bytes left in {}\n",
            log.display()
        )
    );
    assert_eq!(tree_state(&outside), before, "something outside changed");
    for (file, mode) in [("sub/old.log", 0o640), ("sub/private.log", 0o600)] {
        assert!(!log.join(file).exists(), "{file} left");
        let meta = std::fs::symlink_metadata(log.join(format!("{file}.gz"))).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{file}: mode");
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{file}: owner");
    }
    assert!(
        std::fs::symlink_metadata(log.join("evil"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn clean_logs_refuses_a_log_dir_the_account_swapped_for_a_link() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "swapper",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let runtime = runtime_dir(&sandbox, SVC);
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim.log"), "not the service's\n").unwrap();
    age(&outside.join("victim.log"), 3);
    std::fs::remove_dir_all(runtime.join("log")).unwrap();
    std::os::unix::fs::symlink(&outside, runtime.join("log")).unwrap();
    give_to_account(&runtime, 0o755);
    let before = tree_state(&outside);

    let out = run(sandbox.copkg().args(["clean-logs", SVC]));
    assert_eq!(tree_state(&outside), before, "something outside changed");
    assert_ne!(out.code, 0, "{out:?}");
    // Refused before any hook runs: log/ is opened by descriptor, no link followed.
    assert_eq!(
        out.stderr,
        format!(
            "error: refusing {}/log: it is a symlink\n",
            runtime.display()
        )
    );
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn clean_logs_hook_results_are_validated() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "badlogs",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { clean_logs = function(ctx, opts) return { compressed = 1, removed = 2 } end }\n",
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--site").arg(&site).arg("clean-logs"));
    assert_eq!(out.code, 8, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot clean the logs of {SVC}\n  caused by: hook `clean_logs` returned an invalid result: unknown field `removed`\n"
        )
    );
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

fn example_site(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packages-example/sites")
        .join(name)
}

#[test]
fn example_site_comoyo_renders_config_into_hierarchical_dirs() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "app",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let site = example_site("comoyo.lua");
    let out = run(sandbox.copkg().arg("--site").arg(&site).args([
        "start",
        "--user",
        "root",
        &package,
        "2.idee.prod.trd",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    let runtime = sandbox.path().join("runtime/trd/prod/idee/2");
    assert_eq!(
        std::fs::read_to_string(runtime.join("etc/instance.properties")).unwrap(),
        format!("service=idee\ninstance=2\nuser=prod\ncell=trd\npackage={package}\n")
    );
    assert_eq!(
        run(sandbox
            .copkg()
            .arg("--site")
            .arg(&site)
            .args(["stop", "2.idee.prod.trd"]))
        .code,
        0
    );
}

#[test]
fn example_site_nexus_raw_changes_repository_and_install_layout() {
    let sandbox = Sandbox::new();
    let site = example_site("nexus-raw.lua");
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
    assert!(sandbox.repo().join("hello/1.0.0/hello-1.0.0.tgz").is_file());
    let server = StaticServer::start(&sandbox.repo());
    let out = run(sandbox.copkg().arg("--site").arg(&site).args([
        "--repo",
        &server.url,
        "install",
        COORD,
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.root().join("hello/1.0.0/bin/hello").is_file());
}

#[test]
fn example_site_keep_logs_archives_logs_before_cleanup() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "chatty",
        &[(
            "script.d/start.lua",
            &lua_service("echo hi >> log/app.log; exec sleep 60"),
            0o644,
        )],
    );
    let site = example_site("keep-logs.lua");
    let archive = sandbox.path().join("archive");
    let copkg = || {
        let mut cmd = sandbox.copkg();
        cmd.env("COPKG_LOG_ARCHIVE", &archive)
            .arg("--site")
            .arg(&site);
        cmd
    };
    assert_eq!(
        run(copkg().args(["start", "--user", "root", &package, SVC])).code,
        0
    );
    let log = runtime_dir(&sandbox, SVC).join("log/app.log");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t == "hi\n")
    }));
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);
    // The account links a file of root's into its log dir: not archived.
    let log_dir = runtime_dir(&sandbox, SVC).join("log");
    let secret = sandbox.path().join("secret");
    std::fs::write(&secret, "root's\n").unwrap();
    std::fs::hard_link(&secret, log_dir.join("shadow")).unwrap();
    give_to_account(&log_dir, 0o755);
    let out = run(copkg().args(["cleanup", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "keep-logs: not archived: copkg.read_file: refusing {}: it has 2 hard links in a directory other users can write (owned by uid {NOBODY}), so it may be a file from elsewhere linked in\n",
            log_dir.join("shadow").display()
        )
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(archive.join(SVC))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read_to_string(kept[0].join("app.log")).unwrap(),
        "hi\n"
    );
    assert!(kept[0].join("stopped-at").is_file());
    assert!(!kept[0].join("shadow").exists(), "root's file archived");
}

#[test]
fn example_site_keep_logs_never_archives_through_a_planted_link() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "chatty",
        &[(
            "script.d/start.lua",
            &lua_service("echo hi >> log/app.log; exec sleep 60"),
            0o644,
        )],
    );
    // As /var/tmp: anyone may create the archive dir first, as a link.
    let shared = sandbox.path().join("shared-tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let outside = sandbox.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, shared.join("copkg-logs")).unwrap();
    let site = example_site("keep-logs.lua");
    let copkg = || {
        let mut cmd = sandbox.copkg();
        cmd.env("COPKG_LOG_ARCHIVE", shared.join("copkg-logs"))
            .arg("--site")
            .arg(&site);
        cmd
    };
    assert_eq!(
        run(copkg().args(["start", "--user", "root", &package, SVC])).code,
        0
    );
    let runtime = runtime_dir(&sandbox, SVC);
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(runtime.join("log/app.log")).is_ok_and(|t| t == "hi\n")
    }));
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);
    let out = run(copkg().args(["cleanup", SVC]));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "refusing {}: it is a symlink in a directory other users can write (mode 1777); not followed",
            shared.join("copkg-logs").display()
        )),
        "{}",
        out.stderr
    );
    assert!(tree_state(&outside).is_empty(), "archived through the link");
    assert!(
        runtime.join("log/app.log").is_file(),
        "logs gone unarchived"
    );
}

#[test]
fn start_script_inherits_no_descriptors_from_copkg() {
    let sandbox = Sandbox::new();
    let start_py = r#"#!/usr/bin/env python3
import os, subprocess, sys
runtime = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--runtime-dir=")][0]
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
with open(os.path.join(runtime, "data", "fds"), "w") as f:
    f.write(" ".join(map(str, fds)))
p = subprocess.Popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(os.path.join(runtime, "run", "start.pid"), "w") as f:
    f.write(f"{p.pid}\n")
"#;
    let package = install_package(&sandbox, "fds", &[("script.d/start.py", start_py, 0o755)]);
    let mut copkg = sandbox.copkg();
    copkg.args(["start", "--user", "root", &package, SVC]);
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(r#"exec 7</etc/hostname; exec "$0" "$@""#)
        .arg(copkg.get_program())
        .args(copkg.get_args());
    for (key, value) in copkg.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    let out = shell.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // fd 3 is the one listdir itself opened; fd 7 must not be there.
    let fds = std::fs::read_to_string(runtime_dir(&sandbox, SVC).join("data/fds")).unwrap();
    assert_eq!(fds, "0 1 2 3");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn f1_a_record_forged_in_the_runtime_dir_is_never_trusted() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "f1",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let service_pid = recorded_pid(&sandbox, SVC);
    // The service's account writes what the old copkg kept in run/: a record
    // naming an unrelated process and a package dir whose stop.py it wrote.
    let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
    let evil = sandbox.path().join("evil");
    let marker = sandbox.path().join("stop.py-ran");
    std::fs::create_dir_all(evil.join("script.d")).unwrap();
    std::fs::write(
        evil.join("script.d/stop.py"),
        format!("open('{}', 'w').write('ran as root')\n", marker.display()),
    )
    .unwrap();
    let run_dir = runtime_dir(&sandbox, SVC).join("run");
    let forged = serde_json::json!({
        "package": "com.example:evil:1", "package_dir": evil, "service": SVC, "args": [],
        "started_at": 1, "stopped_at": null,
        "processes": [{"pid": unrelated.id(), "start_time": 1, "pgrp": unrelated.id()}],
    });
    std::fs::write(run_dir.join("copkg.json"), forged.to_string()).unwrap();
    std::fs::write(run_dir.join("copkg.lock"), "").unwrap();

    let out = run(sandbox.copkg().args(["status", SVC]));
    assert_eq!(
        out.stdout,
        format!("{SVC}\trunning\t{service_pid}\t{package}\n")
    );
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(
        service_pid
    )));
    assert!(!marker.exists(), "the forged stop.py ran");
    assert!(
        unrelated.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
    // copkg's own state is beside the runtime dirs, writable by its user only.
    let state = sandbox.path().join("runtime/.copkg");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn g6_two_services_mapped_to_one_runtime_dir_are_refused_naming_both() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "g6",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { runtime_path = function(svc)\n  if svc.instance == '3' then return 'shared/inner' end\n  return 'shared'\nend }\n",
    )
    .unwrap();
    let with_site = |args: &[&str]| run(sandbox.copkg().arg("--site").arg(&site).args(args));
    let out = with_site(&["start", "--user", "root", &package, "1.a.test.local"]);
    assert_eq!(out.code, 0, "{out:?}");
    let pid = recorded_pid(&sandbox, "1.a.test.local");
    for other in ["2.b.test.local", "3.c.test.local"] {
        let out = with_site(&["start", "--user", "root", &package, other]);
        assert_eq!(out.code, 2, "{out:?}");
        let dir = if other.starts_with('3') {
            "runtime/shared/inner"
        } else {
            "runtime/shared"
        };
        assert_eq!(
            out.stderr,
            format!(
                "error: {other} and 1.a.test.local both map to the runtime dir {}; give each service its own (runtime_path)\n",
                sandbox.path().join(dir).display()
            )
        );
        assert!(!record_path(&sandbox, other).exists());
    }
    // The refused one cannot act on the other's dir either.
    for verb in ["stop", "cleanup"] {
        let out = with_site(&[verb, "2.b.test.local"]);
        assert_eq!(out.code, 2, "{verb}: {out:?}");
    }
    assert!(pid_alive(pid));
    assert!(sandbox.path().join("runtime/shared/data").is_dir());
    assert_eq!(with_site(&["stop", "1.a.test.local"]).code, 0);
}

#[test]
fn runtime_path_into_the_state_dir_is_refused() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "state",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { runtime_path = function(svc) return '.copkg/services' end }\n",
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .args(["start", "--user", "root", &package, SVC]));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: runtime_path of {SVC} is `.copkg/services`: `.copkg` at the top of the runtime root is copkg's own state dir\n"
        )
    );
}

#[test]
fn unknown_services_are_no_such_service_with_suggestions() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "names",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    for verb in ["status", "stop", "clean-logs"] {
        let out = run(sandbox.copkg().args([verb, "1.svc.tset.local"]));
        assert_eq!(out.code, 11, "{verb}: {out:?}");
        assert_eq!(
            out.stderr,
            format!("error: no such service: 1.svc.tset.local (did you mean {SVC}?)\n"),
            "{verb}"
        );
    }
    let out = run(sandbox.copkg().args(["stop", "9.zzz.other.cell"]));
    assert_eq!(out.stderr, "error: no such service: 9.zzz.other.cell\n");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn one_corrupt_record_does_not_blind_status_or_clean_logs() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "corrupt",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, "1.a.test.local", &[]).code, 0);
    assert_eq!(start(&sandbox, &package, "2.b.test.local", &[]).code, 0);
    std::fs::write(record_path(&sandbox, "1.a.test.local"), "{not json").unwrap();
    let out = run(sandbox.copkg().arg("status"));
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[0].starts_with("1.a.test.local\tbad-record\t-\t"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("2.b.test.local\trunning\t"),
        "{}",
        lines[1]
    );
    let pid = recorded_pid(&sandbox, "2.b.test.local");
    assert_eq!(
        run(sandbox.copkg().args(["stop", "2.b.test.local"])).code,
        0
    );
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
}

/// Makes `runtime/<service>` with the usual subdirs, as a service's account
/// could leave it, and returns it.
fn planted_runtime(sandbox: &Sandbox, service: &str) -> PathBuf {
    let dir = runtime_dir(sandbox, service);
    for sub in ["log", "etc", "console", "data", "run"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

#[test]
fn f2_links_planted_in_the_runtime_dir_are_never_followed() {
    let sandbox = Sandbox::new();
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("start.pid"), "1\n").unwrap();
    let lua = install_package(
        &sandbox,
        "links",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );

    // run/ swapped for a link to another dir: start refuses it and touches
    // nothing there (it would clear start.pid and write through it).
    let dir = planted_runtime(&sandbox, "1.a.test.local");
    std::fs::remove_dir(dir.join("run")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("run")).unwrap();
    let out = start(&sandbox, &lua, "1.a.test.local", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("refusing {}", dir.join("run").display())),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("start.pid")).unwrap(),
        "1\n"
    );

    // console/stdout.log linked to a path outside: the service's output is
    // not appended there, and the file is not created.
    let dir = planted_runtime(&sandbox, "2.b.test.local");
    let target = outside.join("created-by-root.log");
    std::os::unix::fs::symlink(&target, dir.join("console/stdout.log")).unwrap();
    let out = start(&sandbox, &lua, "2.b.test.local", &[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(!target.exists(), "root created a file through a link");
    // The failed start is in the registry, as failed.
    assert!(record(&sandbox, "2.b.test.local")["failed"].is_string());

    // The runtime dir itself a link (to another service's dir): refused.
    let other = planted_runtime(&sandbox, "3.c.test.local");
    std::os::unix::fs::symlink(&other, runtime_dir(&sandbox, "4.d.test.local")).unwrap();
    let out = start(&sandbox, &lua, "4.d.test.local", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(std::fs::read_dir(other.join("run")).unwrap().count(), 0);
}

#[test]
fn f2_f4_a_failed_start_reads_no_link_and_no_fifo_in_console() {
    let sandbox = Sandbox::new();
    let secret = sandbox.path().join("secret");
    std::fs::write(&secret, "TOPSECRET\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A start script that writes no pid file, after planting a link to a
    // root-only file and a FIFO in console/ (as the account could).
    let script = format!(
        "#!/bin/sh\nln -s {} \"$COPKG_RUNTIME_DIR/console/leak.log\"\nmkfifo \"$COPKG_RUNTIME_DIR/console/hang.log\"\necho 'real output' > \"$COPKG_RUNTIME_DIR/console/stdout.log\"\n",
        secret.display()
    );
    let package = install_package(&sandbox, "leak", &[("script.d/start.py", &script, 0o755)]);
    let started = Instant::now();
    let out = start(&sandbox, &package, SVC, &[]);
    assert!(started.elapsed() < Duration::from_secs(30), "start hung");
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("real output"), "{}", out.stderr);
    assert!(!out.stderr.contains("TOPSECRET"), "{}", out.stderr);
}

#[test]
fn f3_cleanup_never_follows_a_link_out_of_the_runtime_dir() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "clean",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let pid = recorded_pid(&sandbox, SVC);
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(outside.join("deep")).unwrap();
    std::fs::write(outside.join("deep/keep"), "keep").unwrap();
    let dir = runtime_dir(&sandbox, SVC);
    std::os::unix::fs::symlink(&outside, dir.join("log/archive")).unwrap();
    std::os::unix::fs::symlink(outside.join("deep/keep"), dir.join("data/keep")).unwrap();
    let out = run(sandbox.copkg().args(["cleanup", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!dir.exists());
    assert_eq!(
        std::fs::read_to_string(outside.join("deep/keep")).unwrap(),
        "keep"
    );
    assert!(!record_path(&sandbox, SVC).exists());
    let out = run(sandbox.copkg().args(["status", SVC]));
    assert_eq!(out.code, 11, "{out:?}");
}

#[test]
fn f5_f7_clean_logs_of_an_accounts_dir_runs_as_the_account_with_a_clean_environment() {
    let sandbox = Sandbox::new();
    // The account must reach its runtime dir through the sandbox.
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let package = install_package(
        &sandbox,
        "acct",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let log = runtime_dir(&sandbox, SVC).join("log");
    std::fs::write(log.join("old.log"), "x".repeat(1000)).unwrap();
    let when = std::time::SystemTime::now() - Duration::from_secs(3 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(log.join("old.log"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    let nogroup = Some(nix::unistd::Gid::from_raw(65534));
    for path in [log.clone(), log.join("old.log")] {
        nix::unistd::chown(&path, nobody, nogroup).unwrap();
    }
    // The site's hook says who it runs as and what it sees of copkg's environment.
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        r#"local default = require("copkg.policy")
return {
  clean_logs = function(ctx, options)
    local id = io.popen("id -u"):read("l")
    local seen = id .. " " .. tostring(os.getenv("COPKG_REPO")) .. " " .. tostring(os.getenv("HOME"))
    copkg.write_file(ctx.runtime_dir .. "/log/seen", seen)
    return default.clean_logs(ctx, options)
  end,
}
"#,
    )
    .unwrap();
    std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(sandbox
        .copkg()
        .env("COPKG_REPO", "https://user:secret@repo.invalid/")
        .arg("--site")
        .arg(&site)
        .args(["clean-logs", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("{SVC}: compressed 1, deleted 0,")),
        "{}",
        out.stdout
    );
    let seen = std::fs::read_to_string(log.join("seen")).unwrap();
    assert!(seen.starts_with("65534 nil "), "{seen}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(log.join("old.log.gz")).unwrap().uid(),
        65534
    );
    assert!(!log.join("old.log").exists());
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn f7_scripts_and_services_get_a_clean_environment() {
    let sandbox = Sandbox::new();
    let start_py = "#!/bin/sh\nenv | sort > \"$COPKG_RUNTIME_DIR/data/script.env\"\nsh -c 'env | sort > data/service.env; exec sleep 60' </dev/null >/dev/null 2>&1 &\necho $! > \"$COPKG_RUNTIME_DIR/run/start.pid\"\n";
    let package = install_package(&sandbox, "envs", &[("script.d/start.py", start_py, 0o755)]);
    let out = run(sandbox
        .copkg()
        .env("COPKG_REPO", "https://deploy:s3cret@repo.example/")
        .env("AWS_SECRET_ACCESS_KEY", "hunter2")
        .args(["start", "--user", "root", &package, SVC, "--", "--flag"]));
    assert_eq!(out.code, 0, "{out:?}");
    let data = runtime_dir(&sandbox, SVC).join("data");
    assert!(wait_until(Duration::from_secs(5), || data
        .join("service.env")
        .is_file()));
    std::thread::sleep(Duration::from_millis(100));
    for file in ["script.env", "service.env"] {
        let text = std::fs::read_to_string(data.join(file)).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        assert!(
            !text.contains("s3cret") && !text.contains("hunter2"),
            "{file}: {text}"
        );
        assert!(
            text.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
            "{file}: {text}"
        );
        for name in [
            "COPKG_RUNTIME_DIR",
            "COPKG_COORDINATE",
            "COPKG_PACKAGE",
            "HOME",
            "LANG",
        ] {
            assert!(names.contains(&name), "{file} lacks {name}: {text}");
        }
        for name in names {
            assert!(
                [
                    "COPKG_RUNTIME_DIR",
                    "COPKG_PACKAGE_DIR",
                    "COPKG_COORDINATE",
                    "COPKG_PACKAGE",
                    "COPKG_PLATFORM",
                    "PATH",
                    "LANG",
                    "HOME",
                    "USER",
                    "LOGNAME",
                    "PWD",
                    "SHLVL",
                    "_",
                    "OLDPWD",
                ]
                .contains(&name),
                "{file}: unexpected {name}"
            );
        }
    }
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn restart_starts_the_recorded_package_with_its_arguments_again() {
    let sandbox = Sandbox::new();
    let package = install_example(&sandbox, "webapp");
    let port = free_port();
    let service = "1.web.prod.trd";
    let arg = format!("--port={port}");
    assert_eq!(start(&sandbox, &package, service, &[&arg]).code, 0);
    let first = recorded_pid(&sandbox, service);
    // The same start again changes nothing; another argument is refused.
    let out = start(&sandbox, &package, service, &[&arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("{service} already runs {package} (pid {first})\n")
    );
    let out = start(&sandbox, &package, service, &["--port=1"]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.stderr.contains("use `copkg restart` for new arguments"),
        "{}",
        out.stderr
    );

    let out = run(sandbox.copkg().args(["restart", service]));
    assert_eq!(out.code, 0, "{out:?}");
    let second = recorded_pid(&sandbox, service);
    assert_ne!(first, second);
    assert!(!pid_alive(first));
    assert!(
        out.stdout
            .starts_with(&format!("started {service} (pid {second}) from {package}")),
        "{}",
        out.stdout
    );
    wait_for_port(port);
    assert!(
        http_get(port).is_some(),
        "the restarted service does not answer on its port"
    );
    assert_eq!(record(&sandbox, service)["args"][0], arg.as_str());
    let out = run(sandbox.copkg().args(["restart", "9.nope.prod.trd"]));
    assert_eq!(out.code, 11, "{out:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", service])).code, 0);
    // A stopped service restarts too.
    let out = run(sandbox.copkg().args(["restart", service]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", service])).code, 0);
}

#[test]
fn g8_a_start_lua_that_loops_and_a_stop_hook_calling_os_exit_fail_clearly() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "loops",
        &[("script.d/start.lua", "while true do end\n", 0o644)],
    );
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"scriptTimeoutSecs": 1}"#).unwrap();
    let started = Instant::now();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["start", "--user", "root", &package, SVC]));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr
            .contains("script.d/start.lua exceeded its time limit of 1 s"),
        "{}",
        out.stderr
    );

    // os.exit(true) in a stop hook used to make a failed stop exit 0.
    let package = install_package(
        &sandbox,
        "exits",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, "2.svc.test.local", &[]).code, 0);
    let pid = recorded_pid(&sandbox, "2.svc.test.local");
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { before_stop = function(ctx) os.exit(true) end }\n",
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .args(["stop", "2.svc.test.local"]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains("hook `before_stop` called os.exit"),
        "{}",
        out.stderr
    );
    assert!(pid_alive(pid));
    assert_eq!(
        run(sandbox.copkg().args(["stop", "2.svc.test.local"])).code,
        0
    );
}

#[test]
fn g1_g5_whatever_a_start_script_launches_is_tracked_and_stopped() {
    let sandbox = Sandbox::new();
    // A daemon that double-forks into a new session and writes no pid file,
    // plus a pool of 300 workers.
    let marker = format!("60.{}1", std::process::id());
    let script = format!(
        "#!/bin/sh\nsetsid sh -c 'sh -c \"exec sleep {marker}\" & exit 0' </dev/null >/dev/null 2>&1 &\n\
         i=0; while [ $i -lt 300 ]; do (exec sleep {marker}) </dev/null >/dev/null 2>&1 & i=$((i+1)); done\nsleep 0.2\n"
    );
    let package = install_package(&sandbox, "g1", &[("script.d/start.py", &script, 0o755)]);
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(wait_until(Duration::from_secs(5), || pids_with(&marker)
        .len()
        == 301));
    let out = run(sandbox.copkg().args(["--json", "status", SVC]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["state"], "running");
    assert_eq!(
        status["pids"].as_array().unwrap().len(),
        301,
        "{}",
        out.stdout
    );
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
        "left: {:?}",
        pids_with(&marker)
    );
}

#[test]
fn g2_a_failed_start_ends_everything_it_launched() {
    let sandbox = Sandbox::new();
    let marker = format!("60.{}2", std::process::id());
    let failing = format!(
        "#!/bin/sh\nsetsid sh -c 'exec sleep {marker}' </dev/null >/dev/null 2>&1 &\necho started a daemon, then failed\nexit 3\n"
    );
    let package = install_package(&sandbox, "g2", &[("script.d/start.py", &failing, 0o755)]);
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains("failed with exit code 3"),
        "{}",
        out.stderr
    );
    assert!(
        wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
        "left running"
    );
    let out = run(sandbox.copkg().args(["status", SVC]));
    assert!(
        out.stdout.starts_with(&format!("{SVC}\tfailed\t-\t")),
        "{}",
        out.stdout
    );

    // start.lua that spawns and then raises: the same.
    let lua = format!(
        "local ctx = ...\ncopkg.spawn({{ program = '/bin/sh', args = {{ '-c', 'exec sleep {marker}' }}, cwd = ctx.runtime_dir, stdout = '/dev/null', stderr = '/dev/null' }})\nerror('configuration missing')\n"
    );
    let package = install_package(&sandbox, "g2lua", &[("script.d/start.lua", &lua, 0o644)]);
    let out = start(&sandbox, &package, "2.svc.test.local", &[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains("configuration missing"),
        "{}",
        out.stderr
    );
    assert!(
        wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
        "left running"
    );
}

#[test]
fn g3_copkg_killed_or_interrupted_during_start_leaves_nothing_unfound() {
    let sandbox = Sandbox::new();
    let marker = format!("60.{}3", std::process::id());
    let slow = format!(
        "#!/bin/sh\nsetsid sh -c 'exec sleep {marker}' </dev/null >/dev/null 2>&1 &\nsleep 30\n"
    );
    let package = install_package(&sandbox, "g3", &[("script.d/start.py", &slow, 0o755)]);
    // With a cgroup, and without one (copkg then the script's subreaper).
    let no_cgroups = no_cgroups_config(&sandbox);
    for (signal, code, config) in [
        (nix::sys::signal::Signal::SIGINT, Some(130), None),
        (nix::sys::signal::Signal::SIGTERM, Some(143), None),
        (nix::sys::signal::Signal::SIGKILL, None, None),
        (
            nix::sys::signal::Signal::SIGINT,
            Some(130),
            Some(&no_cgroups),
        ),
        (
            nix::sys::signal::Signal::SIGTERM,
            Some(143),
            Some(&no_cgroups),
        ),
    ] {
        let child = copkg_with(&sandbox, config)
            .args(["start", "--user", "root", &package, SVC])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(wait_until(Duration::from_secs(10), || pids_with(&marker)
            .len()
            == 1));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), code, "{signal:?} {config:?}: {out:?}");
        if code.is_some() {
            // Interrupted: copkg ended what the start launched itself.
            assert!(
                wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
                "{signal:?} {config:?}: left running"
            );
        } else {
            // Killed outright: the next status sees the leftovers, and stop ends them.
            let out = run(sandbox.copkg().args(["status", SVC]));
            assert!(
                out.stdout.starts_with(&format!("{SVC}\trunning\t")),
                "{}",
                out.stdout
            );
            let out = run(sandbox.copkg().args(["stop", SVC]));
            assert_eq!(out.code, 0, "{out:?}");
            assert!(
                wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
                "left running"
            );
        }
        let out = run(sandbox.copkg().args(["status", SVC]));
        assert!(
            !out.stdout.contains("\trunning\t"),
            "{signal:?}: {}",
            out.stdout
        );
    }
}

/// A package whose start.py starts a daemon that never listens anywhere.
fn install_never_ready(sandbox: &Sandbox, name: &str, version: &str) -> String {
    let script = "#!/bin/sh\nsh -c 'exec sleep 60' </dev/null >/dev/null 2>&1 &\necho $! > \"$COPKG_RUNTIME_DIR/run/start.pid\"\necho 'listening soon' > \"$COPKG_RUNTIME_DIR/console/stdout.log\"\n";
    let dir = sandbox.path().join("src").join(format!("{name}-{version}"));
    std::fs::create_dir_all(dir.join("script.d")).unwrap();
    std::fs::write(dir.join("script.d/start.py"), script).unwrap();
    std::fs::set_permissions(
        dir.join("script.d/start.py"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let coordinate = format!("com.example:{name}:{version}");
    sandbox.pack(&dir, &coordinate);
    coordinate
}

#[test]
fn readiness_a_start_that_never_becomes_ready_is_stopped_with_exit_14() {
    let sandbox = Sandbox::new();
    let package = install_never_ready(&sandbox, "deaf", "1.0.0");
    let port = free_port();
    let started = Instant::now();
    let out = run(sandbox.copkg().arg("--repo").arg(sandbox.repo()).args([
        "start",
        "--user",
        "root",
        "--install",
        "--ready",
        &format!("tcp:127.0.0.1:{port}"),
        "--ready-timeout",
        "1",
        &package,
        SVC,
    ]));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(out.code, 14, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: {SVC} did not become ready (tcp:127.0.0.1:{port}): not ready after 1 s: 127.0.0.1:{port}:"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("listening soon"),
        "console tail: {}",
        out.stderr
    );
    let out = run(sandbox.copkg().args(["--json", "status", SVC]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["state"], "failed", "{}", out.stdout);

    // A site's ready hook is the check when --ready names none.
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        format!("return {{ ready = function(ctx) return 'tcp:127.0.0.1:{port}' end }}\n"),
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--site").arg(&site).args([
        "start",
        "--user",
        "root",
        "--ready-timeout",
        "1",
        &package,
        SVC,
    ]));
    assert_eq!(out.code, 14, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: {SVC} did not become ready (tcp:127.0.0.1:{port})"
        )),
        "{}",
        out.stderr
    );

    // The same package with a check that passes (exec in the package dir) starts.
    let out = run(sandbox.copkg().args([
        "start",
        "--user",
        "root",
        "--ready",
        "exec:/bin/true",
        &package,
        SVC,
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

#[test]
fn upgrade_moves_to_the_new_version_or_rolls_back_to_the_old_one() {
    let sandbox = Sandbox::new();
    let v1 = install_example(&sandbox, "webapp");
    sandbox.pack(&example_dir("webapp"), "com.example:webapp:2.0.0");
    let broken = install_never_ready(&sandbox, "webapp", "3.0.0");
    let port = free_port();
    let service = "1.web.prod.trd";
    let ready = format!("tcp:127.0.0.1:{port}");
    let copkg = |args: &[&str]| run(sandbox.copkg().arg("--repo").arg(sandbox.repo()).args(args));
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return {\n  before_upgrade = function(ctx) copkg.write_file(ctx.runtime_dir .. '/data/snapshot', ctx.package) end,\n  after_upgrade = function(ctx) copkg.write_file(ctx.runtime_dir .. '/data/upgraded', ctx.package) end,\n}\n",
    )
    .unwrap();
    assert_eq!(
        copkg(&[
            "start",
            "--ready",
            &ready,
            &v1,
            service,
            "--",
            &format!("--port={port}")
        ])
        .code,
        0
    );

    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("--site")
        .arg(&site)
        .args([
            "--json",
            "upgrade",
            "--ready",
            &ready,
            service,
            "com.example:webapp:2.0.0",
        ]));
    assert_eq!(out.code, 0, "{out:?}");
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (report["from"].as_str(), report["to"].as_str()),
        (Some(v1.as_str()), Some("com.example:webapp:2.0.0"))
    );
    assert!(report["downtime_ms"].as_u64().is_some(), "{report}");
    assert_eq!(report["steps"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(
        record(&sandbox, service)["package"],
        "com.example:webapp:2.0.0"
    );
    assert_eq!(
        record(&sandbox, service)["args"][0],
        format!("--port={port}")
    );
    let data = runtime_dir(&sandbox, service).join("data");
    assert_eq!(std::fs::read_to_string(data.join("snapshot")).unwrap(), v1);
    assert_eq!(
        std::fs::read_to_string(data.join("upgraded")).unwrap(),
        "com.example:webapp:2.0.0"
    );
    assert!(http_get(port).is_some());

    // A version that never becomes ready: the old one runs again, exit 12.
    let out = copkg(&[
        "upgrade",
        "--ready",
        &ready,
        "--ready-timeout",
        "1",
        service,
        &broken,
    ]);
    assert_eq!(out.code, 12, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: upgrade of {service} to {broken} failed; rolled back to com.example:webapp:2.0.0, which runs again\n  caused by: {service} did not become ready"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        record(&sandbox, service)["package"],
        "com.example:webapp:2.0.0"
    );
    wait_for_port(port);
    assert!(
        http_get(port).is_some(),
        "the old version does not answer again"
    );
    assert_eq!(copkg(&["stop", service]).code, 0);

    // An upgrade of an unknown service, or to a package no repository has.
    assert_eq!(
        copkg(&["upgrade", "9.nope.prod.trd", "com.example:webapp:2.0.0"]).code,
        11
    );
    assert_eq!(
        copkg(&["upgrade", service, "com.example:webapp:9.9.9"]).code,
        3
    );
}

#[test]
fn upgrade_whose_rollback_fails_too_exits_15_and_leaves_the_service_stopped() {
    let sandbox = Sandbox::new();
    // Starts once; a second start of it fails (its data says it ran).
    let once = "#!/bin/sh\nif [ -e \"$COPKG_RUNTIME_DIR/data/ran\" ]; then echo 'refusing to start twice' >&2; exit 1; fi\ntouch \"$COPKG_RUNTIME_DIR/data/ran\"\nsh -c 'exec sleep 60' </dev/null >/dev/null 2>&1 &\necho $! > \"$COPKG_RUNTIME_DIR/run/start.pid\"\n";
    let dir = sandbox.path().join("src/once");
    std::fs::create_dir_all(dir.join("script.d")).unwrap();
    std::fs::write(dir.join("script.d/start.py"), once).unwrap();
    std::fs::set_permissions(
        dir.join("script.d/start.py"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    sandbox.pack_and_install(&dir, "com.example:once:1.0.0");
    let broken = install_never_ready(&sandbox, "once", "2.0.0");
    assert_eq!(start(&sandbox, "com.example:once:1.0.0", SVC, &[]).code, 0);
    let pid = recorded_pid(&sandbox, SVC);
    let out = run(sandbox.copkg().arg("--repo").arg(sandbox.repo()).args([
        "upgrade",
        "--ready",
        "exec:/bin/false",
        "--ready-timeout",
        "0.5",
        SVC,
        &broken,
    ]));
    assert_eq!(out.code, 15, "{out:?}");
    assert!(
        out.stderr
            .contains("did not start again either; the service is stopped"),
        "{}",
        out.stderr
    );
    assert!(!pid_alive(pid));
    let out = run(sandbox.copkg().args(["--json", "status", SVC]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_ne!(status["state"], "running", "{}", out.stdout);
}

#[test]
fn g7_stop_and_status_work_while_the_site_script_is_broken() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "g7",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { runtime_path = require('copkg.policy').runtime_path_hierarchical }\n",
    )
    .unwrap();
    let with_site = |args: &[&str]| run(sandbox.copkg().arg("--site").arg(&site).args(args));
    assert_eq!(
        with_site(&["start", "--user", "root", &package, SVC]).code,
        0
    );
    let pid = recorded_pid(&sandbox, SVC);
    std::fs::write(
        &site,
        "return { runtime_path = function(svc) return svc..  end\n",
    )
    .unwrap();
    let out = with_site(&["status", SVC]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("{SVC}\trunning\t{pid}\t")),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.starts_with("warning: site script refused: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the site's hooks are skipped"),
        "{}",
        out.stderr
    );
    let out = with_site(&["stop", SVC]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("stopped {SVC}\n").as_str()),
        "{out:?}"
    );
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    // Commands that would run the site's policy refuse it.
    assert_eq!(
        with_site(&["start", "--user", "root", &package, SVC]).code,
        2
    );
}

#[test]
fn a_missing_interpreter_is_named_and_verbose_shows_the_script_output_in_order() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "nointerp",
        &[(
            "script.d/start.py",
            "#!/nonexistent/python9\nprint('x')\n",
            0o755,
        )],
    );
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains(
            "cannot run: its interpreter `/nonexistent/python9` (from its #! line) is missing"
        ),
        "{}",
        out.stderr
    );
    let chatty = "#!/bin/sh\necho one\necho two >&2\necho three\nsh -c 'exec sleep 60' </dev/null >/dev/null 2>&1 &\necho $! > \"$COPKG_RUNTIME_DIR/run/start.pid\"\n";
    let package = install_package(&sandbox, "chatty", &[("script.d/start.py", chatty, 0o755)]);
    let out = run(sandbox.copkg().args([
        "-v",
        "start",
        "--user",
        "root",
        &package,
        "2.svc.test.local",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("--- start script output ---\none\ntwo\nthree\n"),
        "{}",
        out.stderr
    );
    assert_eq!(
        run(sandbox.copkg().args(["stop", "2.svc.test.local"])).code,
        0
    );
}

/// The uid of an unprivileged account the test makes (useradd) if missing.
fn service_account(name: &str) -> u32 {
    let exists = Command::new("id").arg("-u").arg(name).output().unwrap();
    if !exists.status.success() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .expect("useradd is needed for the account tests");
        assert!(made.success(), "useradd {name} failed");
    }
    let out = Command::new("id").arg("-u").arg(name).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn services_run_as_their_own_account_with_their_runtime_dir() {
    use std::os::unix::fs::MetadataExt;
    let uid = service_account("copkg-test-svc");
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = "#!/bin/sh\nid -u > \"$COPKG_RUNTIME_DIR/data/script-uid\"\necho \"$HOME $USER\" > \"$COPKG_RUNTIME_DIR/data/script-env\"\nsh -c 'exec sleep 60' </dev/null >/dev/null 2>&1 &\necho $! > \"$COPKG_RUNTIME_DIR/run/start.pid\"\n";
    let package = install_package(&sandbox, "acct", &[("script.d/start.py", script, 0o755)]);
    let out = run(sandbox
        .copkg()
        .args(["start", "--user", "copkg-test-svc", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("runs as root"), "{}", out.stderr);
    let runtime = runtime_dir(&sandbox, SVC);
    for dir in ["", "log", "etc", "console", "data", "run"] {
        assert_eq!(
            std::fs::metadata(runtime.join(dir)).unwrap().uid(),
            uid,
            "{dir}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(runtime.join("data/script-uid"))
            .unwrap()
            .trim(),
        uid.to_string()
    );
    assert!(
        std::fs::read_to_string(runtime.join("data/script-env"))
            .unwrap()
            .ends_with(" copkg-test-svc\n")
    );
    let pid = recorded_pid(&sandbox, SVC);
    assert_eq!(uid_of(pid), uid);
    let out = run(sandbox.copkg().args(["--json", "status", SVC]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["user"], "copkg-test-svc");
    // A restart keeps the account.
    assert_eq!(run(sandbox.copkg().args(["restart", SVC])).code, 0);
    assert_eq!(uid_of(recorded_pid(&sandbox, SVC)), uid);
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);

    // Without an account, as root: it runs as root, and start says so.
    let out = run(sandbox
        .copkg()
        .args(["start", &package, "2.svc.test.local"]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        "warning: 2.svc.test.local runs as root (name an account with --user or defaultUser)\n"
    );
    assert_eq!(
        run(sandbox.copkg().args(["stop", "2.svc.test.local"])).code,
        0
    );
    // defaultUser names one; an unknown account is a usage error.
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"defaultUser": "copkg-test-svc"}"#).unwrap();
    let out = run(sandbox.copkg().arg("--config").arg(&config).args([
        "start",
        &package,
        "3.svc.test.local",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(uid_of(recorded_pid(&sandbox, "3.svc.test.local")), uid);
    assert_eq!(
        run(sandbox.copkg().args(["stop", "3.svc.test.local"])).code,
        0
    );
    let out = run(sandbox.copkg().args([
        "start",
        "--user",
        "no-such-user-here",
        &package,
        "4.svc.test.local",
    ]));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr, "error: no such user `no-such-user-here`\n");
}

#[test]
fn reinstall_repairs_and_replaces_atomically_and_spares_running_services() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("src/rein");
    std::fs::create_dir_all(dir.join("script.d")).unwrap();
    std::fs::write(dir.join("script.d/start.lua"), lua_service("exec sleep 60")).unwrap();
    std::fs::write(dir.join("data.txt"), "one\n").unwrap();
    let package = "com.example:rein:1.0.0";
    sandbox.pack_and_install(&dir, package);
    let installed = sandbox.root().join("com/example/rein/1.0.0");
    let copkg = |args: &[&str]| run(sandbox.copkg().arg("--repo").arg(sandbox.repo()).args(args));
    // Repair: a damaged file comes back, verify is clean again.
    std::fs::write(installed.join("data.txt"), "damaged\n").unwrap();
    assert_eq!(copkg(&["verify", package]).code, 13);
    let out = copkg(&["install", package]);
    assert!(out.stdout.contains("is already installed"), "{out:?}");
    let out = copkg(&["install", "--reinstall", package]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(installed.join("data.txt")).unwrap(),
        "one\n"
    );
    assert_eq!(copkg(&["verify", package]).code, 0);
    // After a republish, the new archive replaces the old tree.
    std::fs::write(dir.join("data.txt"), "two\n").unwrap();
    let out = run(sandbox
        .copkg()
        .arg("pack")
        .arg(&dir)
        .args(["--coordinate", package, "--force", "--out"])
        .arg(sandbox.repo()));
    assert_eq!(out.code, 0, "{out:?}");
    // While a service runs from it: refused unless --force.
    assert_eq!(start(&sandbox, package, SVC, &[]).code, 0);
    let out = copkg(&["install", "--reinstall", package]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "is used by running service {SVC}; stop it first, or reinstall with --force"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(installed.join("data.txt")).unwrap(),
        "one\n"
    );
    let out = copkg(&["install", "--reinstall", "--force", package]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(installed.join("data.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(copkg(&["verify", package]).code, 0);
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    assert_eq!(
        std::fs::read_dir(sandbox.root().join(".copkg/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn reload_runs_the_package_script_or_signals_the_daemon() {
    let sandbox = Sandbox::new();
    // No reload script: the daemon gets HUP (it counts them in data/).
    let hup = "trap 'echo hup >> data/reloads' HUP; while :; do sleep 0.05; done";
    let package = install_package(
        &sandbox,
        "hup",
        &[("script.d/start.lua", &lua_service(hup), 0o644)],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    std::thread::sleep(Duration::from_millis(200));
    let out = run(sandbox.copkg().args(["reload", SVC]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("reloaded {SVC} (SIGHUP)\n").as_str()),
        "{out:?}"
    );
    let reloads = runtime_dir(&sandbox, SVC).join("data/reloads");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&reloads).is_ok_and(|t| t == "hup\n")
    }));
    // The site names another signal.
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { reload_signal = function(ctx) return 'USR1' end }\n",
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .args(["reload", SVC]));
    assert_eq!(out.stdout, format!("reloaded {SVC} (SIGUSR1)\n"), "{out:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    // A reload.py runs with the contract's arguments; a stopped service is exit 7.
    let script = "#!/bin/sh\necho \"$@\" > \"$COPKG_RUNTIME_DIR/data/reload-args\"\n";
    let package = install_package(
        &sandbox,
        "scripted",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            ("script.d/reload.py", script, 0o755),
        ],
    );
    let other = "2.svc.test.local";
    assert_eq!(start(&sandbox, &package, other, &[]).code, 0);
    let out = run(sandbox.copkg().args(["reload", other]));
    assert_eq!(out.code, 0, "{out:?}");
    let dir = runtime_dir(&sandbox, other);
    assert_eq!(
        std::fs::read_to_string(dir.join("data/reload-args")).unwrap(),
        format!("--runtime-dir={} --coordinate={other}\n", dir.display())
    );
    assert_eq!(run(sandbox.copkg().args(["stop", other])).code, 0);
    assert_eq!(run(sandbox.copkg().args(["reload", other])).code, 7);
}

#[test]
fn example_upgrade_rollout_moves_services_one_by_one_and_stops_at_the_first_rollback() {
    let sandbox = Sandbox::new();
    let v1 = install_example(&sandbox, "webapp");
    sandbox.pack(&example_dir("webapp"), "com.example:webapp:2.0.0");
    let broken = install_never_ready(&sandbox, "webapp", "3.0.0");
    let ports = [free_port(), free_port(), free_port()];
    for (i, port) in ports.iter().enumerate() {
        let service = format!("{}.web.demo.local", i + 1);
        assert_eq!(
            start(&sandbox, &v1, &service, &[&format!("--port={port}")]).code,
            0
        );
    }
    let rollout =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/upgrade-rollout.lua");
    let rollout_to = |to: &str| {
        run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .arg("run")
            .arg(&rollout)
            .args([v1.as_str(), to])
            .args(ports.iter().map(u16::to_string)))
    };
    // To a version that never becomes ready: the first rolls back, the run
    // stops there with exit 12, and the others were never touched.
    let out = rollout_to(&broken);
    assert_eq!(out.code, 12, "{out:?}");
    assert!(
        out.stderr
            .contains("rollout stopped at 1.web.demo.local after 0 upgrade(s)"),
        "{}",
        out.stderr
    );
    for i in 1..=3 {
        assert_eq!(
            record(&sandbox, &format!("{i}.web.demo.local"))["package"],
            v1.as_str()
        );
    }
    // To a good version: all three, one by one.
    let out = rollout_to("com.example:webapp:2.0.0");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.ends_with("3 service(s) upgraded\n"),
        "{}",
        out.stdout
    );
    for (i, port) in ports.iter().enumerate() {
        assert_eq!(
            record(&sandbox, &format!("{}.web.demo.local", i + 1))["package"],
            "com.example:webapp:2.0.0"
        );
        assert!(http_get(*port).is_some());
    }
    for i in 1..=3 {
        assert_eq!(
            run(sandbox
                .copkg()
                .args(["stop", &format!("{i}.web.demo.local")]))
            .code,
            0
        );
    }
}

#[test]
fn g1_without_cgroups_a_double_forked_daemon_is_found_as_its_subreaper() {
    let sandbox = Sandbox::new();
    let config = no_cgroups_config(&sandbox);
    let marker = format!("60.{}4", std::process::id());
    // Double fork into a new session, no pid file.
    let script = format!(
        "#!/bin/sh\nsetsid sh -c 'sh -c \"exec sleep {marker}\" & exit 0' </dev/null >/dev/null 2>&1 &\nsleep 0.2\n"
    );
    let package = install_package(&sandbox, "nocg", &[("script.d/start.py", &script, 0o755)]);
    let copkg = |args: &[&str]| run(sandbox.copkg().arg("--config").arg(&config).args(args));
    let out = copkg(&["start", "--user", "root", &package, SVC]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(record(&sandbox, SVC)["cgroup"].is_null());
    let daemon = pids_with(&marker);
    assert_eq!(daemon.len(), 1);
    let out = copkg(&["--json", "status", SVC]);
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["state"], "running", "{}", out.stdout);
    assert!(
        status["pids"]
            .as_array()
            .unwrap()
            .contains(&daemon[0].into()),
        "{}",
        out.stdout
    );
    assert_eq!(copkg(&["stop", SVC]).code, 0);
    assert!(wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()));

    // A pid file naming a stranger is refused here too, and what the
    // script started is ended.
    let mut older = Command::new("sleep").arg("60").spawn().unwrap();
    let liar = format!(
        "#!/bin/sh\nsetsid sh -c 'exec sleep {marker}' </dev/null >/dev/null 2>&1 &\necho {} > \"$COPKG_RUNTIME_DIR/run/start.pid\"\nsleep 0.2\n",
        older.id()
    );
    let package = install_package(&sandbox, "nocgliar", &[("script.d/start.py", &liar, 0o755)]);
    let out = copkg(&["start", "--user", "root", &package, "2.svc.test.local"]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr
            .contains("which is not a process the start script started"),
        "{}",
        out.stderr
    );
    assert!(
        wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
        "left running"
    );
    assert!(older.try_wait().unwrap().is_none());
    older.kill().unwrap();
    older.wait().unwrap();
}

#[test]
fn stop_scripts_run_inside_the_cgroup_and_a_forking_chain_does_not_outlive_stop() {
    let sandbox = Sandbox::new();
    let marker = format!("60.{}5", std::process::id());
    // A chain that forks its successor and exits, ignoring TERM: a scan of
    // the cgroup can find it empty for an instant.
    let chain = "#!/bin/sh\ntrap '' TERM\nsleep 0.02\n\"$0\" \"$1\" &\nexit 0\n";
    let start = format!(
        "local ctx = ...\ncopkg.spawn({{ program = ctx.package_dir .. '/bin/chain.sh', args = {{ '{marker}' }}, cwd = ctx.runtime_dir, stdout = '/dev/null', stderr = '/dev/null' }})\n"
    );
    let stop_py = "#!/bin/sh\ncat /proc/self/cgroup > \"$COPKG_RUNTIME_DIR/data/stop-cgroup\"\n";
    let package = install_package(
        &sandbox,
        "chain",
        &[
            ("bin/chain.sh", chain, 0o755),
            ("script.d/start.lua", &start, 0o644),
            ("script.d/stop.py", stop_py, 0o755),
        ],
    );
    assert_eq!(self::start(&sandbox, &package, SVC, &[]).code, 0);
    let cgroup = PathBuf::from(record(&sandbox, SVC)["cgroup"].as_str().unwrap());
    // The chain moves from pid to pid; a scan catches it most of the time.
    assert!(wait_until(Duration::from_secs(3), || !pids_with(&marker).is_empty()));
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"stopSchedule": "TERM/0.2/KILL/0.2"}"#).unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        wait_until(Duration::from_secs(2), || pids_with(&marker).is_empty()),
        "the chain outlived stop"
    );
    assert!(!cgroup.exists(), "the cgroup was left");
    let seen =
        std::fs::read_to_string(runtime_dir(&sandbox, SVC).join("data/stop-cgroup")).unwrap();
    let name = cgroup.file_name().unwrap().to_str().unwrap();
    assert!(
        seen.trim_end().ends_with(&format!("/{name}")),
        "stop.py ran outside the service's cgroup: {seen}"
    );
}

/// SPEC §6: start.lua, stop.lua and reload.lua run in a process copkg
/// re-executes as the service's account; what they print is their output,
/// never an answer copkg would take, and the pids they name are claims.
#[test]
fn package_lua_runs_as_the_service_account_and_cannot_forge_its_answer() {
    let uid = service_account("copkg-test-svc");
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A root-only dir the script tries to write into.
    let root_only = sandbox.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    let probe = |name: &str| {
        format!(
            r#"local ctx = ...
local id = io.popen("id -u"):read("l")
local out = assert(io.open(ctx.runtime_dir .. "/data/{name}-uid", "w"))
out:write(id, " ", tostring(os.getenv("USER")), " ", tostring(os.getenv("COPKG_REPO")), "\n")
out:close()
local evil = io.open("{root}/{name}", "w")
if evil then evil:write("x") evil:close() end
"#,
            root = root_only.display()
        )
    };
    // start.lua also prints a forged answer naming pid 1 and copkg's parent.
    let start = format!(
        r#"{probe}
print('{{"ran":{{"spawned":[{{"pid":1,"start_time":0,"pgrp":1}}]}}}}')
io.write('{{"failed":"forged"}}')
{spawn}"#,
        probe = probe("start"),
        spawn = lua_service("exec sleep 60").replace("local ctx = ...\n", "")
    );
    let package = install_package(
        &sandbox,
        "luaacct",
        &[
            ("script.d/start.lua", &start, 0o644),
            (
                "script.d/stop.lua",
                &format!("{}\ncopkg.log('stop.lua ran')\n", probe("stop")),
                0o644,
            ),
            ("script.d/reload.lua", &probe("reload"), 0o644),
        ],
    );
    let out = run(sandbox
        .copkg()
        .env("COPKG_REPO", "https://user:secret@repo.invalid/")
        .args(["-v", "start", "--user", "copkg-test-svc", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    // What start.lua printed is its output (shown with -v), not an answer.
    assert!(
        out.stderr.contains(r#"{"failed":"forged"}"#),
        "{}",
        out.stderr
    );
    let runtime = runtime_dir(&sandbox, SVC);
    assert_eq!(
        std::fs::read_to_string(runtime.join("data/start-uid")).unwrap(),
        format!("{uid} copkg-test-svc nil\n")
    );
    let pids: Vec<i64> = record(&sandbox, SVC)["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_i64().unwrap())
        .collect();
    assert!(!pids.contains(&1), "a forged pid was recorded: {pids:?}");
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(uid_of(pids[0] as i32), uid);

    assert_eq!(run(sandbox.copkg().args(["reload", SVC])).code, 0);
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    for name in ["reload", "stop"] {
        assert_eq!(
            std::fs::read_to_string(runtime.join(format!("data/{name}-uid"))).unwrap(),
            format!("{uid} copkg-test-svc nil\n"),
            "{name}.lua"
        );
    }
    // None of them could write where only root can.
    assert_eq!(std::fs::read_dir(&root_only).unwrap().count(), 0);
    assert!(!pid_alive(pids[0] as i32));

    // Without a cgroup (copkg as subreaper), the forged pid is no more
    // than a claim either: only a process copkg adopted counts.
    let config = no_cgroups_config(&sandbox);
    let copkg = || copkg_with(&sandbox, Some(&config));
    let out = run(copkg().args(["start", "--user", "copkg-test-svc", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    let recorded = record(&sandbox, SVC);
    assert!(recorded["cgroup"].is_null(), "{recorded}");
    let pids: Vec<i64> = recorded["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(uid_of(pids[0] as i32), uid);
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);
    assert!(!pid_alive(pids[0] as i32));
}

/// The `service_account` site hook names the account when `--user` does
/// not; `--user` beats it; what it returns is checked.
#[test]
fn the_service_account_hook_names_the_account() {
    let uid = service_account("copkg-test-svc");
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let package = install_package(
        &sandbox,
        "hookacct",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        r#"return {
  service_account = function(ctx)
    if ctx.instance == "1" then return "copkg-test-svc" end
    if ctx.instance == "2" then return 42 end
    if ctx.instance == "3" then return "no-such-user-here" end
    return nil
  end,
}
"#,
    )
    .unwrap();
    let copkg = || {
        let mut command = sandbox.copkg();
        command.arg("--site").arg(&site);
        command
    };
    let out = run(copkg().args(["start", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("runs as root"), "{}", out.stderr);
    assert_eq!(uid_of(recorded_pid(&sandbox, SVC)), uid);
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);
    // --user beats the hook.
    let out = run(copkg().args(["start", "--user", "root", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(uid_of(recorded_pid(&sandbox, SVC)), 0);
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);
    // A result of the wrong type is the hook's failure (8), naming it.
    let out = run(copkg().args(["start", &package, "2.svc.test.local"]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr
            .contains("hook `service_account` returned an invalid result"),
        "{}",
        out.stderr
    );
    // An account that does not exist is a usage error naming who named it.
    let out = run(copkg().args(["start", &package, "3.svc.test.local"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "the account the service_account hook names: no such user `no-such-user-here`"
        ),
        "{}",
        out.stderr
    );
    // Neither left anything running or a runtime dir made for the account.
    for service in ["2.svc.test.local", "3.svc.test.local"] {
        assert!(
            !runtime_dir(&sandbox, service).join("run").exists(),
            "{service}"
        );
    }
    // nil: copkg's own user (root here), with the warning.
    let out = run(copkg().args(["start", &package, "4.svc.test.local"]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("4.svc.test.local runs as root"),
        "{}",
        out.stderr
    );
    assert_eq!(run(copkg().args(["stop", "4.svc.test.local"])).code, 0);
}

/// A package's `script.d/ready.lua` is run as the service's account until
/// it returns true; a string it returns is why it is not ready yet. ready.py
/// runs as the account too. A failing `after_start` hook ends the start.
#[test]
fn ready_lua_decides_readiness_as_the_account() {
    let uid = service_account("copkg-test-svc");
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The service marks itself ready after a moment.
    let ready_lua = r#"local ctx = ...
local id = io.popen("id -u"):read("l")
local out = assert(io.open(ctx.runtime_dir .. "/data/ready-uid", "w"))
out:write(id, "\n")
out:close()
local marker = io.open(ctx.runtime_dir .. "/data/up", "r")
if marker then marker:close() return true end
return "data/up is not there yet"
"#;
    let package = install_package(
        &sandbox,
        "readylua",
        &[
            (
                "script.d/start.lua",
                &lua_service("sleep 0.3; touch data/up; exec sleep 60"),
                0o644,
            ),
            ("script.d/ready.lua", ready_lua, 0o644),
        ],
    );
    let out = run(sandbox
        .copkg()
        .args(["start", "--user", "copkg-test-svc", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    let runtime = runtime_dir(&sandbox, SVC);
    assert!(runtime.join("data/up").exists());
    assert_eq!(
        std::fs::read_to_string(runtime.join("data/ready-uid")).unwrap(),
        format!("{uid}\n")
    );
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);

    // One that never becomes ready: exit 14 with ready.lua's reason, and
    // nothing left running.
    let never = install_package(
        &sandbox,
        "readylua2",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            ("script.d/ready.lua", ready_lua, 0o644),
        ],
    );
    let out = run(sandbox.copkg().args([
        "start",
        "--user",
        "copkg-test-svc",
        "--ready-timeout",
        "1",
        &never,
        "2.svc.test.local",
    ]));
    assert_eq!(out.code, 14, "{out:?}");
    assert!(
        out.stderr.contains("data/up is not there yet"),
        "{}",
        out.stderr
    );
    let pid = record(&sandbox, "2.svc.test.local")["processes"][0]["pid"]
        .as_i64()
        .unwrap() as i32;
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));

    // ready.py runs as the account.
    let ready_py = "#!/bin/sh\nid -u > \"$COPKG_RUNTIME_DIR/data/ready-py-uid\"\n";
    let py = install_package(
        &sandbox,
        "readypy",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            ("script.d/ready.py", ready_py, 0o755),
        ],
    );
    let out =
        run(sandbox
            .copkg()
            .args(["start", "--user", "copkg-test-svc", &py, "3.svc.test.local"]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(
            runtime_dir(&sandbox, "3.svc.test.local").join("data/ready-py-uid")
        )
        .unwrap(),
        format!("{uid}\n")
    );
    assert_eq!(
        run(sandbox.copkg().args(["stop", "3.svc.test.local"])).code,
        0
    );

    // An after_start hook that fails ends what the start launched.
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { after_start = function(ctx) error(\"refused by the site\") end }\n",
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--site").arg(&site).args([
        "start",
        "--user",
        "root",
        &py,
        "4.svc.test.local",
    ]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("refused by the site"), "{}", out.stderr);
    let pid = record(&sandbox, "4.svc.test.local")["processes"][0]["pid"]
        .as_i64()
        .unwrap() as i32;
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    let out = run(sandbox.copkg().args(["status", "4.svc.test.local"]));
    assert_ne!(out.code, 0, "{out:?}");
}

/// Ctrl-C or SIGTERM during a stop ends the stop script with copkg, says
/// so, and leaves nothing locked: the next stop goes through.
#[test]
fn g7_an_interrupted_stop_ends_its_script_and_releases_the_lock() {
    let sandbox = Sandbox::new();
    let marker = format!("70.{}7", std::process::id());
    let stop = format!(
        "#!/bin/sh
dir=${{1#--runtime-dir=}}
if [ -e \"$dir/data/slow\" ]; then rm \"$dir/data/slow\"; exec sleep {marker}; fi
"
    );
    let package = install_package(
        &sandbox,
        "g7",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            ("script.d/stop.py", &stop, 0o755),
        ],
    );
    let no_cgroups = no_cgroups_config(&sandbox);
    for (signal, code, config) in [
        (nix::sys::signal::Signal::SIGINT, 130, None),
        (nix::sys::signal::Signal::SIGTERM, 143, Some(&no_cgroups)),
    ] {
        let copkg = || copkg_with(&sandbox, config);
        assert_eq!(
            run(copkg().args(["start", "--user", "root", &package, SVC])).code,
            0
        );
        std::fs::write(runtime_dir(&sandbox, SVC).join("data/slow"), "").unwrap();
        let child = copkg()
            .args(["stop", SVC])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(wait_until(Duration::from_secs(10), || pids_with(&marker)
            .len()
            == 1));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{signal:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("interrupted by"),
            "{out:?}"
        );
        assert!(
            wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
            "{signal:?}: the stop script was left running"
        );
        // Nothing is left locked: the next stop runs at once and succeeds.
        let started = Instant::now();
        let out = run(copkg().args(["stop", SVC]));
        assert_eq!(out.code, 0, "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "{out:?}");
        let out = run(copkg().args(["status", SVC]));
        assert!(!out.stdout.contains("\trunning\t"), "{}", out.stdout);
    }
}

/// Ctrl-C during an upgrade (here while the new version is being waited
/// for) ends what the new version launched and releases the lock.
#[test]
fn g7_an_interrupted_upgrade_ends_the_new_version() {
    let sandbox = Sandbox::new();
    let marker = format!("71.{}7", std::process::id());
    let old = install_package(
        &sandbox,
        "g7up",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let dir = sandbox.path().join("src/g7up-2");
    std::fs::create_dir_all(dir.join("script.d")).unwrap();
    std::fs::write(
        dir.join("script.d/start.lua"),
        lua_service(&format!("exec sleep {marker}")),
    )
    .unwrap();
    let new = "com.example:g7up:2.0.0";
    sandbox.pack_and_install(&dir, new);
    assert_eq!(start(&sandbox, &old, SVC, &[]).code, 0);
    let port = free_port();
    let child = sandbox
        .copkg()
        .args([
            "upgrade",
            "--ready",
            &format!("tcp:127.0.0.1:{port}"),
            SVC,
            new,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || pids_with(&marker)
        .len()
        == 1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(
        wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
        "the new version was left running"
    );
    // Nothing is locked: a restart goes through at once (the record names
    // the version the upgrade had got to).
    let out = run(sandbox.copkg().args(["restart", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

/// G2: a start whose record cannot be written (the disk filled up while the
/// script ran) ends what it launched instead of leaving it unrecorded.
#[test]
fn g2_a_start_that_cannot_be_recorded_ends_what_it_launched() {
    let sandbox = Sandbox::new();
    let marker = format!("72.{}2", std::process::id());
    let script = format!(
        "#!/bin/sh\nsetsid sh -c 'exec sleep {marker}' </dev/null >/dev/null 2>&1 &\necho $! > \"$COPKG_RUNTIME_DIR/run/start.pid\"\ndd if=/dev/zero of=\"$COPKG_RUNTIME_DIR/data/fill\" bs=64k 2>/dev/null\nexit 0\n"
    );
    let package = install_package(&sandbox, "g2full", &[("script.d/start.py", &script, 0o755)]);
    let _tmpfs = Tmpfs::mount(&sandbox.path().join("runtime"), "2m,mode=755");
    let no_cgroups = no_cgroups_config(&sandbox);
    for config in [None, Some(&no_cgroups)] {
        let copkg = || copkg_with(&sandbox, config);
        let out = run(copkg().args(["start", "--user", "root", &package, SVC]));
        assert_eq!(out.code, 1, "{config:?}: {out:?}");
        assert!(
            out.stderr.contains("No space left on device"),
            "{config:?}: {}",
            out.stderr
        );
        assert!(
            wait_until(Duration::from_secs(5), || pids_with(&marker).is_empty()),
            "{config:?}: left running unrecorded"
        );
        // With room again, status does not call it running and a start works.
        std::fs::remove_file(runtime_dir(&sandbox, SVC).join("data/fill")).unwrap();
        let out = run(copkg().args(["status", SVC]));
        assert!(!out.stdout.contains("\trunning\t"), "{}", out.stdout);
        let quick = install_package(
            &sandbox,
            "g2quick",
            &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
        );
        let out = run(copkg().args(["start", "--user", "root", &quick, SVC]));
        assert_eq!(out.code, 0, "{config:?}: {out:?}");
        assert_eq!(run(copkg().args(["stop", SVC])).code, 0);
        assert_eq!(run(copkg().args(["cleanup", SVC])).code, 0);
        assert_eq!(run(copkg().arg("uninstall").arg(&quick)).code, 0);
    }
}

/// F6: what a failed start shows of console/ is escaped and marked as the
/// service's, so the account cannot forge copkg's own lines or terminal
/// escapes.
#[test]
fn f6_console_text_in_errors_is_escaped_and_marked() {
    let sandbox = Sandbox::new();
    let script = "#!/bin/sh\nprintf 'ok\\nerror: copkg: all is well\\n\\033[2J\\342\\200\\256gnp.exe\\n' > \"$COPKG_RUNTIME_DIR/console/stdout.log\"\nexit 0\n";
    let package = install_package(&sandbox, "f6", &[("script.d/start.py", script, 0o755)]);
    let out = run(sandbox
        .copkg()
        .args(["start", "--user", "root", &package, SVC]));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains('\x1b'), "{}", out.stderr);
    assert!(!out.stderr.contains('\u{202e}'), "{}", out.stderr);
    assert!(
        !out.stderr
            .lines()
            .any(|l| l.starts_with("error: copkg: all is well")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("| error: copkg: all is well"),
        "{}",
        out.stderr
    );
}

/// A package says how it stops, reloads, becomes ready and runs in
/// `script.d/service.lua`; the site's `service_settings` may change any of
/// it; what either returns is checked.
#[test]
fn service_lua_declares_how_a_service_stops_reloads_and_runs() {
    let uid = service_account("copkg-test-svc");
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // TERM is ignored: only the declared QUIT stops it quickly.
    let daemon = r#"trap '' TERM
trap 'echo usr1 >> data/got' USR1
trap 'echo quit >> data/got; exit 0' QUIT
echo "$GREETING" > data/env.tmp
ulimit -n > data/nofile
mv data/env.tmp data/env
while :; do sleep 0.05; done"#;
    let service_lua = r#"return {
  stop = { signal = "QUIT", timeout = 20 },
  reload = { signal = "USR1" },
  ready = function(ctx) return "exec:/usr/bin/test -e " .. ctx.runtime_dir .. "/data/env" end,
  user = "copkg-test-svc",
  env = { GREETING = "hello" },
  limits = { nofile = 4242 },
  logs = { "log/app.log" },
}
"#;
    let package = install_package(
        &sandbox,
        "declared",
        &[
            ("script.d/start.lua", &lua_service(daemon), 0o644),
            ("script.d/service.lua", service_lua, 0o644),
        ],
    );
    let out = run(sandbox.copkg().args(["start", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("runs as root"), "{}", out.stderr);
    let runtime = runtime_dir(&sandbox, SVC);
    let data =
        |name: &str| std::fs::read_to_string(runtime.join("data").join(name)).unwrap_or_default();
    // Ready meant data/env was there when start returned.
    assert_eq!(data("env"), "hello\n");
    assert_eq!(data("nofile"), "4242\n");
    let recorded = record(&sandbox, SVC);
    assert_eq!(recorded["settings"]["stop"]["signal"], "QUIT");
    assert_eq!(uid_of(recorded_pid(&sandbox, SVC)), uid);
    assert_eq!(run(sandbox.copkg().args(["reload", SVC])).code, 0);
    assert!(wait_until(Duration::from_secs(5), || data("got") == "usr1\n"));
    let began = Instant::now();
    let out = run(sandbox.copkg().args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(began.elapsed() < Duration::from_secs(10), "{out:?}");
    assert_eq!(data("got"), "usr1\nquit\n");

    // The site changes what the package declared, and may name root.
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        r#"return {
  service_settings = function(ctx, declared)
    declared.env.GREETING = "from the site"
    declared.user = "root"
    return declared
  end,
  service_account = function(ctx) return "copkg-test-svc" end,
}
"#,
    )
    .unwrap();
    // (Readiness waits for data/env again.)
    std::fs::remove_file(runtime.join("data/env")).unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--site")
        .arg(&site)
        .args(["start", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(data("env"), "from the site\n");
    assert_eq!(uid_of(recorded_pid(&sandbox, SVC)), 0);
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    let out = run(sandbox.copkg().arg("--site").arg(&site).arg("site"));
    assert!(
        out.stderr.contains("service_settings decides the account"),
        "{out:?}"
    );

    // A package may not name root itself.
    let rooted = install_package(
        &sandbox,
        "rooted",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            (
                "script.d/service.lua",
                "return { user = \"root\" }\n",
                0o644,
            ),
        ],
    );
    let out = run(sandbox.copkg().args(["start", &rooted, "2.svc.test.local"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("script.d/service.lua names root"),
        "{}",
        out.stderr
    );
    // A wrong field is named, with the file.
    let wrong = install_package(
        &sandbox,
        "wrong",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            (
                "script.d/service.lua",
                "return { stop = { signal = \"QUITE\" } }\n",
                0o644,
            ),
        ],
    );
    let out = run(sandbox.copkg().args(["start", &wrong, "3.svc.test.local"]));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr
            .contains("service.lua: `stop.signal` = \"QUITE\" is not a signal name"),
        "{}",
        out.stderr
    );
    for service in ["2.svc.test.local", "3.svc.test.local"] {
        assert!(
            !runtime_dir(&sandbox, service).join("run").exists(),
            "{service}"
        );
    }
}

/// `limits.memory` in service.lua goes through the service's cgroup (the v1
/// memory hierarchy here, beside a cgroup2 tree without the controller);
/// where no cgroup can be had, the start is refused, never run unlimited.
#[test]
fn a_declared_memory_limit_is_enforced_by_a_cgroup_or_refused() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "memlimit",
        &[
            ("script.d/start.lua", &lua_service("exec sleep 60"), 0o644),
            (
                "script.d/service.lua",
                "return { limits = { memory = \"64M\" } }\n",
                0o644,
            ),
        ],
    );
    let out = start(&sandbox, &package, SVC, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let pid = recorded_pid(&sandbox, SVC);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let limit_file = match cgroups.lines().find_map(|l| l.strip_prefix("0::")) {
        // cgroup v2 with the memory controller: memory.max of its cgroup.
        Some(v2)
            if std::path::Path::new(&format!("/sys/fs/cgroup/unified{v2}/memory.max")).exists() =>
        {
            format!("/sys/fs/cgroup/unified{v2}/memory.max")
        }
        _ => {
            let v1 = cgroups
                .lines()
                .find_map(|l| {
                    let (_, rest) = l.split_once(':')?;
                    let (controllers, path) = rest.split_once(':')?;
                    controllers
                        .split(',')
                        .any(|c| c == "memory")
                        .then(|| path.to_owned())
                })
                .expect("the process is in a memory cgroup");
            assert!(v1.ends_with(SVC), "{cgroups}");
            format!("/sys/fs/cgroup/memory{v1}/memory.limit_in_bytes")
        }
    };
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        (64u64 << 20).to_string()
    );
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
    assert!(
        !std::path::Path::new(&limit_file).exists(),
        "the memory cgroup was left behind"
    );
    // Without a cgroup: refused, nothing started.
    let config = no_cgroups_config(&sandbox);
    let out = run(copkg_with(&sandbox, Some(&config)).args([
        "start",
        "--user",
        "root",
        &package,
        "2.svc.test.local",
    ]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("cannot limit the memory of 2.svc.test.local"),
        "{}",
        out.stderr
    );
    let out = run(sandbox.copkg().args(["status", "2.svc.test.local"]));
    assert!(!out.stdout.contains("\trunning\t"), "{}", out.stdout);
}

/// `cleanup --keep-data` keeps data/ and etc/ and which package they belong
/// to (the service is unregistered); a full cleanup removes the empty
/// parents a nested layout leaves, never the runtime root.
#[test]
fn cleanup_keeps_data_on_request_and_prunes_empty_parents() {
    let sandbox = Sandbox::new();
    let site = sandbox.path().join("site.lua");
    std::fs::write(
        &site,
        "return { runtime_path = require('copkg.policy').runtime_path_hierarchical }\n",
    )
    .unwrap();
    let copkg = || {
        let mut command = sandbox.copkg();
        command.arg("--site").arg(&site);
        command
    };
    let package = install_package(
        &sandbox,
        "keeper",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let other = install_package(
        &sandbox,
        "intruder",
        &[("script.d/start.lua", &lua_service("exec sleep 60"), 0o644)],
    );
    let runtime_root = sandbox.path().join("runtime");
    // SVC is 1.svc.test.local: local/test/svc/1; a sibling keeps local/test.
    let dir = runtime_root.join("local/test/svc/1");
    let sibling = "1.other.test.local";
    for service in [SVC, sibling] {
        let out = run(copkg().args(["start", "--user", "root", &package, service]));
        assert_eq!(out.code, 0, "{out:?}");
    }
    std::fs::write(dir.join("data/db"), "rows\n").unwrap();
    std::fs::write(dir.join("etc/conf"), "setting\n").unwrap();
    std::fs::write(dir.join("log/app.log"), "line\n").unwrap();
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);

    let out = run(copkg().args(["cleanup", "--keep-data", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("kept for com.example:keeper:1.0.0"),
        "{out:?}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["data", "etc"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("data/db")).unwrap(),
        "rows\n"
    );
    // Kept again: nothing to do, the data stays (a dry run says so too).
    for dry_run in [true, false] {
        let mut cleanup = copkg();
        if dry_run {
            cleanup.arg("--dry-run");
        }
        let out = run(cleanup.args(["--json", "cleanup", "--keep-data", SVC]));
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains(r#""changed":false"#), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join("data/db")).unwrap(),
            "rows\n"
        );
    }
    // Unregistered: status does not list it.
    let out = run(copkg().arg("status"));
    assert!(!out.stdout.contains(SVC), "{}", out.stdout);
    // Another package may not start on the kept data; its own may.
    let out = run(copkg().args(["start", "--user", "root", &other, SVC]));
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.stderr
            .contains("keeps the data/ and etc/ of com.example:keeper:1.0.0"),
        "{}",
        out.stderr
    );
    let out = run(copkg().args(["start", "--user", "root", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("data/db")).unwrap(),
        "rows\n"
    );
    assert_eq!(run(copkg().args(["stop", SVC])).code, 0);

    // A full cleanup removes it and the empty parent it leaves
    // (local/test/svc), but not local/test, where the sibling lives.
    assert_eq!(run(copkg().args(["cleanup", SVC])).code, 0);
    assert!(!dir.exists());
    assert!(!runtime_root.join("local/test/svc").exists());
    assert!(runtime_root.join("local/test/other/1").is_dir());
    assert_eq!(run(copkg().args(["stop", sibling])).code, 0);
    assert_eq!(run(copkg().args(["cleanup", sibling])).code, 0);
    assert!(!runtime_root.join("local").exists());
    assert!(runtime_root.is_dir(), "the runtime root itself stays");
}

/// `copkg logs` shows the last lines of console/ and log/, escaped, never
/// through a link; `-f` follows a file across its rotation.
#[test]
fn logs_shows_and_follows_a_services_files() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "logs",
        &[(
            "script.d/start.lua",
            &lua_service("printf 'one\\ntwo\\n\\033[31mthree\\n'; exec sleep 60"),
            0o644,
        )],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let runtime = runtime_dir(&sandbox, SVC);
    std::fs::write(runtime.join("log/app.log"), "a\nb\nc\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", runtime.join("log/secret.log")).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(runtime.join("console/stdout.log"))
            .unwrap_or_default()
            .contains("three")
    }));
    let out = run(sandbox.copkg().args(["logs", "-n", "2", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "==> console/stderr.log <==\n==> console/stdout.log <==\ntwo\n\\u{1b}[31mthree\n==> log/app.log <==\nb\nc\n"
    );
    let out = run(sandbox
        .copkg()
        .args(["logs", "--file", "log/secret.log", SVC]));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("root:"), "{out:?}");
    let out = run(sandbox.copkg().args(["logs", "--file", "../x", SVC]));
    assert_eq!(out.code, 2, "{out:?}");
    let out = run(sandbox.copkg().args(["logs", "9.nope.test.local"]));
    assert_eq!(out.code, 11, "{out:?}");

    // Follow across a rotation.
    let mut child = sandbox
        .copkg()
        .args(["logs", "-f", "-n", "1", "--file", "log/app.log", SVC])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(next(), "c");
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(runtime.join("log/app.log"))
        .unwrap();
    writeln!(log, "d").unwrap();
    assert_eq!(next(), "d");
    std::fs::rename(runtime.join("log/app.log"), runtime.join("log/app.log.1")).unwrap();
    std::fs::write(runtime.join("log/app.log"), "after rotation\n").unwrap();
    assert_eq!(next(), "after rotation");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(run(sandbox.copkg().args(["stop", SVC])).code, 0);
}

/// Total bytes of the regular files under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Logs stay bounded under writers that never close their files: one
/// rotated by its reopen signal (service.lua `reopen_logs`), one by copy
/// and truncate; console/ counts toward the same budget. clean-logs runs
/// every half second while both write about 100 KB/s of incompressible
/// text (a day of writes and cron runs, in compressed time).
#[test]
fn logs_stay_under_the_budget_with_writers_that_never_close() {
    let sandbox = Sandbox::new();
    let budget: u64 = 600_000;
    let config = sandbox.path().join("logs.json");
    std::fs::write(
        &config,
        format!(r#"{{"logCleanup": {{"maxBytes": {budget}}}}}"#),
    )
    .unwrap();
    let copkg = || copkg_with(&sandbox, Some(&config));
    // Each writes about 5 KB every 50 ms to log/app.log, keeping it open;
    // the second reopens it on USR1.
    let burst = "head -c 3750 /dev/urandom | base64 -w 0; echo";
    let truncated = format!("exec >> log/app.log; while :; do {burst}; sleep 0.05; done");
    let reopened = format!(
        "trap 'exec 3>>log/app.log' USR1; exec 3>>log/app.log; while :; do {{ {burst}; }} >&3; sleep 0.05; done"
    );
    let plain = install_package(
        &sandbox,
        "writer",
        &[("script.d/start.lua", &lua_service(&truncated), 0o644)],
    );
    let signalled = install_package(
        &sandbox,
        "reopener",
        &[
            ("script.d/start.lua", &lua_service(&reopened), 0o644),
            (
                "script.d/service.lua",
                "return { reopen_logs = { signal = \"USR1\" }, logs = { \"log/app.log\" } }\n",
                0o644,
            ),
        ],
    );
    let services = [(SVC, &plain), ("2.svc.test.local", &signalled)];
    for (service, package) in services {
        let out = run(copkg().args(["start", "--user", "root", package, service]));
        assert_eq!(out.code, 0, "{out:?}");
    }
    let mut peak = [0u64; 2];
    let mut inodes = std::collections::BTreeSet::new();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(500));
        for (i, (service, _)) in services.iter().enumerate() {
            let out = run(copkg().args(["--json", "clean-logs", service]));
            assert_eq!(out.code, 0, "{out:?}");
            let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
            let dir = runtime_dir(&sandbox, service);
            assert!(
                report["bytes"].as_u64().unwrap() <= budget,
                "{service}: {report} {:?}",
                std::fs::read_dir(dir.join("log"))
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (e.file_name(), e.metadata().unwrap().len())
                    })
                    .collect::<Vec<_>>()
            );
            let on_disk = dir_bytes(&dir.join("log")) + dir_bytes(&dir.join("console"));
            peak[i] = peak[i].max(on_disk);
            if i == 1 {
                use std::os::unix::fs::MetadataExt;
                if let Ok(meta) = std::fs::metadata(dir.join("log/app.log")) {
                    inodes.insert(meta.ino());
                }
            }
        }
    }
    // Over 12 s each wrote about 1.2 MB, twice the budget; neither ever held
    // much more than the budget (what comes in between two runs is 50 KB).
    for (i, (service, _)) in services.iter().enumerate() {
        eprintln!(
            "{service}: peak {} bytes in log/ and console/ (budget {budget})",
            peak[i]
        );
        assert!(peak[i] <= budget + 200_000, "{service}: peak {}", peak[i]);
        let names: Vec<String> = std::fs::read_dir(runtime_dir(&sandbox, service).join("log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("app.log.") && n.ends_with("Z.gz")),
            "{service}: no rotated, compressed log in {names:?}"
        );
    }
    // The signalled writer reopened its log: app.log was a new file after
    // each rotation.
    assert!(inodes.len() >= 2, "{inodes:?}");
    for (service, _) in services {
        assert_eq!(run(copkg().args(["stop", service])).code, 0);
    }
}

/// `status` answers 3 a.m. questions: an aligned table (on a terminal, or
/// `--table`), and in `--json` start time, uptime, memory and process
/// count; `stop` says when it had to escalate to KILL.
#[test]
fn status_table_and_stop_escalation() {
    let sandbox = Sandbox::new();
    let package = install_package(
        &sandbox,
        "stubborn",
        &[(
            "script.d/start.lua",
            &lua_service(
                "trap '' TERM; echo hello; sh -c 'trap \"\" TERM; exec sleep 60' & exec sleep 60",
            ),
            0o644,
        )],
    );
    assert_eq!(start(&sandbox, &package, SVC, &[]).code, 0);
    let out = run(sandbox.copkg().args(["--json", "status", SVC]));
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["state"], "running");
    assert_eq!(status["processes"], 2, "{status}");
    assert!(status["memory_bytes"].as_u64().unwrap() > 0, "{status}");
    assert!(status["uptime_secs"].as_u64().unwrap() < 60, "{status}");
    assert!(
        status["started_at"].as_str().unwrap().ends_with('Z'),
        "{status}"
    );

    let out = run(sandbox.copkg().args(["status", "--table", "--console"]));
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("SERVICE"), "{}", out.stdout);
    let header = lines[0];
    let row = lines[1];
    // Columns line up: each header starts where its value does.
    for (name, value) in [
        ("STATE", "running"),
        ("PACKAGE", package.as_str()),
        ("USER", "root"),
    ] {
        assert_eq!(header.find(name), row.find(value), "{name}\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains(&format!("== {SVC} ==")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("| hello"), "{}", out.stdout);

    // TERM is ignored: stop escalates, and says so.
    let config = sandbox.path().join("fast.json");
    std::fs::write(&config, r#"{"stopSchedule": "TERM/0.3/KILL/5"}"#).unwrap();
    let out = run(copkg_with(&sandbox, Some(&config)).args(["stop", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{SVC} did not stop on SIGTERM within 0.3 s; it was sent SIGKILL"
        )),
        "{}",
        out.stderr
    );
}

/// Rotations made in the same second get names of their own: a second
/// rotation never replaces the first (nginx under load, rotated by a
/// `clean-logs` run more than once a second, lost half its access log).
#[test]
fn clean_logs_never_replaces_a_rotation_made_in_the_same_second() {
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("logs.json");
    std::fs::write(&config, r#"{"logCleanup": {"maxBytes": 100000}}"#).unwrap();
    let package = install_package(
        &sandbox,
        "reopener",
        &[
            (
                "script.d/start.lua",
                &lua_service(
                    "trap 'exec 3>>log/app.log' USR1; exec 3>>log/app.log; while :; do sleep 0.05; done",
                ),
                0o644,
            ),
            (
                "script.d/service.lua",
                "return { reopen_logs = { signal = \"USR1\" }, logs = { \"log/app.log\" } }\n",
                0o644,
            ),
        ],
    );
    let copkg = || copkg_with(&sandbox, Some(&config));
    let out = run(copkg().args(["start", "--user", "root", &package, SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    let log = runtime_dir(&sandbox, SVC).join("log");
    std::fs::write(log.join("app.log"), "current\n".repeat(4000)).unwrap();
    // Rotations already made this second and the next two.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut earlier = Vec::new();
    for second in now..now + 3 {
        let stamp = Command::new("date")
            .args(["-u", "+%Y%m%dT%H%M%SZ", "-d", &format!("@{second}")])
            .output()
            .unwrap();
        let name = format!("app.log.{}", String::from_utf8_lossy(&stamp.stdout).trim());
        std::fs::write(log.join(&name), format!("rotated at {second}\n")).unwrap();
        earlier.push((name, second));
    }
    let out = run(copkg().args(["--json", "clean-logs", SVC]));
    assert_eq!(out.code, 0, "{out:?}");
    let _ = run(copkg().args(["stop", SVC]));
    let gunzip = |path: &Path| {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    for (name, second) in &earlier {
        let kept = log.join(format!("{name}.gz"));
        assert_eq!(gunzip(&kept), format!("rotated at {second}\n"), "{name}");
    }
    let rotated: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("Z-1") || n.ends_with("Z-1.gz"))
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let path = log.join(&rotated[0]);
    let text = if rotated[0].ends_with(".gz") {
        gunzip(&path)
    } else {
        std::fs::read_to_string(&path).unwrap()
    };
    assert_eq!(text, "current\n".repeat(4000));
}

/// A declared `limits.nofile` above copkg's hard limit: copkg, as root with
/// CAP_SYS_RESOURCE, raises its own hard limit so that the service's
/// account, switched to before the limit is set, may have it; without that
/// capability (containers) the start is refused up front, naming the
/// limit, not failed as "cannot start copkg: Operation not permitted".
#[test]
fn a_declared_nofile_above_the_hard_limit_is_given_or_refused_clearly() {
    service_account("copkg-test-svc");
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse().ok())
        .unwrap();
    let wanted = hard + 1000;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|c| u64::from_str_radix(c.trim(), 16).unwrap())
        .unwrap();
    let may_raise = caps & (1 << 24) != 0; // CAP_SYS_RESOURCE
    let package = install_package(
        &sandbox,
        "many-files",
        &[
            (
                "script.d/start.lua",
                &lua_service("ulimit -Hn > data/nofile; exec sleep 60"),
                0o644,
            ),
            (
                "script.d/service.lua",
                &format!(
                    "return {{ user = \"copkg-test-svc\", limits = {{ nofile = {wanted} }} }}\n"
                ),
                0o644,
            ),
        ],
    );
    let out = run(sandbox.copkg().args(["start", &package, SVC]));
    let _ = run(sandbox.copkg().args(["stop", SVC]));
    if may_raise {
        assert_eq!(out.code, 0, "{out:?}");
        let shown = std::fs::read_to_string(runtime_dir(&sandbox, SVC).join("data/nofile"));
        assert_eq!(shown.unwrap(), format!("{wanted}\n"));
    } else {
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains(&format!(
                "`limits.nofile` = {wanted} open files: the hard limit here is {hard}"
            )),
            "{}",
            out.stderr
        );
        assert!(!runtime_dir(&sandbox, SVC).join("run").exists());
    }
}
