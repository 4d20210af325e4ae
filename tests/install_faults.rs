//! shared/SECURITY.md part B: installs under faults, with real processes:
//! SIGKILL at random points, eight concurrent installs, lock files deleted
//! or left behind, durability (checked with strace), and a full disk.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;

const FILES: usize = 400;
const FILE_BYTES: usize = 32 * 1024;

/// An archive of FILES files of FILE_BYTES each, slow enough to unpack that
/// a kill lands inside it.
fn sizeable_archive() -> Vec<u8> {
    let mut tar = Tar::new();
    for i in 0..FILES {
        let data: Vec<u8> = (0..FILE_BYTES)
            .map(|j| ((i * 31 + j * 7) % 253) as u8)
            .collect();
        tar.file(&format!("lib/d{}/f{i}", i % 10), &data, 0o644);
    }
    tar.end().gz()
}

/// The install dir is either absent or complete: marker and every file, whole.
fn assert_absent_or_complete(sandbox: &Sandbox, context: &str) -> bool {
    let dir = sandbox.install_dir();
    if !dir.exists() {
        return false;
    }
    assert!(
        dir.join(".copkg-install.json").is_file(),
        "{context}: install dir without marker"
    );
    for i in 0..FILES {
        let path = dir.join(format!("lib/d{}/f{i}", i % 10));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len,
            FILE_BYTES as u64,
            "{context}: {} is partial",
            path.display()
        );
    }
    true
}

/// A small xorshift generator seeded from the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn b1_sigkill_at_random_points_never_leaves_a_partial_install() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&sizeable_archive());
    let install_cmd = || {
        let mut cmd = sandbox.copkg();
        cmd.args(["-q", "--repo"])
            .arg(sandbox.repo())
            .args(["install", COORD]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    // How long one install takes here, to spread the kills over it.
    let started = Instant::now();
    assert!(install_cmd().status().unwrap().success());
    let full = started.elapsed().as_micros() as u64;
    assert!(assert_absent_or_complete(&sandbox, "first install"));

    let mut rng = Rng::new();
    let (mut killed, mut completed) = (0, 0);
    let mut round = 0;
    while killed < 50 {
        round += 1;
        assert!(round <= 200, "installs finish before the kill too often");
        if sandbox.install_dir().exists() {
            let out = run(sandbox.copkg().args(["uninstall", COORD]));
            assert_eq!(out.code, 0, "{out:?}");
        }
        let mut child = install_cmd().spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(full)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            assert!(status.success(), "round {round}: {status:?}");
            completed += 1;
        }
        assert_absent_or_complete(&sandbox, &format!("round {round}"));
    }
    eprintln!("killed {killed}, completed {completed}");

    // The next run succeeds and cleans every leftover of the killed ones.
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(assert_absent_or_complete(&sandbox, "final install"));
    assert_eq!(
        std::fs::read_dir(sandbox.root().join(".copkg/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn b2_eight_concurrent_installs_extract_once_and_all_succeed() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&sizeable_archive());
    let repo = sandbox.repo();
    let server = FaultServer::start(move |req, _, stream| serve_file(&repo, req, stream));
    let children: Vec<_> = (0..8)
        .map(|_| {
            sandbox
                .copkg()
                .args(["--repo", &server.url, "install", COORD])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut installed = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.starts_with("installed") {
            installed += 1;
        } else {
            assert_eq!(
                stdout,
                format!(
                    "{COORD} is already installed in {}\n",
                    sandbox.install_dir().display()
                )
            );
        }
    }
    assert_eq!(installed, 1, "exactly one process extracts");
    let downloads = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(".tar.gz"))
        .count();
    assert_eq!(downloads, 1);
    assert!(assert_absent_or_complete(
        &sandbox,
        "after concurrent installs"
    ));
}

/// The lock of COORD's install dir: keyed by a hash of its install path.
fn lock_path(sandbox: &Sandbox) -> std::path::PathBuf {
    let key = &sha256_hex(b"com/example/hello/1.0.0")[..32];
    sandbox.root().join(format!(".copkg/locks/{key}.lock"))
}

#[test]
fn b3_lock_file_left_by_a_dead_process_does_not_block() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let lock = lock_path(&sandbox);
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    // A process that held the lock and was killed.
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(lock.exists());
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn b3_lock_file_deleted_while_held_gives_no_double_install() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&sizeable_archive());
    let repo = sandbox.repo();
    let server = FaultServer::start(move |req, _, stream| serve_file(&repo, req, stream));
    let lock = lock_path(&sandbox);
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "flock holder did not take the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // B waits on the held lock and says so.
    let mut waiter = sandbox
        .copkg()
        .args(["--repo", &server.url, "install", COORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        format!(
            "waiting for another copkg working on {COORD} (lock {})\n",
            lock.display()
        )
    );
    // Someone deletes the lock file; C creates a new one and installs.
    std::fs::remove_file(&lock).unwrap();
    let out = run(sandbox
        .copkg()
        .args(["--repo", &server.url, "install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("installed"), "{out:?}");
    // The holder goes away; B notices the lock it got is stale and finds the install.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{COORD} is already installed in {}\n",
            sandbox.install_dir().display()
        )
    );
    let downloads = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(".tar.gz"))
        .count();
    assert_eq!(downloads, 1);
}

/// Holds `lock` with flock(1) until killed; returns once it is held.
fn hold_lock(lock: &std::path::Path) -> std::process::Child {
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let holder = Command::new("flock")
        .arg("--no-fork")
        .arg(lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("flock")
        .arg("-n")
        .arg(lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "flock did not take the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

#[test]
fn a_lock_held_without_progress_times_out_naming_the_coordinate() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let lock = lock_path(&sandbox);
    let mut holder = hold_lock(&lock);
    let started = Instant::now();
    let out = sandbox.install_with_config(r#"{"lockTimeoutSecs": 1}"#);
    let took = started.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "waiting for another copkg working on {COORD} (lock {0})\n\
             error: cannot install {COORD}\n  \
             caused by: timed out waiting for another copkg working on {COORD}: it showed no progress for 1 s (lock {0})\n",
            lock.display()
        )
    );
    assert!(!sandbox.install_dir().exists());
    // Once the lock is free, the same install succeeds.
    let out = sandbox.install_with_config(r#"{"lockTimeoutSecs": 1}"#);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn an_install_making_progress_is_waited_for_past_the_lock_timeout() {
    // A slow but steady download holds the lock for longer than the
    // waiter's timeout: the waiter sees its progress and waits it out (B2).
    let sandbox = Sandbox::new();
    let archive = sizeable_archive();
    sandbox.publish_verified(&archive);
    let repo = sandbox.repo();
    let server = FaultServer::start(move |req, _, stream| {
        use std::io::Write;
        if !req.path.ends_with(".tar.gz") {
            return serve_file(&repo, req, stream);
        }
        let body = std::fs::read(repo.join(req.path.trim_start_matches('/'))).unwrap();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        // About 3 s in all, in 30 slices.
        for chunk in body.chunks(body.len().div_ceil(30)) {
            std::thread::sleep(Duration::from_millis(100));
            if stream.write_all(chunk).is_err() {
                return;
            }
        }
    });
    let config = sandbox.path().join("config.json");
    std::fs::write(&config, r#"{"lockTimeoutSecs": 1}"#).unwrap();
    let install = || {
        sandbox
            .copkg()
            .arg("--config")
            .arg(&config)
            .args(["--repo", &server.url, "install", COORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = install();
    // The second starts once the first holds the lock.
    let lock = lock_path(&sandbox);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lock.exists()
        || Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    {
        assert!(Instant::now() < deadline, "the first install took no lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let second = install();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    assert!(second.status.success(), "{second:?}");
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the wait was not tested"
    );
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        format!(
            "{COORD} is already installed in {}\n",
            sandbox.install_dir().display()
        )
    );
}

#[test]
fn b4_everything_is_durable_before_success_is_reported() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let trace = sandbox.path().join("trace");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=syncfs,fsync,rename,renameat,renameat2,write",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_copkg"))
        .arg("--software-root")
        .arg(sandbox.root())
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", COORD])
        .env("HOME", sandbox.path().join("home"))
        .stdout(Stdio::null())
        .status()
        .expect("strace is needed for the durability test");
    assert!(status.success());
    let calls: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| {
            l.split_once(' ')
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_owned()
        })
        .collect();
    let position = |what: &dyn Fn(&str) -> bool| calls.iter().position(|c| what(c));
    let install_dir = sandbox.install_dir().display().to_string();
    let syncfs = position(&|c| c.starts_with("syncfs(")).expect("no syncfs");
    let rename = position(&|c| c.starts_with("rename") && c.contains(&install_dir))
        .expect("no rename into place");
    let fsync_after = calls[rename..].iter().any(|c| c.starts_with("fsync("));
    let reported =
        position(&|c| c.starts_with("write(1,") && c.contains("installed")).expect("no report");
    assert!(syncfs < rename, "data synced before the rename: {calls:#?}");
    assert!(
        fsync_after,
        "directory entry synced after the rename: {calls:#?}"
    );
    let last_fsync = calls.iter().rposition(|c| c.starts_with("fsync(")).unwrap();
    assert!(
        last_fsync < reported,
        "success reported before everything was durable"
    );
}

#[test]
fn b5_disk_full_is_a_clear_error_with_nothing_left() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&sizeable_archive());
    let mount = sandbox.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount is needed for the disk-full test");
    assert!(status.success(), "mounting a small tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let root = mount.join("software");
    let out = run(sandbox
        .copkg()
        .arg("--software-root")
        .arg(&root)
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert!(!root.join("com").exists());
    assert_eq!(
        std::fs::read_dir(root.join(".copkg/tmp")).unwrap().count(),
        0
    );

    // Room made: the next run succeeds.
    let status = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success());
    let out = run(sandbox
        .copkg()
        .arg("--software-root")
        .arg(&root)
        .arg("--repo")
        .arg(sandbox.repo())
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_filesystem_mounted_inside_the_software_root_takes_installs() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&sizeable_archive());
    let mount = sandbox.root().join("com/example");
    let _tmpfs = Tmpfs::mount(&mount, "64m");
    let temp = mount.join(".copkg-tmp");
    // Leftovers on the mount: of a killed install whose lock is free, and
    // of one still running (it holds its lock), whose marker is already
    // written.
    let free = "0123456789abcdef0123456789abcdef";
    let busy = "fedcba9876543210fedcba9876543210";
    std::fs::create_dir_all(temp.join(format!("{free}.x1/lib"))).unwrap();
    std::fs::create_dir_all(temp.join(format!("{busy}.x1"))).unwrap();
    std::fs::write(
        temp.join(format!("{busy}.x1/.copkg-install.json")),
        format!(
            r#"{{"coordinate": "com.example:ghost:1", "sha256": "{}", "verified": true,
                "source": "s", "installed_at": 0, "unpacked_bytes": 0, "entries": 0}}"#,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let mut holder = hold_lock(&sandbox.root().join(format!(".copkg/locks/{busy}.lock")));

    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    // Every file, in its 10 dirs.
    assert_eq!(
        tree_of(&sandbox.install_dir().join("lib")).len(),
        FILES + 10
    );
    assert!(!temp.join(format!("{free}.x1")).exists(), "leftover kept");
    // list sees the install, not the temp dir.
    let out = run(sandbox.copkg().arg("list"));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("{COORD}\n").as_str())
    );
    let out = run(sandbox.copkg().args(["verify", COORD]));
    assert_eq!(out.code, 0, "{out:?}");

    let out = run(sandbox.copkg().args(["uninstall", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!mount.join("hello").exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::fs::remove_dir_all(temp.join(format!("{busy}.x1"))).unwrap();
    // Nothing left on the mount or in copkg's own dirs.
    assert_eq!(tree_of(&mount), [".copkg-tmp"]);
    for dir in ["tmp", "trash"] {
        assert_eq!(
            tree_of(&sandbox.root().join(".copkg").join(dir)),
            Vec::<String>::new()
        );
    }
    // And it installs again.
    assert_eq!(sandbox.install().code, 0);
}

/// A package's files: (path, content).
type Files = Vec<(String, Vec<u8>)>;

/// A package of `files` distinct files whose content names `coordinate`.
fn package_of(coordinate: &str, files: usize) -> (Vec<u8>, Files) {
    let mut tar = Tar::new();
    let mut expected = Vec::new();
    for i in 0..files {
        let name = format!("lib/f{i}");
        let data = format!("{coordinate} file {i}\n").repeat(200).into_bytes();
        tar.file(&name, &data, 0o644);
        expected.push((name, data));
    }
    (tar.end().gz(), expected)
}

/// Publishes an archive for `coordinate` in the default Maven layout.
fn publish_at(sandbox: &Sandbox, coordinate: &str, archive: &[u8]) {
    let parts: Vec<&str> = coordinate.split(':').collect();
    let dir = sandbox
        .repo()
        .join(parts[0].replace('.', "/"))
        .join(parts[1])
        .join(parts[2]);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{}-{}-copkg.tar.gz", parts[1], parts[2]);
    std::fs::write(dir.join(&name), archive).unwrap();
    std::fs::write(
        dir.join(format!("{name}.sha256")),
        format!("{}  {name}\n", sha256_hex(archive)),
    )
    .unwrap();
}

/// Every installed tree is exactly its archive: each file whole, none extra.
fn assert_trees_match(sandbox: &Sandbox, packages: &[(&str, Files)]) -> usize {
    let out = run(sandbox.copkg().args(["--json", "list"]));
    assert_eq!(out.code, 0, "{out:?}");
    let mut checked = 0;
    for line in out.stdout.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let coordinate = entry["coordinate"].as_str().unwrap();
        let dir = std::path::PathBuf::from(entry["dir"].as_str().unwrap());
        let (_, files) = packages
            .iter()
            .find(|(c, _)| *c == coordinate)
            .unwrap_or_else(|| panic!("unexpected package {coordinate}"));
        for (name, data) in files {
            assert_eq!(
                std::fs::read(dir.join(name)).ok().as_ref(),
                Some(data),
                "{coordinate}: {name} is missing or not what the archive holds"
            );
        }
        let on_disk = std::fs::read_dir(dir.join("lib")).unwrap().count();
        assert_eq!(on_disk, files.len(), "{coordinate}: extra files in lib/");
        checked += 1;
    }
    checked
}

#[test]
fn h1_h2_concurrent_installs_uninstalls_and_lists_never_mix_coordinates() {
    // CI runs it briefly; `COPKG_STORE_SOAK_SECS=60 cargo test h1_h2` runs the minute.
    let seconds: u64 = std::env::var("COPKG_STORE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let sandbox = Sandbox::new();
    let coordinates = [
        "com.example:app:2",
        "com.example:app:2.0",
        "com.example:app:2.0.1",
        "com:example:hello",
        "com.example:hello:1.0.0",
    ];
    let packages: Vec<(&str, Files)> = coordinates
        .iter()
        .map(|c| {
            let (archive, files) = package_of(c, 60);
            publish_at(&sandbox, c, &archive);
            (*c, files)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counts = std::sync::Mutex::new([0usize; 3]);
    std::thread::scope(|scope| {
        for worker in 0..6u64 {
            let sandbox = &sandbox;
            let counts = &counts;
            scope.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
                while Instant::now() < deadline {
                    let coordinate = coordinates[rng.below(coordinates.len() as u64) as usize];
                    let op = rng.below(3) as usize;
                    let args: Vec<&str> = match op {
                        0 => vec!["install", coordinate],
                        1 => vec!["uninstall", coordinate],
                        _ => vec!["list"],
                    };
                    let out = run(sandbox
                        .copkg()
                        .arg("--repo")
                        .arg(sandbox.repo())
                        .args(&args));
                    // Nesting coordinates refuse each other (usage, 2); nothing else fails.
                    let nests = coordinate.contains("hello");
                    assert!(
                        out.code == 0 || (op < 2 && nests && out.code == 2),
                        "{args:?}: {out:?}"
                    );
                    if out.code == 2 {
                        assert!(out.stderr.contains("install dirs may not nest"), "{out:?}");
                    }
                    if op == 2 {
                        let both = out.stdout.lines().filter(|l| l.contains("hello")).count();
                        assert!(
                            both <= 1,
                            "nested packages installed together: {}",
                            out.stdout
                        );
                    }
                    counts.lock().unwrap()[op] += 1;
                }
            });
        }
    });
    let checked = assert_trees_match(&sandbox, &packages);
    // Whatever is left installed also installs again as a no-op, verified.
    for (coordinate, _) in &packages {
        let out = run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .args(["install", coordinate]));
        assert!(out.code == 0 || out.code == 2, "{out:?}");
    }
    let checked_again = assert_trees_match(&sandbox, &packages);
    let counts = counts.into_inner().unwrap();
    eprintln!(
        "h1_h2: {} installs, {} uninstalls, {} lists in {seconds} s; {checked} + {checked_again} trees checked, 0 mismatches",
        counts[0], counts[1], counts[2]
    );
    assert!(counts.iter().all(|&n| n > 0));
}

#[test]
fn h2_nesting_install_dirs_are_refused_both_ways_and_nothing_is_deleted() {
    let sandbox = Sandbox::new();
    let outer = "com:example:hello";
    let (outer_archive, _) = package_of(outer, 3);
    publish_at(&sandbox, outer, &outer_archive);
    sandbox.publish_verified(&good_archive());
    let copkg = |args: &[&str]| run(sandbox.copkg().arg("--repo").arg(sandbox.repo()).args(args));
    let inner_dir = sandbox.install_dir();
    let outer_dir = sandbox.root().join("com/example/hello");
    assert_eq!(copkg(&["install", COORD]).code, 0);
    for verb in ["install", "uninstall"] {
        let out = copkg(&[verb, outer]);
        assert_eq!(out.code, 2, "{verb}: {out:?}");
        assert!(
            out.stderr.ends_with(&format!(
                "{} ({outer}) would contain {} ({COORD}); install dirs may not nest\n",
                outer_dir.display(),
                inner_dir.display()
            )),
            "{verb}: {}",
            out.stderr
        );
        assert!(inner_dir.join(".copkg-install.json").is_file());
    }
    assert_eq!(copkg(&["uninstall", COORD]).code, 0);
    // The empty parents the inner package left do not stand in the way.
    assert_eq!(copkg(&["install", outer]).code, 0);
    let out = copkg(&["install", COORD]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.ends_with(&format!(
            "{} ({COORD}) would lie inside {} ({outer}); install dirs may not nest\n",
            inner_dir.display(),
            outer_dir.display()
        )),
        "{}",
        out.stderr
    );
    assert!(outer_dir.join(".copkg-install.json").is_file());
    assert!(!inner_dir.exists());
}

#[test]
fn leftovers_of_any_coordinate_are_swept_once_their_lock_is_free() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let tmp = sandbox.root().join(".copkg/tmp");
    let locks = sandbox.root().join(".copkg/locks");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(&locks).unwrap();
    // What killed installs of two other install dirs left behind.
    let free = "0123456789abcdef0123456789abcdef";
    let busy = "fedcba9876543210fedcba9876543210";
    for key in [free, busy] {
        std::fs::create_dir_all(tmp.join(format!("{key}.x1/lib"))).unwrap();
        std::fs::write(tmp.join(format!("{key}.x1/lib/big")), vec![0u8; 4096]).unwrap();
    }
    // An install of `busy` is still running: it holds its lock.
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(locks.join(format!("{busy}.lock")))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = sandbox.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!tmp.join(format!("{free}.x1")).exists(), "leftover kept");
    assert!(
        tmp.join(format!("{busy}.x1/lib/big")).exists(),
        "a running install's temp dir was deleted"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// Every path below `dir`, relative, sorted (empty when `dir` is missing).
fn tree_of(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn pack_cmd(sandbox: &Sandbox, dir: &std::path::Path, repo: &std::path::Path) -> Command {
    let mut cmd = sandbox.copkg();
    cmd.arg("pack")
        .arg(dir)
        .args(["--coordinate", COORD, "--out"])
        .arg(repo);
    cmd
}

/// A tree of `mib` MiB that does not compress, slow enough to interrupt.
fn big_tree(sandbox: &Sandbox, mib: usize) -> std::path::PathBuf {
    let dir = sandbox.path().join("big");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..mib {
        let data: Vec<u8> = (0..1 << 20).map(|_| rng.below(256) as u8).collect();
        std::fs::write(dir.join(format!("lib/blob{i}")), data).unwrap();
    }
    dir
}

#[test]
fn h5_a_failed_or_interrupted_pack_leaves_nothing_in_the_repository() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path().join("published");
    // Refused trees: nothing is created, not even the repository dir.
    let bad = sandbox.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", bad.join("passwd")).unwrap();
    let out = run(&mut pack_cmd(&sandbox, &bad, &repo));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!repo.exists(), "a refused pack created {}", repo.display());

    // Interrupted with Ctrl-C (SIGINT) or SIGTERM mid-way: exit 130/143 and
    // no staging dir, archive, sidecar or version dir.
    let big = big_tree(&sandbox, 24);
    std::fs::create_dir_all(&repo).unwrap();
    for (signal, code) in [
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGTERM, 143),
    ] {
        let child = pack_cmd(&sandbox, &big, &repo)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the staging dir exists, then interrupt.
        let deadline = Instant::now() + Duration::from_secs(20);
        while tree_of(&repo).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!tree_of(&repo).is_empty(), "pack never started writing");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.starts_with(&format!("copkg: interrupted by {}", signal.as_str())),
            "{stderr}"
        );
        assert_eq!(
            tree_of(&repo),
            Vec::<String>::new(),
            "left in the repository"
        );
    }

    // A good pack then publishes exactly the archive, its sidecar and the
    // artifact's metadata.
    let out = run(&mut pack_cmd(&sandbox, &big, &repo));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        tree_of(&repo),
        [
            "com",
            "com/example",
            "com/example/hello",
            "com/example/hello/1.0.0",
            "com/example/hello/1.0.0/hello-1.0.0-copkg.tar.gz",
            "com/example/hello/1.0.0/hello-1.0.0-copkg.tar.gz.sha256",
            "com/example/hello/maven-metadata.xml",
        ]
    );
}

#[test]
fn h5_a_full_disk_publishes_nothing_and_a_republish_replaces_both_files() {
    let sandbox = Sandbox::new();
    let mount = sandbox.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount is needed for the disk-full test");
    assert!(status.success(), "mounting a small tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let big = big_tree(&sandbox, 4);
    let out = run(&mut pack_cmd(&sandbox, &big, &mount));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert_eq!(tree_of(&mount), Vec::<String>::new());

    // A republish with --force swaps the version dir whole: the sidecar
    // always matches the archive next to it.
    let small = sandbox.path().join("small-tree");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("a"), "one").unwrap();
    assert_eq!(run(&mut pack_cmd(&sandbox, &small, &mount)).code, 0);
    std::fs::write(small.join("a"), "two").unwrap();
    let out = run(&mut pack_cmd(&sandbox, &small, &mount));
    assert_eq!(out.code, 1, "{out:?}");
    let out = run(pack_cmd(&sandbox, &small, &mount).arg("--force"));
    assert_eq!(out.code, 0, "{out:?}");
    let version = mount.join("com/example/hello/1.0.0");
    let archive = std::fs::read(version.join("hello-1.0.0-copkg.tar.gz")).unwrap();
    let sidecar = std::fs::read_to_string(version.join("hello-1.0.0-copkg.tar.gz.sha256")).unwrap();
    assert!(sidecar.starts_with(&sha256_hex(&archive)), "{sidecar}");
    assert_eq!(tree_of(&mount).len(), 7, "{:?}", tree_of(&mount));
}
