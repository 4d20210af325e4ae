//! Real daemons from Debian (nginx, Redis, PostgreSQL) under copkg, as an
//! operator runs them: each is a package the test packs and installs, whose
//! start script renders the daemon's config into etc/ and runs the system
//! binary as the daemon's own account, on a free port given as a service
//! argument, with its settings (stop and reload signals, readiness, logs)
//! in `script.d/service.lua`. A daemon that is not installed skips its test
//! with a message; CI installs all three (.ci/run).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const NGINX: &str = "/usr/sbin/nginx";
const REDIS: &str = "/usr/bin/redis-server";

/// Whether `program` exists and the test runs as root (to run daemons as
/// their accounts); prints why the test is skipped when not.
fn installed(test: &str, program: &Path, package: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED {test}: running daemons as their own accounts needs root");
        return false;
    }
    let there = program.is_file();
    if !there {
        eprintln!(
            "SKIPPED {test}: {} is not installed (apt-get install {package})",
            program.display()
        );
    }
    there
}

/// PostgreSQL's server binaries: the newest /usr/lib/postgresql/*/bin.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map_or_else(
        || PathBuf::from("/usr/lib/postgresql/*/bin"),
        |(_, bin)| bin,
    )
}

/// A sandbox whose runtime root the daemons' accounts can reach.
fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    sandbox
}

/// Packs and installs `com.example:<name>:1.0.0` made of `files`.
fn install_package(sandbox: &Sandbox, name: &str, files: &[(&str, &str, u32)]) -> String {
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

fn runtime_dir(sandbox: &Sandbox, service: &str) -> PathBuf {
    sandbox.path().join("runtime").join(service)
}

fn copkg(sandbox: &Sandbox, config: Option<&Path>, args: &[&str]) -> Output {
    let mut command = sandbox.copkg();
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    run(command.args(args))
}

/// Stops the named services when the test ends, passed or failed.
struct StopAll<'a>(&'a Sandbox, Vec<&'a str>);

impl Drop for StopAll<'_> {
    fn drop(&mut self) {
        for service in &self.1 {
            let _ = self.0.copkg().args(["stop", service]).output();
        }
    }
}

fn status_json(sandbox: &Sandbox, service: &str) -> serde_json::Value {
    let out = copkg(sandbox, None, &["--json", "status", service]);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|_| panic!("{out:?}"))
}

fn pids_of(status: &serde_json::Value) -> Vec<i32> {
    status["pids"]
        .as_array()
        .map(|pids| pids.iter().map(|p| p.as_i64().unwrap() as i32).collect())
        .unwrap_or_default()
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

fn uid_of(pid: i32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}")).unwrap().uid()
}

fn uid_of_account(name: &str) -> u32 {
    let out = Command::new("id").arg("-u").arg(name).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// The first line of a pid file a daemon wrote.
fn pid_in(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().next().unwrap().trim().parse().unwrap()
}

// ---------------------------------------------------------------- nginx

/// nginx as most sites run it: start.py renders etc/nginx.conf and runs
/// the binary, which daemonizes (a master that forks its workers); the pid
/// file nginx writes becomes run/start.pid.
const NGINX_START_PY: &str = r#"#!/usr/bin/env python3
import os, subprocess, sys, time

opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
rt = opts["runtime-dir"]
port, backend = opts["port"], opts["backend"]
for tmp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
    os.makedirs(f"{rt}/data/tmp/{tmp}", exist_ok=True)
template = open(os.path.join(os.environ["COPKG_PACKAGE_DIR"], "etc/nginx.conf.in")).read()
with open(f"{rt}/etc/nginx.conf", "w") as conf:
    conf.write(template.replace("@PORT@", port).replace("@BACKEND@", backend))
subprocess.run(["/usr/sbin/nginx", "-p", rt + "/", "-c", "etc/nginx.conf", "-e", "log/error.log"],
               check=True)
for _ in range(500):
    if os.path.exists(f"{rt}/run/nginx.pid"):
        break
    time.sleep(0.01)
with open(f"{rt}/run/nginx.pid") as pid, open(f"{rt}/run/start.pid", "w") as out:
    out.write(pid.read())
"#;

const NGINX_CONF: &str = r#"worker_processes 2;
pid run/nginx.pid;
error_log log/error.log notice;
events { worker_connections 256; }
http {
  access_log log/access.log;
  client_body_temp_path data/tmp/body;
  proxy_temp_path data/tmp/proxy;
  fastcgi_temp_path data/tmp/fastcgi;
  uwsgi_temp_path data/tmp/uwsgi;
  scgi_temp_path data/tmp/scgi;
  server {
    listen 127.0.0.1:@PORT@;
    location = / { return 200 "hello from nginx\n"; }
    location = /version { return 200 "v1\n"; }
    location /slow { proxy_pass http://127.0.0.1:@BACKEND@; proxy_read_timeout 60s; }
  }
}
"#;

const NGINX_SERVICE_LUA: &str = r#"local function arg(ctx, name)
  for _, a in ipairs(ctx.args) do
    local value = a:match("^%-%-" .. name .. "=(.+)$")
    if value then return value end
  end
end

return {
  stop = { signal = "QUIT", timeout = 30 },
  reload = { signal = "HUP" },
  reopen_logs = { signal = "USR1" },
  ready = function(ctx) return "tcp:127.0.0.1:" .. arg(ctx, "port") end,
  user = "www-data",
  logs = { "log/access.log", "log/error.log" },
}
"#;

fn install_nginx(sandbox: &Sandbox) -> String {
    install_package(
        sandbox,
        "nginx",
        &[
            ("script.d/start.py", NGINX_START_PY, 0o755),
            ("script.d/service.lua", NGINX_SERVICE_LUA, 0o644),
            ("etc/nginx.conf.in", NGINX_CONF, 0o644),
        ],
    )
}

/// One HTTP/1.0 GET: the status line and the body.
fn http_get(port: u16, path: &str) -> Option<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head.lines().next()?.to_owned();
    Some((status, reply[split + 4..].to_vec()))
}

/// The body a slow backend sends: 64 KiB in 16 pieces, one every 150 ms.
fn slow_body() -> Vec<u8> {
    (0..65536u32).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A backend that answers each request slowly (about 2.4 s), telling
/// `arrived` when a request came in.
fn slow_backend(arrived: mpsc::Sender<()>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = arrived.send(());
                let body = slow_body();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                for piece in body.chunks(4096) {
                    std::thread::sleep(Duration::from_millis(150));
                    if stream.write_all(piece).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// nginx under copkg: ready on its port as www-data (master and workers
/// tracked), reload with HUP takes a changed etc/ config without a new
/// master, clean-logs rotates access.log under load (USR1: nginx writes on
/// to a new access.log, and the old one is compressed once it let go), and
/// a QUIT stop lets a slow request in flight finish with its whole body.
#[test]
fn nginx_reloads_rotates_its_logs_under_load_and_stops_gracefully() {
    const TEST: &str = "nginx_reloads_rotates_its_logs_under_load_and_stops_gracefully";
    if !installed(TEST, Path::new(NGINX), "nginx") {
        return;
    }
    let sandbox = sandbox();
    let service = "1.nginx.test.local";
    let _stop = StopAll(&sandbox, vec![service]);
    let budget: u64 = 80_000;
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"logCleanup": {{"maxBytes": {budget}}}}}"#),
    )
    .unwrap();
    let config = Some(config.as_path());
    let package = install_nginx(&sandbox);
    let (arrived_tx, arrived) = mpsc::channel();
    let backend = slow_backend(arrived_tx);
    let port = free_port();

    let out = copkg(
        &sandbox,
        config,
        &[
            "start",
            &package,
            service,
            "--",
            &format!("--port={port}"),
            &format!("--backend={backend}"),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let runtime = runtime_dir(&sandbox, service);
    let master = pid_in(&runtime.join("run/nginx.pid"));
    let status = status_json(&sandbox, service);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["user"], "www-data", "{status}");
    // The master and its two workers, all tracked, all www-data.
    let pids = pids_of(&status);
    assert_eq!(pids.len(), 3, "{status}");
    assert!(pids.contains(&master), "{status}");
    let www_data = uid_of_account("www-data");
    for pid in &pids {
        assert_eq!(uid_of(*pid), www_data, "pid {pid}");
    }
    let (line, body) = http_get(port, "/").unwrap();
    assert!(line.contains(" 200 "), "{line}");
    assert_eq!(body, b"hello from nginx\n");

    // Reload: the operator changes etc/nginx.conf; HUP makes the same
    // master take it.
    let conf = runtime.join("etc/nginx.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("\"v1\\n\"", "\"v2\\n\"")).unwrap();
    let out = copkg(&sandbox, config, &["reload", service]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            http_get(port, "/version").is_some_and(|(_, body)| body == b"v2\n")
        }),
        "the reloaded config never answered"
    );
    assert_eq!(pid_in(&runtime.join("run/nginx.pid")), master);
    assert!(pid_alive(master));

    // Logs: clients keep nginx busy while clean-logs runs, as from cron.
    let log = runtime.join("log");
    let load_stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let load_stop = Arc::clone(&load_stop);
            let served = Arc::clone(&served);
            std::thread::spawn(move || {
                while !load_stop.load(Ordering::SeqCst) {
                    if http_get(port, "/").is_some_and(|(line, _)| line.contains(" 200 ")) {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    let mut access_inodes = std::collections::BTreeSet::new();
    let mut peak = 0u64;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(400));
        let out = copkg(&sandbox, config, &["--json", "clean-logs", service]);
        assert_eq!(out.code, 0, "{out:?}");
        let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert!(
            report["bytes"].as_u64().unwrap() <= budget,
            "{report} {:?}",
            file_names(&log)
        );
        if let Ok(meta) = std::fs::metadata(log.join("access.log")) {
            access_inodes.insert(meta.ino());
        }
        peak = peak.max(dir_bytes(&log));
    }
    load_stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().unwrap();
    }
    let before_last = std::fs::metadata(log.join("access.log")).unwrap().len();
    let served = served.load(Ordering::SeqCst);
    let out = copkg(&sandbox, config, &["--json", "clean-logs", service]);
    assert_eq!(out.code, 0, "{out:?}");
    let names = file_names(&log);
    eprintln!(
        "nginx: {served} requests served under clean-logs; log/ peaked at {peak} bytes (maxBytes {budget}); access.log had {} inodes; log/ now: {names:?}",
        access_inodes.len()
    );
    // No rotation lost a line: every request served is logged, in
    // access.log or in a rotation (nothing was deleted: the budget held).
    let logged = access_lines(&log);
    assert!(
        logged >= served,
        "{served} requests served, {logged} logged: {names:?}"
    );
    assert!(
        access_inodes.len() >= 2,
        "access.log never rotated: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("access.log.") && n.ends_with("Z.gz")),
        "no compressed rotation in {names:?}"
    );
    // Every rotation nginx let go of is compressed; at most the newest one
    // (renamed by the last run) waits for the next.
    let plain: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("access.log.") && !n.ends_with(".gz"))
        .collect();
    assert!(plain.len() <= 1, "{names:?}");
    // nginx writes on to the access.log that is there now, and no process
    // of it holds a compressed or deleted file.
    let (line, _) = http_get(port, "/").unwrap();
    assert!(line.contains(" 200 "), "{line}");
    let current = log.join("access.log");
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::metadata(&current).is_ok_and(|m| m.len() > 0)
                && (before_last == 0
                    || std::fs::metadata(&current).is_ok_and(|m| m.len() != before_last))
        }),
        "nginx does not write to the new access.log"
    );
    for pid in pids_of(&status_json(&sandbox, service)) {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            assert!(
                !target.contains("(deleted)") && !target.ends_with(".gz"),
                "nginx pid {pid} holds {target}"
            );
        }
    }

    // Graceful stop: a client waits on a slow response when stop runs.
    let client = std::thread::spawn(move || http_get(port, "/slow/big"));
    arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request never reached the backend");
    let began = Instant::now();
    let out = copkg(&sandbox, config, &["stop", service]);
    let took = began.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    let (line, body) = client
        .join()
        .unwrap()
        .expect("the in-flight request failed");
    eprintln!(
        "nginx: `copkg stop` (QUIT) took {} ms with a 2.4 s request in flight; the client got `{line}` and {} bytes",
        took.as_millis(),
        body.len()
    );
    assert!(line.contains(" 200 "), "{line}");
    assert!(body == slow_body(), "truncated: {} bytes", body.len());
    // It waited for the request, and did not need KILL to end.
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(!out.stderr.contains("KILL"), "{}", out.stderr);
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} outlived stop");
    }
    assert_eq!(status_json(&sandbox, service)["state"], "stopped");
}

/// The lines of access.log and its rotations, compressed or not, that
/// log a `GET / ` request.
fn access_lines(log: &Path) -> usize {
    file_names(log)
        .iter()
        .filter(|n| n.starts_with("access.log"))
        .map(|name| {
            let bytes = std::fs::read(log.join(name)).unwrap();
            let text = if name.ends_with(".gz") {
                let mut text = String::new();
                flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .unwrap();
                text
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
            text.lines().filter(|l| l.contains("\"GET / ")).count()
        })
        .sum()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- Redis

/// Redis in the foreground, spawned by start.lua with its config in etc/.
const REDIS_START_LUA: &str = r#"local ctx = ...
local rt = ctx.runtime_dir
copkg.write_file(rt .. "/etc/redis.conf", table.concat({
  "bind 127.0.0.1",
  "port " .. ctx.args[1],
  "daemonize no",
  "dir " .. rt .. "/data",
  "logfile " .. rt .. "/log/redis.log",
  "pidfile " .. rt .. "/run/redis.pid",
  "unixsocket " .. rt .. "/run/redis.sock",
  "save 3600 1",
  "",
}, "\n"))
copkg.spawn({
  program = "/usr/bin/redis-server",
  args = { rt .. "/etc/redis.conf" },
  cwd = rt,
  stdout = rt .. "/console/stdout.log",
  stderr = rt .. "/console/stderr.log",
})
"#;

const REDIS_SERVICE_LUA: &str = r#"return {
  stop = { signal = "TERM", timeout = 30 },
  ready = function(ctx) return "tcp:127.0.0.1:" .. ctx.args[1] end,
  user = "redis",
  limits = { nofile = 10032 },
  logs = { "log/redis.log" },
}
"#;

fn install_redis(sandbox: &Sandbox) -> String {
    install_package(
        sandbox,
        "redis",
        &[
            ("script.d/start.lua", REDIS_START_LUA, 0o644),
            ("script.d/service.lua", REDIS_SERVICE_LUA, 0o644),
        ],
    )
}

/// One Redis command over a raw TCP connection; its reply, CRLFs kept.
fn redis(port: u16, args: &[&str]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader.read_line(&mut reply).ok()?;
    // A bulk string has a second line.
    if reply.starts_with('$') && !reply.starts_with("$-1") {
        reader.read_line(&mut reply).ok()?;
    }
    Some(reply)
}

/// Redis under copkg: enabled, SIGKILLed, back after `copkg reconcile` and
/// answering PING; a TERM stop saves its data, which the next start loads.
#[test]
fn redis_comes_back_after_reconcile_and_saves_on_stop() {
    const TEST: &str = "redis_comes_back_after_reconcile_and_saves_on_stop";
    if !installed(TEST, Path::new(REDIS), "redis-server") {
        return;
    }
    let sandbox = sandbox();
    let service = "1.redis.test.local";
    let _stop = StopAll(&sandbox, vec![service]);
    let package = install_redis(&sandbox);
    let port = free_port().to_string();
    let port_number: u16 = port.parse().unwrap();
    let out = copkg(&sandbox, None, &["start", &package, service, "--", &port]);
    assert_eq!(out.code, 0, "{out:?}");
    let runtime = runtime_dir(&sandbox, service);
    let status = status_json(&sandbox, service);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["user"], "redis", "{status}");
    let old = pid_in(&runtime.join("run/redis.pid"));
    assert_eq!(pids_of(&status), vec![old]);
    assert_eq!(uid_of(old), uid_of_account("redis"));
    assert_eq!(redis(port_number, &["PING"]).as_deref(), Some("+PONG\r\n"));
    // Redis opens its log for each line: nothing for a rotation to signal.
    assert!(
        std::fs::read_to_string(runtime.join("log/redis.log"))
            .unwrap()
            .contains("Ready to accept connections")
    );
    for fd in std::fs::read_dir(format!("/proc/{old}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert!(!target.ends_with("log/redis.log"), "{}", target.display());
    }

    let out = copkg(&sandbox, None, &["enable", service]);
    assert_eq!(out.code, 0, "{out:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(old)));
    assert_eq!(status_json(&sandbox, service)["state"], "crashed");
    let began = Instant::now();
    let out = copkg(&sandbox, None, &["reconcile"]);
    let took = began.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    let status = status_json(&sandbox, service);
    eprintln!(
        "redis: SIGKILLed pid {old}; `copkg reconcile` took {} ms: {}",
        took.as_millis(),
        out.stdout.trim()
    );
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["restarts"], 1, "{status}");
    let new = pid_in(&runtime.join("run/redis.pid"));
    assert_ne!(new, old);
    assert_eq!(pids_of(&status), vec![new]);
    assert_eq!(uid_of(new), uid_of_account("redis"));
    // Ready was checked before reconcile reported it started.
    assert_eq!(redis(port_number, &["PING"]).as_deref(), Some("+PONG\r\n"));

    // TERM: Redis saves, then exits.
    assert_eq!(
        redis(port_number, &["SET", "greeting", "hello"]).as_deref(),
        Some("+OK\r\n")
    );
    let began = Instant::now();
    let out = copkg(&sandbox, None, &["stop", service]);
    eprintln!(
        "redis: `copkg stop` (TERM) took {} ms",
        began.elapsed().as_millis()
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("KILL"), "{}", out.stderr);
    assert!(!pid_alive(new));
    let dump = runtime.join("data/dump.rdb");
    assert!(dump.is_file(), "no dump.rdb after a TERM stop");
    assert_eq!(
        std::fs::metadata(&dump).unwrap().uid(),
        uid_of_account("redis")
    );
    let out = copkg(&sandbox, None, &["start", &package, service, "--", &port]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        redis(port_number, &["GET", "greeting"]).as_deref(),
        Some("$5\r\nhello\r\n")
    );
}

// ------------------------------------------------------------ PostgreSQL

/// PostgreSQL: start.lua makes the cluster in data/pg on the first start
/// (initdb, as postgres), renders etc/postgresql.conf, and runs the
/// postmaster in the foreground, its log in log/.
const POSTGRES_START_LUA: &str = r#"local ctx = ...
local rt = ctx.runtime_dir
local port = ctx.args[1]
local bins = copkg.glob("/usr/lib/postgresql/*/bin/postgres")
local bin = bins[#bins]:match("^(.*)/postgres$")
if not copkg.exists(rt .. "/data/pg/PG_VERSION") then
  local ok = os.execute(bin .. "/initdb -D " .. rt .. "/data/pg -U postgres -A trust -E UTF8 --locale=C"
    .. " --no-sync > " .. rt .. "/log/initdb.log 2>&1")
  if not ok then error("initdb failed: " .. copkg.read_file(rt .. "/log/initdb.log")) end
end
copkg.write_file(rt .. "/etc/postgresql.conf", table.concat({
  "listen_addresses = '127.0.0.1'",
  "port = " .. port,
  "unix_socket_directories = '" .. rt .. "/run'",
  "external_pid_file = '" .. rt .. "/run/postgres.pid'",
  "max_connections = 20",
  "shared_buffers = 16MB",
  "dynamic_shared_memory_type = posix",
  "log_line_prefix = '%m [%p] '",
  "",
}, "\n"))
copkg.spawn({
  program = bin .. "/postgres",
  args = { "-D", rt .. "/data/pg", "-c", "config_file=" .. rt .. "/etc/postgresql.conf" },
  cwd = rt,
  stdout = rt .. "/console/stdout.log",
  stderr = rt .. "/log/postgresql.log",
})
"#;

/// Ready is pg_isready, not an open port: the postmaster listens while it
/// still refuses sessions ("the database system is starting up").
const POSTGRES_SERVICE_LUA: &str = r#"return {
  stop = { signal = "INT", timeout = 60 },
  reload = { signal = "HUP" },
  ready = function(ctx)
    local bins = copkg.glob("/usr/lib/postgresql/*/bin/pg_isready")
    return "exec:" .. bins[#bins] .. " -q -h 127.0.0.1 -p " .. ctx.args[1]
  end,
  user = "postgres",
  limits = { nofile = 8192 },
  logs = { "log/postgresql.log" },
}
"#;

fn install_postgres(sandbox: &Sandbox) -> String {
    install_package(
        sandbox,
        "postgresql",
        &[
            ("script.d/start.lua", POSTGRES_START_LUA, 0o644),
            ("script.d/service.lua", POSTGRES_SERVICE_LUA, 0o644),
        ],
    )
}

/// A PostgreSQL session over raw TCP (protocol 3, trust): connected,
/// authenticated and idle when this returns.
fn postgres_session(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for field in ["user", "postgres", "database", "postgres", ""] {
        body.extend_from_slice(field.as_bytes());
        body.push(0);
    }
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    stream.write_all(&message).unwrap();
    // Messages until ReadyForQuery ('Z').
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut rest = vec![0u8; len - 4];
        stream.read_exact(&mut rest).unwrap();
        assert_ne!(
            head[0],
            b'E',
            "postgres refused: {}",
            String::from_utf8_lossy(&rest)
        );
        if head[0] == b'Z' {
            return stream;
        }
    }
}

/// PostgreSQL under copkg: initdb on the first start as postgres; with an
/// idle client connected, TERM (a smart shutdown) would wait for it, while
/// the declared INT (fast) stops it at once.
#[test]
fn postgres_initdb_on_first_start_and_fast_stop_with_a_client_connected() {
    const TEST: &str = "postgres_initdb_on_first_start_and_fast_stop_with_a_client_connected";
    let bin = postgres_bin();
    if !installed(TEST, &bin.join("postgres"), "postgresql") {
        return;
    }
    let sandbox = sandbox();
    let service = "1.postgres.test.local";
    let _stop = StopAll(&sandbox, vec![service]);
    let package = install_postgres(&sandbox);
    let port = free_port();
    let began = Instant::now();
    let out = copkg(
        &sandbox,
        None,
        &["start", &package, service, "--", &port.to_string()],
    );
    assert_eq!(out.code, 0, "{out:?}");
    eprintln!(
        "postgres: first start (initdb included) ready in {} ms",
        began.elapsed().as_millis()
    );
    let runtime = runtime_dir(&sandbox, service);
    let postgres = uid_of_account("postgres");
    assert_eq!(
        std::fs::metadata(runtime.join("data/pg/PG_VERSION"))
            .unwrap()
            .uid(),
        postgres
    );
    let postmaster = pid_in(&runtime.join("run/postgres.pid"));
    let status = status_json(&sandbox, service);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["user"], "postgres", "{status}");
    // The postmaster and its children (checkpointer, writers, …) are all tracked.
    let pids = pids_of(&status);
    assert!(pids.contains(&postmaster), "{status}");
    assert!(pids.len() >= 4, "{status}");
    for pid in &pids {
        assert_eq!(uid_of(*pid), postgres, "pid {pid}");
    }

    // A smart shutdown (TERM) waits for the idle client …
    let mut client = postgres_session(port);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postmaster),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(pid_alive(postmaster), "TERM did not wait for the client");
    assert_eq!(status_json(&sandbox, service)["state"], "running");
    // … while copkg's stop sends the declared INT: a fast shutdown.
    let began = Instant::now();
    let out = copkg(&sandbox, None, &["stop", service]);
    let took = began.elapsed();
    eprintln!(
        "postgres: `copkg stop` (INT) took {} ms with an idle client connected (TERM had waited 1500 ms and still ran)",
        took.as_millis()
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("KILL"), "{}", out.stderr);
    assert!(took < Duration::from_secs(5), "{took:?}");
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} outlived stop");
    }
    // The client was told and let go.
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).contains("terminating connection"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let log = std::fs::read_to_string(runtime.join("log/postgresql.log")).unwrap();
    assert!(log.contains("fast shutdown request"), "{log}");
    assert!(log.contains("database system is shut down"), "{log}");

    // The second start finds its cluster and does not initdb again.
    let initdb_log = std::fs::metadata(runtime.join("log/initdb.log"))
        .unwrap()
        .modified()
        .unwrap();
    let out = copkg(
        &sandbox,
        None,
        &["start", &package, service, "--", &port.to_string()],
    );
    assert_eq!(out.code, 0, "{out:?}");
    drop(postgres_session(port));
    assert_eq!(
        std::fs::metadata(runtime.join("log/initdb.log"))
            .unwrap()
            .modified()
            .unwrap(),
        initdb_log
    );
}

// ------------------------------------------------------------ all three

/// The three daemons at once, as `copkg status` shows them.
#[test]
fn status_of_nginx_redis_and_postgres_running_at_once() {
    const TEST: &str = "status_of_nginx_redis_and_postgres_running_at_once";
    let bin = postgres_bin();
    if !installed(TEST, Path::new(NGINX), "nginx")
        || !installed(TEST, Path::new(REDIS), "redis-server")
        || !installed(TEST, &bin.join("postgres"), "postgresql")
    {
        return;
    }
    let sandbox = sandbox();
    let services = [
        ("1.nginx.prod.local", "www-data", "run/nginx.pid"),
        ("1.postgres.prod.local", "postgres", "run/postgres.pid"),
        ("1.redis.prod.local", "redis", "run/redis.pid"),
    ];
    let _stop = StopAll(&sandbox, services.iter().map(|s| s.0).collect());
    let nginx = install_nginx(&sandbox);
    let redis_package = install_redis(&sandbox);
    let postgres = install_postgres(&sandbox);
    let (arrived, _) = mpsc::channel();
    let backend = slow_backend(arrived);
    let starts = [
        (
            services[0].0,
            nginx,
            vec![
                format!("--port={}", free_port()),
                format!("--backend={backend}"),
            ],
        ),
        (services[1].0, postgres, vec![free_port().to_string()]),
        (services[2].0, redis_package, vec![free_port().to_string()]),
    ];
    for (service, package, args) in &starts {
        let mut command = vec!["start", package.as_str(), service, "--"];
        command.extend(args.iter().map(String::as_str));
        let out = copkg(&sandbox, None, &command);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let out = copkg(&sandbox, None, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    eprintln!("$ copkg status\n{}", out.stdout);
    let table = out.stdout.clone();
    let out = copkg(&sandbox, None, &["status", "--table"]);
    assert_eq!(out.code, 0, "{out:?}");
    eprintln!("$ copkg status --table\n{}", out.stdout);
    for account in ["www-data", "postgres", "redis"] {
        assert!(out.stdout.contains(account), "{}", out.stdout);
    }
    let out = copkg(&sandbox, None, &["--json", "status"]);
    assert_eq!(out.code, 0, "{out:?}");
    eprintln!("$ copkg --json status\n{}", out.stdout);
    let shown: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(shown.len(), 3, "{}", out.stdout);
    for (service, account, pidfile) in services {
        let entry = shown
            .iter()
            .find(|s| s["service"] == service)
            .unwrap_or_else(|| panic!("{service} missing: {}", out.stdout));
        assert_eq!(entry["state"], "running", "{entry}");
        assert_eq!(entry["user"], account, "{entry}");
        let main = pid_in(&runtime_dir(&sandbox, service).join(pidfile));
        let pids = pids_of(entry);
        assert!(pids.contains(&main), "{entry}");
        for pid in &pids {
            assert_eq!(uid_of(*pid), uid_of_account(account), "{service} pid {pid}");
        }
        let line = table
            .lines()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("{service} not in\n{table}"));
        // (The table has no account column yet: `--json` shows it.)
        let columns: Vec<&str> = line.split('\t').collect();
        assert_eq!(columns[1], "running", "{line}");
        assert!(
            columns[2].split(',').any(|p| p == main.to_string()),
            "{line}"
        );
    }
}

/// An nginx master killed (SIGKILL, the OOM killer) leaves its workers
/// serving, with nobody to reload, reopen logs or replace a worker: copkg
/// reports the service crashed (its main process, the pid start.pid named,
/// is gone), and `reconcile` ends the orphaned workers, which hold the
/// port, and starts nginx again.
#[test]
fn nginx_whose_master_was_killed_is_crashed_and_reconcile_replaces_its_workers() {
    const TEST: &str =
        "nginx_whose_master_was_killed_is_crashed_and_reconcile_replaces_its_workers";
    if !installed(TEST, Path::new(NGINX), "nginx") {
        return;
    }
    let sandbox = sandbox();
    let service = "1.nginx.test.local";
    let _stop = StopAll(&sandbox, vec![service]);
    let package = install_nginx(&sandbox);
    let (arrived, _) = mpsc::channel();
    let backend = slow_backend(arrived);
    let port = free_port();
    let out = copkg(
        &sandbox,
        None,
        &[
            "start",
            &package,
            service,
            "--",
            &format!("--port={port}"),
            &format!("--backend={backend}"),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(copkg(&sandbox, None, &["enable", service]).code, 0);
    let runtime = runtime_dir(&sandbox, service);
    let master = pid_in(&runtime.join("run/nginx.pid"));
    let workers: Vec<i32> = pids_of(&status_json(&sandbox, service))
        .into_iter()
        .filter(|pid| *pid != master)
        .collect();
    assert_eq!(workers.len(), 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(master)));
    // The workers still answer, unsupervised.
    assert!(http_get(port, "/").is_some());
    assert!(workers.iter().all(|pid| pid_alive(*pid)));
    let status = status_json(&sandbox, service);
    assert_eq!(status["state"], "crashed", "{status}");
    // Nothing to reload without a master.
    assert_eq!(copkg(&sandbox, None, &["reload", service]).code, 7);

    let out = copkg(&sandbox, None, &["reconcile"]);
    assert_eq!(out.code, 0, "{out:?}");
    eprintln!(
        "nginx: master SIGKILLed; `copkg reconcile`: {}{}",
        out.stderr,
        out.stdout.trim()
    );
    for pid in &workers {
        assert!(!pid_alive(*pid), "orphaned worker {pid} still runs");
    }
    let status = status_json(&sandbox, service);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["restarts"], 1, "{status}");
    let new_master = pid_in(&runtime.join("run/nginx.pid"));
    assert_ne!(new_master, master);
    assert!(pids_of(&status).contains(&new_master), "{status}");
    let (line, body) = http_get(port, "/").unwrap();
    assert!(line.contains(" 200 "), "{line}");
    assert_eq!(body, b"hello from nginx\n");
}
