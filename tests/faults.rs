//! The fault suite: copkg killed at random points of install, uninstall,
//! pack, start, stop, restart and upgrade (SIGKILL, SIGTERM, SIGINT), disk
//! full and read-only roots; after each fault, nothing half-written is
//! visible, no process is left untracked, the next command succeeds and
//! leaves nothing behind. It runs briefly in `cargo test`;
//! `scripts/faults [CYCLES]` runs it long (`COPKG_SOAK_CYCLES`, 1,000 for
//! the soak), with `COPKG_FAULT_SEED` to replay a run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SERVICE: &str = "1.soak.test.local";

/// A small xorshift generator: reproducible from its seed, printed first.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Rng {
        let seed = std::env::var("COPKG_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{name}: COPKG_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How many cycles each soak runs: few in `cargo test`, many on request.
fn cycles(default: usize) -> usize {
    std::env::var("COPKG_SOAK_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The faults a cycle may meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    Kill,
    Term,
    Int,
}

impl Fault {
    fn pick(rng: &mut Rng) -> Fault {
        match rng.below(4) {
            0 => Fault::None,
            1 => Fault::Kill,
            2 => Fault::Term,
            _ => Fault::Int,
        }
    }

    fn signal(self) -> Option<nix::sys::signal::Signal> {
        match self {
            Fault::None => None,
            Fault::Kill => Some(nix::sys::signal::Signal::SIGKILL),
            Fault::Term => Some(nix::sys::signal::Signal::SIGTERM),
            Fault::Int => Some(nix::sys::signal::Signal::SIGINT),
        }
    }
}

/// Runs `command`, sending it `fault`'s signal after `delay` when it still
/// runs then; its exit code (`None`: killed by a signal).
fn run_with_fault(mut command: Command, fault: Fault, delay: Duration) -> Option<i32> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(signal) = fault.signal() {
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
    }
    child.wait().unwrap().code()
}

/// Every name below `dir` that looks like a leftover of an unfinished
/// write: temp files and dirs, trash, files being removed.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let temp = name.starts_with(".tmp")
            || name.contains(".removing.")
            || name.starts_with(".copkg-tmp")
            || name.starts_with(".copkg-trash")
            || name.ends_with(".partial");
        if temp {
            found.push(path.clone());
        }
        if entry
            .file_type()
            .is_ok_and(|t| t.is_dir() && !t.is_symlink())
        {
            found.extend(leftovers(&path));
        }
    }
    found
}

/// Whether every lock file under `dir` can be taken at once (no holder left).
fn locks_free(dir: &Path) -> Vec<PathBuf> {
    let mut held = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return held;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let flags = nix::fcntl::FlockArg::LockExclusiveNonblock;
        #[allow(deprecated)]
        if nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&file), flags).is_err() {
            held.push(path);
        }
    }
    held
}

/// A package whose service sleeps, marked so that a leak is found by name.
fn soak_package(sandbox: &Sandbox, version: &str, marker: &str) -> String {
    let dir = sandbox.path().join(format!("src-{version}"));
    std::fs::create_dir_all(dir.join("script.d")).unwrap();
    // A detached daemon (double fork, new session) and a slow start, so
    // that faults land while the script runs.
    let script = format!(
        "#!/bin/sh\nsetsid sh -c 'exec sleep {marker}' </dev/null >/dev/null 2>&1 &\nsleep 0.05\n"
    );
    std::fs::write(dir.join("script.d/start.py"), script).unwrap();
    std::fs::set_permissions(
        dir.join("script.d/start.py"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let coordinate = format!("com.example:soak:{version}");
    sandbox.pack(&dir, &coordinate);
    coordinate
}

/// A tally of what each fault left, for the closing table.
#[derive(Default)]
struct Tally(
    std::collections::BTreeMap<(String, Fault), (usize, std::collections::BTreeSet<String>)>,
);

impl Tally {
    fn add(&mut self, op: &str, fault: Fault, code: Option<i32>) {
        let entry = self.0.entry((op.to_owned(), fault)).or_default();
        entry.0 += 1;
        entry
            .1
            .insert(code.map_or_else(|| "killed".to_owned(), |c| c.to_string()));
    }

    fn print(&self, name: &str) {
        eprintln!("{name}: operation, fault, runs, exit codes seen");
        for ((op, fault), (runs, codes)) in &self.0 {
            eprintln!(
                "  {op:<10} {:<6} {runs:>5}  {}",
                format!("{fault:?}"),
                codes.iter().cloned().collect::<Vec<_>>().join(" ")
            );
        }
    }
}

/// Start, stop, restart and upgrade under random SIGKILL, SIGTERM and
/// SIGINT: afterwards one stop ends everything, nothing is left running,
/// locked or half-written, and a start and stop work.
#[test]
fn soak_lifecycle_under_random_kills() {
    let sandbox = Sandbox::new();
    let marker = format!("91.{}5", std::process::id());
    let versions = [
        soak_package(&sandbox, "1.0.0", &marker),
        soak_package(&sandbox, "2.0.0", &marker),
    ];
    for version in &versions {
        let out = run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .args(["install", version]));
        assert_eq!(out.code, 0, "{out:?}");
    }
    let mut rng = Rng::new("soak_lifecycle_under_random_kills");
    let mut tally = Tally::default();
    let copkg = |args: &[&str]| {
        let mut command = sandbox.copkg();
        command.args(args);
        command
    };
    let cycles = cycles(24);
    for _ in 0..cycles {
        let version = &versions[rng.below(2) as usize];
        let (op, command) = match rng.below(4) {
            0 => (
                "start",
                copkg(&["start", "--user", "root", version, SERVICE]),
            ),
            1 => ("stop", copkg(&["stop", SERVICE])),
            2 => ("restart", copkg(&["restart", SERVICE])),
            _ => ("upgrade", copkg(&["upgrade", SERVICE, version])),
        };
        let fault = Fault::pick(&mut rng);
        let delay = Duration::from_millis(rng.below(120));
        let code = run_with_fault(command, fault, delay);
        tally.add(op, fault, code);
        // Every outcome is a documented one: success, a clear refusal, or
        // the signal's own code.
        if let Some(code) = code {
            assert!(
                [0, 3, 6, 7, 8, 11, 12, 15, 130, 143].contains(&code),
                "{op} under {fault:?}: exit {code}"
            );
        }
    }
    tally.print("soak_lifecycle_under_random_kills");
    // One stop finds and ends whatever the faults left, then nothing runs,
    // nothing is locked or half-written.
    let out = run(&mut copkg(&["stop", SERVICE]));
    assert!(matches!(out.code, 0 | 11), "{out:?}");
    let runtime = sandbox.path().join("runtime");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pids_with(&marker), Vec::<i32>::new(), "processes leaked");
    assert_eq!(
        locks_free(&runtime.join(".copkg/locks")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(leftovers(&runtime), Vec::<PathBuf>::new());
    // And the next start and stop just work.
    let out = run(&mut copkg(&[
        "start",
        "--user",
        "root",
        &versions[0],
        SERVICE,
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    let daemons = pids_with(&marker);
    assert_eq!(daemons.len(), 1);
    // It holds no descriptor of copkg's: 0, 1 and 2 only.
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", daemons[0]))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    assert_eq!(run(&mut copkg(&["stop", SERVICE])).code, 0);
    assert!(pids_with(&marker).is_empty());
}

/// Install and uninstall under random kills: afterwards the next install
/// succeeds, verifies clean, and no temp dir or trash is left.
#[test]
fn soak_install_under_random_kills() {
    let sandbox = Sandbox::new();
    let coordinate = "com.example:hello:1.0.0";
    sandbox.pack(&example_dir("hello"), coordinate);
    let mut rng = Rng::new("soak_install_under_random_kills");
    let mut tally = Tally::default();
    for _ in 0..cycles(24) {
        let op = if rng.below(3) == 0 {
            "uninstall"
        } else {
            "install"
        };
        let mut command = sandbox.copkg();
        command
            .arg("--repo")
            .arg(sandbox.repo())
            .args([op, coordinate]);
        let fault = Fault::pick(&mut rng);
        let code = run_with_fault(command, fault, Duration::from_millis(rng.below(40)));
        tally.add(op, fault, code);
        if let Some(code) = code {
            assert!(
                [0, 130, 143].contains(&code),
                "{op} under {fault:?}: exit {code}"
            );
        }
        // Whatever a fault left, an installed package is whole: never a
        // dir without its completion marker under the package's name.
        let installed = sandbox.install_dir();
        if installed.exists() {
            assert!(
                installed.join(".copkg-install.json").is_file(),
                "{op} under {fault:?} left an incomplete install visible"
            );
        }
    }
    tally.print("soak_install_under_random_kills");
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", coordinate]));
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(sandbox.copkg().args(["verify", coordinate]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(leftovers(&sandbox.root()), Vec::<PathBuf>::new());
    assert_eq!(
        locks_free(&sandbox.root().join(".copkg-locks")),
        Vec::<PathBuf>::new()
    );
}

/// Pack under random kills: the repository holds the whole publication
/// (archive, sidecar) or none of it, never a part.
#[test]
fn pack_under_random_kills_publishes_all_or_nothing() {
    let sandbox = Sandbox::new();
    let mut rng = Rng::new("pack_under_random_kills_publishes_all_or_nothing");
    let mut tally = Tally::default();
    for i in 0..cycles(12) {
        let coordinate = format!("com.example:hello:1.0.{i}");
        let mut command = sandbox.copkg();
        command
            .arg("pack")
            .arg(example_dir("hello"))
            .args(["--coordinate", &coordinate, "--out"])
            .arg(sandbox.repo());
        let fault = Fault::pick(&mut rng);
        let code = run_with_fault(command, fault, Duration::from_millis(rng.below(30)));
        tally.add("pack", fault, code);
        let dir = sandbox.repo().join(format!("com/example/hello/1.0.{i}"));
        let archive = dir.join(format!("hello-1.0.{i}-copkg.tar.gz"));
        let sidecar = dir.join(format!("hello-1.0.{i}-copkg.tar.gz.sha256"));
        assert_eq!(
            archive.exists(),
            sidecar.exists(),
            "pack under {fault:?} published half: {:?}",
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        if code == Some(0) {
            assert!(archive.exists());
        }
    }
    tally.print("pack_under_random_kills_publishes_all_or_nothing");
    assert_eq!(leftovers(&sandbox.repo()), Vec::<PathBuf>::new());
}

/// Disk full and read-only roots: each a clear error with its exit code,
/// nothing half-written, and the next command succeeds once there is room.
#[test]
fn disk_full_and_read_only_roots_are_clear_errors_that_leave_nothing() {
    let sandbox = Sandbox::new();
    let coordinate = "com.example:big:1.0.0";
    // A package larger than the tmpfs below.
    let dir = sandbox.path().join("src-big");
    std::fs::create_dir_all(dir.join("script.d")).unwrap();
    let mut noise = vec![0u8; 3_000_000];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut noise,
    )
    .unwrap();
    std::fs::write(dir.join("blob"), &noise).unwrap();
    std::fs::write(
        dir.join("script.d/start.lua"),
        "local ctx = ...\ncopkg.spawn({ program = '/bin/sleep', args = { '60' }, cwd = ctx.runtime_dir, stdout = ctx.runtime_dir .. '/console/stdout.log', stderr = ctx.runtime_dir .. '/console/stderr.log' })\n",
    )
    .unwrap();
    sandbox.pack(&dir, coordinate);
    let mut table = Vec::new();

    // Install onto a full disk: exit 1, nothing visible, nothing left.
    {
        let _tmpfs = Tmpfs::mount(&sandbox.root(), "1m");
        let out = run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .args(["install", coordinate]));
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("No space left on device"), "{out:?}");
        assert!(!sandbox.root().join("com/example/big/1.0.0").exists());
        assert_eq!(leftovers(&sandbox.root()), Vec::<PathBuf>::new());
        table.push(("install, software root full", out.code, why(&out.stderr)));
    }
    // Pack into a full repository: exit 1, nothing published.
    {
        let repo = sandbox.path().join("full-repo");
        let _tmpfs = Tmpfs::mount(&repo, "1m");
        let out = run(sandbox
            .copkg()
            .arg("pack")
            .arg(&dir)
            .args(["--coordinate", coordinate, "--out"])
            .arg(&repo));
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("No space left on device"), "{out:?}");
        assert_eq!(
            std::fs::read_dir(&repo).unwrap().count(),
            0,
            "something was published"
        );
        table.push(("pack, repository full", out.code, why(&out.stderr)));
    }
    // A read-only software root: a clear error, nothing written.
    {
        let _tmpfs = Tmpfs::mount(&sandbox.root(), "8m,ro");
        let out = run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .args(["install", coordinate]));
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("Read-only file system"), "{out:?}");
        table.push((
            "install, software root read-only",
            out.code,
            why(&out.stderr),
        ));
    }
    // With room again, it installs; then a start onto a read-only runtime
    // root fails clearly, starting nothing.
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", coordinate]));
    assert_eq!(out.code, 0, "{out:?}");
    {
        let _tmpfs = Tmpfs::mount(&sandbox.path().join("runtime"), "1m,ro,mode=755");
        let out = run(sandbox
            .copkg()
            .args(["start", "--user", "root", coordinate, SERVICE]));
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("Read-only file system"), "{out:?}");
        table.push(("start, runtime root read-only", out.code, why(&out.stderr)));
    }
    // A start and stop after all that: the service ends.
    let out = run(sandbox
        .copkg()
        .args(["start", "--user", "root", coordinate, SERVICE]));
    assert_eq!(out.code, 0, "{out:?}");
    let record = std::fs::read_to_string(
        sandbox
            .path()
            .join(format!("runtime/.copkg/services/{SERVICE}.json")),
    )
    .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let pid = record["processes"][0]["pid"].as_i64().unwrap() as i32;
    let out = run(sandbox.copkg().args(["stop", SERVICE]));
    assert_eq!(out.code, 0, "{out:?}");
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.trim_start().chars().next())
            })
            .is_some_and(|state| state != 'Z' && state != 'X')
    };
    assert!(!alive(), "the service outlived its stop");
    eprintln!("fault, exit code, what copkg said");
    for (fault, code, said) in table {
        eprintln!("  {fault:<36} {code:>3}  {said}");
    }
}

/// The line of copkg's error that says why (its last cause).
fn why(text: &str) -> String {
    text.lines().last().unwrap_or("").trim().to_owned()
}
