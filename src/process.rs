//! Processes as /proc shows them, and signals that can never hit the wrong
//! process: a pid is identified by its pid *and* its start time (field 22 of
//! `/proc/PID/stat`), and signals go through a pidfd opened and then checked
//! against that start time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process state letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
    /// Process group.
    pub pgrp: i32,
    /// Session.
    pub session: i32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether the process is alive (not a zombie or dead).
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the *last* `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), read once; `None`
/// where the kernel does not say. A pid and a start time in clock ticks
/// since boot mean nothing in another boot.
pub fn boot_id() -> Option<&'static str> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            let id = text.trim();
            (!id.is_empty() && id.len() <= 64).then(|| id.to_owned())
        })
        .as_deref()
}

/// Reads `/proc/PID/stat`; `None` when there is no such process.
pub fn stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat(&text))
}

/// Whether `pid` is a live process that started at `start_time`.
pub fn is_running(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.is_alive() && s.start_time == start_time)
}

/// Every live process in process group `pgrp` that started no earlier
/// than `since` (a process group id can outlive its leader).
pub fn group_members(pgrp: i32, since: u64) -> Vec<(i32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| s.pgrp == pgrp && s.is_alive() && s.start_time >= since)
        .map(|(pid, s)| (pid, s.start_time))
        .collect()
}

/// Every live process by its process group, from one scan of /proc: what
/// a command that looks at many services at once (status, export, the
/// in-use checks) asks instead of scanning /proc once per service.
pub fn groups() -> std::collections::HashMap<i32, Vec<(i32, u64)>> {
    let mut groups: std::collections::HashMap<i32, Vec<(i32, u64)>> = Default::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if let Some(stat) = stat(pid).filter(ProcStat::is_alive) {
            groups
                .entry(stat.pgrp)
                .or_default()
                .push((pid, stat.start_time));
        }
    }
    groups
}

/// Every live descendant of `ancestor` (children, their children, …), with
/// its start time, from one scan of /proc.
pub fn descendants(ancestor: i32) -> Vec<(i32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<(i32, ProcStat)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| s.is_alive())
        .collect();
    let mut found: Vec<(i32, ProcStat)> = Vec::new();
    let mut parents = vec![ancestor];
    while let Some(parent) = parents.pop() {
        for (pid, stat) in all.iter().filter(|(_, s)| s.ppid == parent) {
            if !found.iter().any(|(p, _)| p == pid) {
                found.push((*pid, *stat));
                parents.push(*pid);
            }
        }
    }
    found.sort_by_key(|(pid, _)| *pid);
    found
}

/// The outcome of [`signal_exact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signalled {
    /// The signal was delivered to the process.
    Sent,
    /// No process with that pid and start time exists: nothing was sent.
    Gone,
}

/// Sends `signal` to `pid` only if it is the process that started at
/// `start_time`: a pidfd pins the process, then its start time is checked,
/// then the signal goes through the pidfd, so a reused pid is never hit.
pub fn signal_exact(pid: i32, start_time: u64, signal: Signal) -> io::Result<Signalled> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(nix::libc::ESRCH) => Ok(Signalled::Gone),
            _ => Err(err),
        };
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !is_running(pid, start_time) {
        return Ok(Signalled::Gone);
    }
    // SAFETY: pidfd_send_signal reads its integer arguments; info is null.
    let sent = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as i32,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if sent < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(nix::libc::ESRCH) => Ok(Signalled::Gone),
            _ => Err(err),
        };
    }
    Ok(Signalled::Sent)
}

/// Waits for `child` to exit until `deadline` (none: for as long as it
/// takes); `None` when the deadline came first. Sleeps on a pidfd where the
/// kernel has them (5.3+), so the exit is seen at once rather than at the
/// next poll; else polls every 2 ms.
pub fn wait_child(
    child: &mut std::process::Child,
    deadline: Option<std::time::Instant>,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of this process.
    let raw =
        unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, child.id() as nix::libc::pid_t, 0) };
    // SAFETY: a non-negative result is a new descriptor nothing else owns.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) });
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                Some(left)
            }
            None => None,
        };
        match &pidfd {
            Some(pidfd) => {
                let mut fds = [nix::libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: nix::libc::POLLIN,
                    revents: 0,
                }];
                let ms = left.map_or(-1, |l| l.as_millis().clamp(1, i32::MAX as u128) as i32);
                // SAFETY: one pollfd, owned above, for the length given.
                unsafe { nix::libc::poll(fds.as_mut_ptr(), 1, ms) };
            }
            None => std::thread::sleep(left.map_or(std::time::Duration::from_millis(2), |l| {
                l.min(std::time::Duration::from_millis(2))
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_after_the_last_parenthesis() {
        let rest = "S 1 100 100 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        for comm in ["sleep", "a b", "evil) R 1 2 3 4 (x", "))"] {
            let stat = parse_stat(&format!("4242 ({comm}) {rest}")).unwrap();
            assert_eq!(stat.state, 'S', "{comm}");
            assert_eq!((stat.ppid, stat.pgrp, stat.session), (1, 100, 100));
            assert_eq!(stat.start_time, 123456, "{comm}");
        }
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert!(
            !parse_stat(&format!("1 (z) Z{}", &rest[1..]))
                .unwrap()
                .is_alive()
        );
    }

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let own = stat(me).unwrap();
        assert!(is_running(me, own.start_time));
        assert!(!is_running(me, own.start_time + 1));
        assert_eq!(
            signal_exact(me, own.start_time + 1, Signal::SIGTERM).unwrap(),
            Signalled::Gone
        );
        assert_eq!(stat(0), None);
    }
}
