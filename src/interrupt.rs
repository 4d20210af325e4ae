//! Ctrl-C, SIGTERM and SIGHUP as a clean exit: copkg removes what it was in
//! the middle of writing (the paths registered with [`Cleanup`]) and exits
//! 130, 143 or 129 saying so, instead of dying with a half-written file in
//! a repository. A handler only writes the signal's number into a pipe; a
//! watcher thread does the rest. The signal mask is left alone (children
//! inherit a mask, and a service must get its TERM), and exec resets the
//! handler, so nothing of this reaches a child process.

use std::path::PathBuf;
use std::sync::{Mutex, Once};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::exit::ExitCode;

/// What to undo: a path to remove, a cgroup whose processes to kill, the
/// process group of a script copkg runs, or every process reparented to
/// copkg as a subreaper.
#[derive(Debug)]
enum Undo {
    Remove(PathBuf),
    KillCgroup(PathBuf),
    KillGroup(i32),
    KillDescendants,
    KillProcesses(Vec<crate::state::RecordedProcess>),
}

static REGISTERED: Mutex<Vec<(u64, Undo)>> = Mutex::new(Vec::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);
static INSTALL: Once = Once::new();
/// The signal being handled, once one arrived (0 before).
static RECEIVED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The write end of the pipe the handler writes to (-1 until installed).
static PIPE_WRITE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_signal(signal: nix::libc::c_int) {
    let fd = PIPE_WRITE.load(std::sync::atomic::Ordering::Relaxed);
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
    unsafe {
        nix::libc::write(fd, (&raw const byte).cast(), 1);
    }
}

/// Starts the watcher and installs the handlers. Call once, early in `main`.
pub fn install() {
    INSTALL.call_once(|| {
        let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return;
        };
        PIPE_WRITE.store(
            std::os::fd::IntoRawFd::into_raw_fd(write),
            std::sync::atomic::Ordering::Relaxed,
        );
        let spawned = std::thread::Builder::new()
            .name("copkg-signals".into())
            .spawn(move || {
                use std::io::Read;
                let mut byte = [0u8; 1];
                let mut pipe = std::fs::File::from(read);
                if pipe.read_exact(&mut byte).is_err() {
                    return;
                }
                let signal = Signal::try_from(i32::from(byte[0])).unwrap_or(Signal::SIGTERM);
                RECEIVED.store(signal as i32, std::sync::atomic::Ordering::SeqCst);
                let removed = clean_up();
                let code = match signal {
                    Signal::SIGINT => ExitCode::Interrupted.code(),
                    Signal::SIGTERM => ExitCode::Terminated.code(),
                    _ => 128 + signal as u8,
                };
                eprintln!(
                    "copkg: interrupted by {}{}",
                    signal.as_str(),
                    if removed > 0 {
                        format!("; removed {removed} unfinished file(s)")
                    } else {
                        String::new()
                    }
                );
                std::process::exit(i32::from(code));
            });
        if spawned.is_err() {
            return;
        }
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: the handler only calls write(2), which is async-signal-safe.
            let _ = unsafe { sigaction(signal, &action) };
        }
    });
}

/// Waits for the watcher to end the process when a signal is being
/// handled, so that the work the cleanup broke (a start script it killed)
/// does not end copkg first with another exit code. Returns at once
/// otherwise.
pub fn settle() {
    if RECEIVED.load(std::sync::atomic::Ordering::SeqCst) != 0 {
        loop {
            std::thread::park();
        }
    }
}

/// Removes every registered path; how many there were.
fn clean_up() -> usize {
    let undo = std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()));
    let mut removed = 0;
    for (_, what) in &undo {
        match what {
            Undo::Remove(path) => {
                removed += 1;
                let _ = match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
                    Ok(_) => std::fs::remove_file(path),
                    Err(_) => Ok(()),
                };
            }
            Undo::KillCgroup(path) => {
                let cgroup = crate::cgroup::ServiceCgroup::at(path.clone());
                if !cgroup.members().is_empty() {
                    eprintln!("copkg: ending the processes of the interrupted start");
                }
                cgroup.kill_all(std::time::Duration::from_secs(5));
                cgroup.remove();
            }
            Undo::KillGroup(pgid) => {
                let _ =
                    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pgid), Signal::SIGKILL);
            }
            Undo::KillDescendants => kill_descendants(),
            Undo::KillProcesses(processes) => {
                eprintln!("copkg: ending the processes of the interrupted start");
                for process in processes {
                    // A leader that is still the recorded process takes its
                    // group (its workers) with it.
                    if crate::process::is_running(process.pid, process.start_time)
                        && process.pgrp == process.pid
                    {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(process.pgrp),
                            Signal::SIGKILL,
                        );
                    }
                    let _ = crate::process::signal_exact(
                        process.pid,
                        process.start_time,
                        Signal::SIGKILL,
                    );
                }
            }
        }
    }
    removed
}

/// Kills every descendant of copkg, by pid and start time, until none is
/// left (a dying process may have had children of its own, reparented to
/// copkg as their subreaper); at most a few rounds.
fn kill_descendants() {
    let me = std::process::id() as i32;
    for round in 0..20 {
        let left = crate::process::descendants(me);
        if left.is_empty() {
            return;
        }
        if round == 0 {
            eprintln!("copkg: ending the processes of the interrupted start");
        }
        for (pid, stat) in left {
            let _ = crate::process::signal_exact(pid, stat.start_time, Signal::SIGKILL);
        }
        // Reap them, so that they leave the list.
        while let Ok(status) =
            nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A path removed if copkg is interrupted while this guard lives.
#[derive(Debug)]
pub struct Cleanup {
    id: u64,
}

impl Cleanup {
    /// Registers `path` (a temp file or dir copkg is writing).
    pub fn register(path: impl Into<PathBuf>) -> Cleanup {
        Self::push(Undo::Remove(path.into()))
    }

    /// Registers a cgroup whose processes are killed (a start in progress).
    pub fn kill_cgroup(path: impl Into<PathBuf>) -> Cleanup {
        Self::push(Undo::KillCgroup(path.into()))
    }

    /// Registers the process group of a script copkg runs: killed with it.
    pub fn kill_group(pgid: i32) -> Cleanup {
        Self::push(Undo::KillGroup(pgid))
    }

    /// Registers every process reparented to copkg (a start without a
    /// cgroup, while copkg is the script's subreaper).
    pub fn kill_descendants() -> Cleanup {
        Self::push(Undo::KillDescendants)
    }

    /// Registers the processes a start recorded (without a cgroup), ended
    /// if copkg is interrupted before the start is done.
    pub fn kill_processes(processes: Vec<crate::state::RecordedProcess>) -> Cleanup {
        Self::push(Undo::KillProcesses(processes))
    }

    fn push(undo: Undo) -> Cleanup {
        let id = {
            let mut next = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        REGISTERED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, undo));
        Cleanup { id }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        REGISTERED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}
