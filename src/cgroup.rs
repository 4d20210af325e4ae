//! A cgroup v2 per service, so that every process a start script launches
//! is tracked however it detaches (double fork, new session, no pid file):
//! the script is placed in the service's cgroup before it execs, and the
//! kernel keeps every descendant there. copkg makes one where it may (as
//! root, on a cgroup2 mount found in /proc/self/mountinfo); the cgroups of
//! one runtime root are grouped under `copkg-<hash of its state dir>`, so two
//! runtime roots on one kernel never collide.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::Digest;

/// Largest `cgroup.procs` read (a pool of thousands of processes fits).
const PROCS_LIMIT: u64 = 4 << 20;

/// A service's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCgroup {
    path: PathBuf,
}

/// The mount point of the cgroup2 file system, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    mounts().0.clone()
}

/// The cgroup2 and v1 memory mount points, read from /proc/self/mountinfo
/// once per process (every placement and stop asks; the mounts do not move
/// under a running copkg).
fn mounts() -> &'static (Option<PathBuf>, Option<PathBuf>) {
    static MOUNTS: std::sync::OnceLock<(Option<PathBuf>, Option<PathBuf>)> =
        std::sync::OnceLock::new();
    MOUNTS.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        (parse_mountinfo(&text), parse_memory_v1(&text))
    })
}

/// The mount point of the cgroup v1 memory hierarchy, if one is mounted
/// (hybrid layouts mount memory there, beside a cgroup2 tree without it).
pub fn memory_v1_mount() -> Option<PathBuf> {
    mounts().1.clone()
}

fn parse_memory_v1(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut fields = after.split_whitespace();
        if fields.next()? != "cgroup" {
            return None;
        }
        let options = fields.nth(1)?;
        if !options.split(',').any(|o| o == "memory") {
            return None;
        }
        Some(PathBuf::from(unescape(before.split_whitespace().nth(4)?)))
    })
}

/// The first cgroup2 mount point in a mountinfo text (octal escapes undone).
fn parse_mountinfo(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = before.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape(mount_point)))
    })
}

/// Undoes mountinfo's `\040`-style octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ServiceCgroup {
    /// The cgroup of `service` of the runtime root whose state dir is
    /// `state_dir`, where copkg may make one: running as root, with a
    /// cgroup2 mount. `None` otherwise (tracking then falls back to what the
    /// start script leaves in its session and process groups).
    pub fn for_service(state_dir: &Path, service: &str) -> Option<ServiceCgroup> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let mount = cgroup2_mount()?;
        let key = crate::extract::hex(&sha2::Sha256::digest(
            state_dir.as_os_str().as_encoded_bytes(),
        ));
        Some(ServiceCgroup {
            path: mount.join(format!("copkg-{}", &key[..16])).join(service),
        })
    }

    /// The cgroup at `path` (from a record).
    pub fn at(path: PathBuf) -> ServiceCgroup {
        ServiceCgroup { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the cgroup (and its parent) where missing.
    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.path)
    }

    /// `cgroup.procs` opened for writing, for a child to move itself in
    /// (writing `0`) between fork and exec.
    pub fn procs_for_writing(&self) -> io::Result<OwnedFd> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(self.path.join("cgroup.procs"))?;
        Ok(file.into())
    }

    /// The pids in the cgroup (empty when it is gone).
    pub fn members(&self) -> Vec<i32> {
        let Ok(file) = std::fs::File::open(self.path.join("cgroup.procs")) else {
            return Vec::new();
        };
        let mut text = String::new();
        let _ = file.take(PROCS_LIMIT).read_to_string(&mut text);
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Kills every process in it at once (`cgroup.kill`), then waits up to
    /// `limit` for it to be empty; whether it is.
    pub fn kill_all(&self, limit: Duration) -> bool {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.kill"))
        {
            let _ = file.write_all(b"1");
        } else {
            for pid in self.members() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let deadline = Instant::now() + limit;
        while !self.members().is_empty() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Removes the cgroup when it is empty (an error is ignored: it may be
    /// gone, or a process may still be leaving), and its memory cgroup.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.path);
        self.clear_memory_limit();
    }

    /// The service's cgroup in the v1 memory hierarchy: the same path below
    /// that mount as this one below the cgroup2 mount.
    fn memory_v1_dir(&self) -> Option<PathBuf> {
        let relative = self.path.strip_prefix(cgroup2_mount()?).ok()?;
        Some(memory_v1_mount()?.join(relative))
    }

    /// Limits the memory of every process in the service to `bytes`: by
    /// `memory.max` where cgroup v2 lets copkg's subtree have the memory
    /// controller, else by a cgroup in the v1 memory hierarchy that the
    /// service's processes join beside this one. Call before [`Placing`]
    /// starts.
    pub fn limit_memory(&self, bytes: u64) -> io::Result<()> {
        let parent = self.path.parent().unwrap_or(&self.path);
        let available =
            std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
        if available.split_whitespace().any(|c| c == "memory") {
            std::fs::write(parent.join("cgroup.subtree_control"), "+memory")?;
            return std::fs::write(self.path.join("memory.max"), bytes.to_string());
        }
        let Some(dir) = self.memory_v1_dir() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no memory controller: cgroup v2 has none for copkg's cgroups and no cgroup v1 \
                 memory hierarchy is mounted",
            ));
        };
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())
    }

    /// The memory its processes use now, in bytes: `memory.current` where
    /// cgroup v2 accounts it, else the v1 memory cgroup's usage; `None`
    /// where neither accounts for this service.
    pub fn memory_current(&self) -> Option<u64> {
        let read = |path: PathBuf| std::fs::read_to_string(path).ok()?.trim().parse().ok();
        read(self.path.join("memory.current"))
            .or_else(|| read(self.memory_v1_dir()?.join("memory.usage_in_bytes")))
    }

    /// Removes a v1 memory cgroup an earlier start left (it is empty once
    /// the service is stopped), so that a start without a limit has none.
    pub fn clear_memory_limit(&self) {
        if let Some(dir) = self.memory_v1_dir() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The `cgroup.procs` of the service being started, which processes copkg
/// starts meanwhile (scripts, `copkg.spawn`) join before they exec.
static PLACING: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
/// The same, in the v1 memory hierarchy, when the service has a memory
/// limit there.
static PLACING_MEMORY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// While it lives, every process copkg starts joins the cgroup whose
/// `cgroup.procs` it holds open (and its v1 memory cgroup, if it has one).
#[derive(Debug)]
pub struct Placing {
    _procs: OwnedFd,
    _memory: Option<OwnedFd>,
}

impl Placing {
    /// Starts placing new processes into `cgroup`.
    pub fn start(cgroup: &ServiceCgroup) -> io::Result<Placing> {
        use std::os::fd::AsRawFd;
        let procs = cgroup.procs_for_writing()?;
        let memory = match cgroup.memory_v1_dir().filter(|d| d.is_dir()) {
            Some(dir) => Some(ServiceCgroup::at(dir).procs_for_writing()?),
            None => None,
        };
        PLACING.store(procs.as_raw_fd(), std::sync::atomic::Ordering::SeqCst);
        PLACING_MEMORY.store(
            memory.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(Placing {
            _procs: procs,
            _memory: memory,
        })
    }
}

impl Drop for Placing {
    fn drop(&mut self) {
        PLACING.store(-1, std::sync::atomic::Ordering::SeqCst);
        PLACING_MEMORY.store(-1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The raw `cgroup.procs` fd new processes join, if a [`Placing`] lives.
pub fn placing_fd() -> Option<std::os::fd::RawFd> {
    let fd = PLACING.load(std::sync::atomic::Ordering::SeqCst);
    (fd >= 0).then_some(fd)
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `fd`.
/// Called between fork and exec: only write(2), which is async-signal-safe.
pub fn join_in_child(fd: std::os::fd::RawFd) -> io::Result<()> {
    let memory = PLACING_MEMORY.load(std::sync::atomic::Ordering::SeqCst);
    for fd in [fd, memory] {
        if fd < 0 {
            continue;
        }
        // SAFETY: write(2) with a static buffer on an fd the parent opened.
        let written = unsafe { nix::libc::write(fd, b"0".as_ptr().cast(), 1) };
        if written != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_mountinfo() {
        let text = "25 30 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let escaped = "41 31 0:38 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(escaped),
            Some(PathBuf::from("/mnt/with space"))
        );
        assert_eq!(parse_mountinfo("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn keys_differ_per_state_dir() {
        // Tests run as root on a kernel with a cgroup2 mount.
        let a = ServiceCgroup::for_service(Path::new("/a/.copkg"), "1.x.y.z").unwrap();
        let b = ServiceCgroup::for_service(Path::new("/b/.copkg"), "1.x.y.z").unwrap();
        assert_ne!(a.path().parent(), b.path().parent());
        assert!(a.path().ends_with("1.x.y.z"));
    }
}
