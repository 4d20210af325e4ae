//! Starting, stopping and inspecting services: the detached-spawn
//! primitive, running a package's start/stop script with bounded time and
//! output, checking what it started, stopping on a signal schedule without
//! ever signalling the wrong process, and status.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::account::Account;
use crate::exit::{Coded, ExitCode};
use crate::process::{self, Signalled};
use crate::runtime::{RuntimeDir, RuntimeError};
use crate::state::{RecordedProcess, ServiceRecord};

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Spawning a process failed.
    #[error("cannot start {}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A start or stop script failed or timed out.
    #[error("{} {outcome}{}", script.display(), show_output(output))]
    Script {
        /// The script.
        script: PathBuf,
        /// How it ended.
        outcome: String,
        /// The tail of what it printed.
        output: String,
    },
    /// The start script succeeded but left no live process in run/start.pid.
    #[error("{reason}{}", show_output(console))]
    NoLiveProcess {
        /// What was found instead.
        reason: String,
        /// The tail of console/ and of the script's output.
        console: String,
    },
    /// The service is already running.
    #[error("{service} is already running (pid {})", pids_text(pids))]
    AlreadyRunning {
        /// The service coordinate.
        service: String,
        /// Its live pids.
        pids: Vec<i32>,
    },
    /// The service is not running.
    #[error("{service} is not running")]
    NotRunning {
        /// The service coordinate.
        service: String,
    },
    /// The service outlived the whole stop schedule.
    #[error(
        "{service} still runs after the stop schedule {schedule} (pid {})",
        pids_text(pids)
    )]
    StillRunning {
        /// The service coordinate.
        service: String,
        /// The schedule used.
        schedule: String,
        /// The pids still alive.
        pids: Vec<i32>,
    },
    /// Signalling a process failed (other than it being gone).
    #[error("cannot signal pid {pid}")]
    Signal {
        /// The pid.
        pid: i32,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A stop schedule is malformed.
    #[error(
        "invalid stop schedule `{0}`: expected SIGNAL/SECONDS pairs ending in KILL, such as TERM/10/KILL/5"
    )]
    Schedule(String),
    /// A runtime-dir operation failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl Coded for ServiceError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ServiceError::Spawn { .. }
            | ServiceError::Script { .. }
            | ServiceError::NoLiveProcess { .. } => ExitCode::ScriptFailed,
            ServiceError::AlreadyRunning { .. } => ExitCode::InUse,
            ServiceError::NotRunning { .. } => ExitCode::NotRunning,
            ServiceError::StillRunning { .. } | ServiceError::Signal { .. } => ExitCode::Failure,
            ServiceError::Schedule(_) => ExitCode::Usage,
            ServiceError::Runtime(source) => source.exit_code(),
        }
    }
}

fn show_output(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!("; its output ends with:\n{}", output.trim_end())
    }
}

fn pids_text(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The environment every script and service starts from: that of the
/// account copkg runs as (`PATH`, `LANG`, `HOME`, `USER`, `LOGNAME`), with
/// what the service's settings add ([`Launch`]), never copkg's own (a
/// repository URL with a password, tokens) — SECURITY.md F7.
pub fn clean_environment() -> Vec<(OsString, OsString)> {
    let mut env = crate::account::current().environment();
    for (name, value) in Launch::current().env {
        env.retain(|(k, _)| k.as_os_str() != name.as_str());
        env.push((name.into(), value.into()));
    }
    env
}

/// What every process copkg starts for a service gets besides its account:
/// the environment and the open-file limit its settings declare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Launch {
    /// Variables added to the clean environment.
    pub env: Vec<(String, String)>,
    /// RLIMIT_NOFILE (soft and hard), when declared.
    pub nofile: Option<u64>,
}

static LAUNCH: Mutex<Option<Launch>> = Mutex::new(None);

/// While it lives, what copkg starts gets a [`Launch`].
#[derive(Debug)]
pub struct LaunchGuard {
    previous: Option<Launch>,
}

impl Launch {
    /// The launch settings of a service's settings.
    pub fn of(settings: &crate::declared::ServiceSettings) -> Launch {
        Launch {
            env: settings
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            nofile: settings.limits.nofile,
        }
    }

    /// Applies to what copkg starts until the guard is dropped.
    pub fn start(self) -> LaunchGuard {
        let mut current = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
        LaunchGuard {
            previous: current.replace(self),
        }
    }

    /// What applies now (none: nothing added).
    pub fn current() -> Launch {
        LAUNCH
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

impl Drop for LaunchGuard {
    fn drop(&mut self) {
        *LAUNCH.lock().unwrap_or_else(|e| e.into_inner()) = self.previous.take();
    }
}

/// Makes sure what copkg starts can be given `nofile` open files: the
/// child sets the limit after std has switched it to the service's
/// account, which may lower its hard limit but never raise it, so copkg
/// first raises its own hard limit (never lowering it) for the child to
/// inherit, where it may (root, with CAP_SYS_RESOURCE). `Err` holds the
/// hard limit that stays below `nofile`.
pub fn allow_nofile(nofile: u64) -> Result<(), u64> {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Ok(());
        }
        if limit.rlim_max >= nofile {
            return Ok(());
        }
        let hard = limit.rlim_max;
        limit.rlim_max = nofile;
        if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(hard);
        }
    }
    Ok(())
}

/// The open-file limit for what copkg starts now, made possible as far as
/// it can be ([`allow_nofile`]; where it cannot, the child's own setrlimit
/// reports the error).
fn nofile_for_launch() -> Option<u64> {
    let nofile = Launch::current().nofile;
    if let Some(n) = nofile {
        let _ = allow_nofile(n);
    }
    nofile
}

/// Sets RLIMIT_NOFILE between fork and exec (setrlimit is
/// async-signal-safe).
fn apply_nofile(nofile: Option<u64>) -> io::Result<()> {
    if let Some(n) = nofile {
        let limit = nix::libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        // SAFETY: setrlimit reads the struct passed and touches nothing else.
        if unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes `command` run as the account set for what copkg starts now, when
/// copkg must switch to it (std drops the supplementary groups first).
fn run_as_current(command: &mut Command) {
    let account = crate::account::current();
    if account.needs_switch() {
        command.uid(account.uid).gid(account.gid);
    }
}

/// What to spawn detached.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables added to the clean environment.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// File its stdout is appended to.
    pub stdout: PathBuf,
    /// File its stderr is appended to.
    pub stderr: PathBuf,
}

/// Marks every descriptor above 2 close-on-exec, whoever opened it (copkg's
/// parent may have passed some). Called between fork and exec, so it uses
/// only async-signal-safe calls: the close_range syscall, else fcntl.
fn mark_inherited_fds_cloexec() {
    // SAFETY: close_range and fcntl only take integers and touch the
    // descriptor table of this (forked, single-threaded) process.
    unsafe {
        let marked = nix::libc::syscall(
            nix::libc::SYS_close_range,
            3u32,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        );
        if marked != 0 {
            for fd in 3..4096 {
                nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC);
            }
        }
    }
}

/// Starts a program fully detached and returns its pid and start time: its
/// own session and process group, stdin from /dev/null, stdout and stderr
/// appended to files, no inherited descriptors beyond 0–2, umask 022, the
/// given cwd, and not a child of copkg (a double fork: the intermediate
/// process exits at once and is reaped here).
pub fn spawn_detached(spec: &SpawnSpec) -> Result<RecordedProcess, ServiceError> {
    let spawn_err = |source| ServiceError::Spawn {
        program: spec.program.clone(),
        source,
    };
    // The console files are the service's: never through a final link,
    // never a FIFO that would block, only a regular file.
    let open = |path: &Path| -> io::Result<std::fs::File> {
        if path == Path::new("/dev/null") {
            return std::fs::OpenOptions::new().append(true).open(path);
        }
        // Resolved by descriptor: a link in a dir the service's account can
        // write (console/ swapped for one) is refused, never followed.
        let parent = crate::safepath::parent_of(path)
            .map_err(|e| io::Error::other(crate::exit::one_line(&e)))?;
        use nix::fcntl::OFlag;
        let fd = nix::fcntl::openat(
            parent.dir(),
            parent.name(),
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .map_err(io::Error::from)?;
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
        )
        .map_err(io::Error::from)?;
        Ok(file)
    };
    let stdout = open(&spec.stdout).map_err(spawn_err)?;
    let stderr = open(&spec.stderr).map_err(spawn_err)?;
    let (pid_read, pid_write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
    let pid_write_fd = pid_write.as_raw_fd();

    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(clean_environment())
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: runs in the forked child before exec and calls only
    // async-signal-safe functions: write (joining the service's cgroup),
    // fork, _exit, setsid, umask, close_range (a raw syscall) and fcntl. It
    // touches no locks or heap.
    run_as_current(&mut command);
    let cgroup = crate::cgroup::placing_fd();
    let nofile = nofile_for_launch();
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = cgroup {
                crate::cgroup::join_in_child(fd)?;
            }
            apply_nofile(nofile)?;
            match nix::libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                grandchild => {
                    let bytes = grandchild.to_ne_bytes();
                    nix::libc::write(pid_write_fd, bytes.as_ptr().cast(), bytes.len());
                    nix::libc::_exit(0);
                }
            }
            if nix::libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            nix::libc::umask(0o022);
            mark_inherited_fds_cloexec();
            Ok(())
        });
    }
    let mut intermediate = command.spawn().map_err(spawn_err)?;
    drop(pid_write);
    intermediate.wait().map_err(spawn_err)?;
    let mut bytes = [0u8; 4];
    std::fs::File::from(pid_read)
        .read_exact(&mut bytes)
        .map_err(spawn_err)?;
    let pid = i32::from_ne_bytes(bytes);
    let stat = process::stat(pid)
        .ok_or_else(|| spawn_err(io::Error::other(format!("pid {pid} exited at once"))))?;
    Ok(RecordedProcess {
        pid,
        start_time: stat.start_time,
        pgrp: stat.pgrp,
    })
}

/// How to run a start or stop script.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// The script.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables added to the clean environment.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// How long it may run.
    pub timeout: Duration,
    /// How many bytes of its output are kept (the last ones).
    pub output_limit: usize,
}

/// What a script printed, keeping only the last bytes.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > self.limit {
            let excess = self.bytes.len() - self.limit;
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    fn text(&self) -> String {
        let mut text = String::new();
        if self.dropped > 0 {
            text.push_str(&format!("[{} earlier bytes not kept]\n", self.dropped));
        }
        text.push_str(&String::from_utf8_lossy(&self.bytes));
        text
    }
}

/// Runs a start or stop script to completion: stdin /dev/null, stdout and
/// stderr captured (the last `output_limit` bytes kept, the rest read and
/// dropped), killed with its process group when it overruns `timeout`.
/// Returns its output; a non-zero exit or a timeout is an error carrying it.
pub fn run_script(run: &ScriptRun) -> Result<String, ServiceError> {
    // One pipe for stdout and stderr, so that what the script printed is
    // kept in the order it printed it.
    let (read_end, write_end) = std::io::pipe().map_err(|source| ServiceError::Spawn {
        program: run.program.clone(),
        source,
    })?;
    let write_copy = write_end
        .try_clone()
        .map_err(|source| ServiceError::Spawn {
            program: run.program.clone(),
            source,
        })?;
    let mut command = Command::new(&run.program);
    command
        .args(&run.args)
        .env_clear()
        .envs(clean_environment())
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&run.cwd)
        .stdin(Stdio::null())
        .stdout(write_end)
        .stderr(write_copy)
        .process_group(0);
    run_as_current(&mut command);
    let cgroup = crate::cgroup::placing_fd();
    let nofile = nofile_for_launch();
    // SAFETY: the hook only writes to an open fd (joining the service's
    // cgroup) and marks descriptors close-on-exec (async-signal-safe).
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = cgroup {
                crate::cgroup::join_in_child(fd)?;
            }
            apply_nofile(nofile)?;
            mark_inherited_fds_cloexec();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|source| spawn_error(&run.program, source))?;
    // Ctrl-C or SIGTERM meanwhile ends the script with copkg.
    let _interrupted = crate::interrupt::Cleanup::kill_group(child.id() as i32);
    // The parent's copies of the write end must go, or the reader never
    // sees the end of the output.
    drop(command);
    // The reader is detached: a service the script started may keep the
    // pipe open long after the script itself is gone.
    let mut pipes = PipeThreads::new();
    let tail = pipes.tail_of(read_end, run.output_limit);
    let status =
        wait_or_kill_group(&mut child, run.timeout).map_err(|source| ServiceError::Spawn {
            program: run.program.clone(),
            source,
        })?;
    pipes.finish(PIPE_GRACE);
    let output = tail.lock().unwrap_or_else(|e| e.into_inner()).text();
    let outcome = match status {
        None => format!(
            "did not finish within {} s and was killed",
            run.timeout.as_secs_f64()
        ),
        Some(status) if status.success() => return Ok(output),
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("failed with exit code {code}"),
            (_, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "failed".to_owned(),
        },
    };
    Err(ServiceError::Script {
        script: run.program.clone(),
        outcome,
        output,
    })
}

/// How long, once a child has exited, the threads on its pipes get to reach
/// the end of them.
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// Threads copying a child's pipes. They are never joined: something the
/// child started in the background may hold a pipe open for as long as it
/// runs, and then what came so far is what counts.
struct PipeThreads {
    done_tx: std::sync::mpsc::Sender<()>,
    done: std::sync::mpsc::Receiver<()>,
    count: usize,
}

impl PipeThreads {
    fn new() -> PipeThreads {
        let (done_tx, done) = std::sync::mpsc::channel();
        PipeThreads {
            done_tx,
            done,
            count: 0,
        }
    }

    fn spawn(&mut self, copy: impl FnOnce() + Send + 'static) {
        let done = self.done_tx.clone();
        self.count += 1;
        std::thread::spawn(move || {
            copy();
            let _ = done.send(());
        });
    }

    /// Keeps the last `limit` bytes of what comes out of `pipe`.
    fn tail_of(&mut self, mut pipe: impl Read + Send + 'static, limit: usize) -> Arc<Mutex<Tail>> {
        let tail = Arc::new(Mutex::new(Tail {
            limit,
            ..Tail::default()
        }));
        let kept = Arc::clone(&tail);
        self.spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&buf[..n]);
            }
        });
        tail
    }

    /// Waits until every thread reached the end of its pipe, or `grace` passed.
    fn finish(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for _ in 0..self.count {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                return;
            }
        }
    }
}

/// Waits for a child that leads its own process group for up to `limit`;
/// past it, kills the whole group and returns `None`.
fn wait_or_kill_group(
    child: &mut std::process::Child,
    limit: Duration,
) -> io::Result<Option<std::process::ExitStatus>> {
    if let Some(status) = process::wait_child(child, Some(Instant::now() + limit))? {
        return Ok(Some(status));
    }
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGKILL,
    );
    let _ = child.wait();
    Ok(None)
}

/// How to run a helper process of copkg's own (such as a Lua hook run as
/// a service's account): a clean environment, input on stdin, stdout kept
/// up to a limit, the tail of stderr kept, killed with its process group
/// when it overruns its time.
#[derive(Debug, Clone)]
pub struct CapturedRun {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Its whole environment (nothing of copkg's own is passed on).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The account to run as, when copkg must switch to it.
    pub account: Option<Account>,
    /// What it reads on stdin.
    pub stdin: Vec<u8>,
    /// How long it may run.
    pub timeout: Duration,
    /// Most bytes of stdout kept; more is an error.
    pub stdout_limit: usize,
}

/// What a [`CapturedRun`] printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Whether it exited 0.
    pub success: bool,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// The tail of its stderr.
    pub stderr: String,
}

/// Runs a helper process to completion; see [`CapturedRun`]. A timeout or
/// an stdout over the limit is an error; a non-zero exit is reported in
/// [`Captured::success`] with what it printed.
pub fn run_captured(run: &CapturedRun) -> Result<Captured, ServiceError> {
    let spawn_err = |source| ServiceError::Spawn {
        program: run.program.clone(),
        source,
    };
    let mut command = Command::new(&run.program);
    command
        .args(&run.args)
        .env_clear()
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&run.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(account) = &run.account {
        // std drops the supplementary groups (setgroups) before setuid.
        command.uid(account.uid).gid(account.gid);
    }
    let cgroup = crate::cgroup::placing_fd();
    let nofile = nofile_for_launch();
    // SAFETY: the hook only writes to an open fd (joining the service's
    // cgroup) and marks descriptors close-on-exec (async-signal-safe).
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = cgroup {
                crate::cgroup::join_in_child(fd)?;
            }
            apply_nofile(nofile)?;
            mark_inherited_fds_cloexec();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(spawn_err)?;
    let _interrupted = crate::interrupt::Cleanup::kill_group(child.id() as i32);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = run.stdin.clone();
    let mut pipes = PipeThreads::new();
    pipes.spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let limit = run.stdout_limit;
    let answer = Arc::new(Mutex::new(Vec::new()));
    let answer_copy = Arc::clone(&answer);
    pipes.spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut bytes = answer_copy.lock().unwrap_or_else(|e| e.into_inner());
            // Past the limit the rest is drained, so the child never blocks.
            if bytes.len() <= limit {
                bytes.extend_from_slice(&buf[..n]);
            }
        }
    });
    let tail = pipes.tail_of(child.stderr.take().expect("stderr is piped"), 16 * 1024);
    let status = wait_or_kill_group(&mut child, run.timeout).map_err(spawn_err)?;
    pipes.finish(PIPE_GRACE);
    let stdout = std::mem::take(&mut *answer.lock().unwrap_or_else(|e| e.into_inner()));
    let stderr = tail.lock().unwrap_or_else(|e| e.into_inner()).text();
    let Some(status) = status else {
        return Err(ServiceError::Script {
            script: run.program.clone(),
            outcome: format!(
                "did not finish within {} s and was killed",
                run.timeout.as_secs_f64()
            ),
            output: stderr,
        });
    };
    if stdout.len() > run.stdout_limit {
        return Err(ServiceError::Script {
            script: run.program.clone(),
            outcome: format!("printed more than {} bytes", run.stdout_limit),
            output: stderr,
        });
    }
    Ok(Captured {
        success: status.success(),
        stdout,
        stderr,
    })
}

/// A script that could not be started: when the file is there but exec
/// says it is not, its `#!` interpreter is what is missing, and the error
/// says so.
fn spawn_error(program: &Path, source: io::Error) -> ServiceError {
    if source.kind() == io::ErrorKind::NotFound && program.is_file() {
        let mut first = [0u8; 256];
        let line = std::fs::File::open(program)
            .and_then(|mut f| f.read(&mut first))
            .ok()
            .map(|n| {
                String::from_utf8_lossy(&first[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default();
        if let Some(interpreter) = line.strip_prefix("#!") {
            return ServiceError::Script {
                script: program.to_owned(),
                outcome: format!(
                    "cannot run: its interpreter `{}` (from its #! line) is missing",
                    interpreter.trim()
                ),
                output: String::new(),
            };
        }
    }
    ServiceError::Spawn {
        program: program.to_owned(),
        source,
    }
}

/// The state of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum ServiceState {
    /// Recorded processes are alive.
    Running {
        /// Live pids.
        pids: Vec<i32>,
    },
    /// Never started, or stopped by copkg.
    Stopped,
    /// Started by copkg and gone without being stopped.
    Crashed,
    /// `run/start.pid` names processes that are not what copkg recorded
    /// (dead, or a reused pid).
    StalePidfile,
    /// Its last start failed (or copkg died during it) and nothing of it runs.
    Failed {
        /// Why.
        reason: String,
    },
    /// copkg's record of the service is unreadable.
    BadRecord {
        /// What is wrong with it.
        reason: String,
    },
}

impl ServiceState {
    /// The state's name as printed.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceState::Running { .. } => "running",
            ServiceState::Stopped => "stopped",
            ServiceState::Crashed => "crashed",
            ServiceState::StalePidfile => "stale-pidfile",
            ServiceState::BadRecord { .. } => "bad-record",
            ServiceState::Failed { .. } => "failed",
        }
    }
}

/// Every live process that belongs to a recorded service: the recorded pids
/// whose start times still match, and, for a recorded process that led its
/// own process group, the members of that group started no earlier than it
/// (a group id is not reused while the group has members). copkg itself is
/// never among them.
pub fn live_processes(record: &ServiceRecord) -> Vec<(i32, u64)> {
    live_processes_in(record, &Groups::Live)
}

/// Where [`live_processes`] finds the members of a process group.
pub enum Groups {
    /// /proc as it is at each question: for commands that act on what
    /// they find (stop, cleanup).
    Live,
    /// One scan of /proc, made at the first question and kept: for
    /// commands that report on many services at once, so that they scan
    /// /proc once and not once per service.
    Snapshot(std::cell::OnceCell<std::collections::HashMap<i32, Vec<(i32, u64)>>>),
}

impl Groups {
    /// A snapshot, taken when first asked.
    pub fn snapshot() -> Groups {
        Groups::Snapshot(std::cell::OnceCell::new())
    }

    fn members(&self, pgrp: i32, since: u64) -> Vec<(i32, u64)> {
        match self {
            Groups::Live => process::group_members(pgrp, since),
            Groups::Snapshot(table) => table
                .get_or_init(process::groups)
                .get(&pgrp)
                .map(|members| {
                    members
                        .iter()
                        .filter(|(_, start)| *start >= since)
                        .copied()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// [`live_processes`], with process groups looked up in `groups`.
pub fn live_processes_in(record: &ServiceRecord, groups: &Groups) -> Vec<(i32, u64)> {
    // A pid and a start time since boot name nothing across a reboot.
    if record.from_another_boot() {
        return Vec::new();
    }
    let me = std::process::id() as i32;
    if let Some(path) = &record.cgroup {
        // The kernel keeps every descendant of the start script here.
        let mut live: Vec<(i32, u64)> = crate::cgroup::ServiceCgroup::at(path.clone())
            .members()
            .into_iter()
            .filter(|&pid| pid != me)
            .filter_map(|pid| {
                let stat = process::stat(pid).filter(|s| s.is_alive())?;
                Some((pid, stat.start_time))
            })
            .collect();
        live.sort_unstable();
        return live;
    }
    let mut live: Vec<(i32, u64)> = record
        .processes
        .iter()
        .filter(|p| p.pid != me && process::is_running(p.pid, p.start_time))
        .map(|p| (p.pid, p.start_time))
        .collect();
    let since = record
        .processes
        .iter()
        .map(|p| p.start_time)
        .min()
        .unwrap_or(0);
    let own_group = process::stat(me).map_or(0, |s| s.pgrp);
    let mut leaders: Vec<i32> = record
        .processes
        .iter()
        .filter(|p| p.pgrp == p.pid && p.pgrp > 1 && p.pgrp != own_group)
        .map(|p| p.pgrp)
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    for group in leaders {
        for member in groups.members(group, since) {
            if member.0 != me && !live.contains(&member) {
                live.push(member);
            }
        }
    }
    live.sort_unstable();
    live
}

/// Whether a main process of the service lives, or it has none recorded.
fn main_alive(record: &ServiceRecord) -> bool {
    record.main.is_empty()
        || record
            .main
            .iter()
            .any(|p| process::is_running(p.pid, p.start_time))
}

/// The files the live processes of a service hold open (from /proc/PID/fd).
pub fn open_files(record: &ServiceRecord) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = live_processes(record)
        .into_iter()
        .filter_map(|(pid, _)| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flat_map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
        })
        .filter(|p| p.is_absolute())
        .collect();
    files.sort();
    files.dedup();
    files
}

/// The state of a service from copkg's record (if any) and its runtime dir.
pub fn status(record: Option<&ServiceRecord>, runtime: &RuntimeDir) -> ServiceState {
    status_in(record, runtime, &Groups::Live)
}

/// [`status`], with process groups looked up in `groups`.
pub fn status_in(
    record: Option<&ServiceRecord>,
    runtime: &RuntimeDir,
    groups: &Groups,
) -> ServiceState {
    if let Some(record) = record {
        // Nothing of another boot runs, and a reboot is not a crash; a pid
        // file it left is the service's own leftover, not a stale claim.
        if record.from_another_boot() {
            return ServiceState::Stopped;
        }
        let live = live_processes_in(record, groups);
        if !live.is_empty() && main_alive(record) {
            return ServiceState::Running {
                pids: live.iter().map(|(pid, _)| *pid).collect(),
            };
        }
        if let Some(reason) = &record.failed {
            return ServiceState::Failed {
                reason: reason.clone(),
            };
        }
        if record.starting {
            return ServiceState::Failed {
                reason: "copkg ended before the start finished".to_owned(),
            };
        }
        if record.stopped_at.is_none() || !live.is_empty() {
            return ServiceState::Crashed;
        }
    }
    // Not started by copkg (or stopped by it): a pid file left here, trusted
    // or not, names nothing copkg will act on.
    if matches!(runtime.read_pidfile(), Ok(None)) {
        ServiceState::Stopped
    } else {
        ServiceState::StalePidfile
    }
}

/// A signal by name, with or without `SIG` (`HUP`, `sigusr1`).
pub fn parse_signal(name: &str) -> Option<Signal> {
    let name = name.trim().to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse().ok()
}

/// A stop schedule: signals and how long to wait after each.
#[derive(Debug, Clone, PartialEq)]
pub struct StopSchedule {
    steps: Vec<(Signal, Duration)>,
    text: String,
}

impl StopSchedule {
    /// Parses `TERM/10/KILL/5` (signal names with or without `SIG`, seconds
    /// as decimals).
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        let schedule = Self::parse_steps(text)?;
        // Anything but KILL last could leave a service running for good.
        if schedule.steps.last().map(|(signal, _)| *signal) != Some(Signal::SIGKILL) {
            return Err(ServiceError::Schedule(text.to_owned()));
        }
        Ok(schedule)
    }

    /// The steps of a schedule, whatever its last signal.
    fn parse_steps(text: &str) -> Result<Self, ServiceError> {
        let bad = || ServiceError::Schedule(text.to_owned());
        let parts: Vec<&str> = text.split('/').map(str::trim).collect();
        if parts.len() < 2 || !parts.len().is_multiple_of(2) {
            return Err(bad());
        }
        let mut steps = Vec::new();
        for pair in parts.chunks(2) {
            let name = pair[0].to_ascii_uppercase();
            let name = if name.starts_with("SIG") {
                name
            } else {
                format!("SIG{name}")
            };
            let signal: Signal = name.parse().map_err(|_| bad())?;
            let seconds: f64 = pair[1].parse().map_err(|_| bad())?;
            if !seconds.is_finite() || !(0.0..=3600.0).contains(&seconds) {
                return Err(bad());
            }
            steps.push((signal, Duration::from_secs_f64(seconds)));
        }
        Ok(StopSchedule {
            steps,
            text: text.to_owned(),
        })
    }
}

impl Default for StopSchedule {
    fn default() -> Self {
        StopSchedule::parse("TERM/10/KILL/5").expect("the default schedule parses")
    }
}

/// Stops the processes of a recorded service by the schedule: each signal
/// goes only to processes whose start time still matches; between signals
/// copkg waits until they are gone or the step's time is up.
pub fn stop_by_signals(
    record: &ServiceRecord,
    schedule: &StopSchedule,
) -> Result<Signal, ServiceError> {
    if live_processes(record).is_empty() {
        return Err(ServiceError::NotRunning {
            service: record.service.clone(),
        });
    }
    for (signal, wait) in &schedule.steps {
        for (pid, start_time) in live_processes(record) {
            match process::signal_exact(pid, start_time, *signal) {
                Ok(Signalled::Sent | Signalled::Gone) => {}
                Err(source) => return Err(ServiceError::Signal { pid, source }),
            }
        }
        if wait_until_gone(record, *wait) {
            return Ok(*signal);
        }
    }
    let pids: Vec<i32> = live_processes(record).iter().map(|(pid, _)| *pid).collect();
    if pids.is_empty() {
        return Ok(schedule.steps.last().map_or(Signal::SIGKILL, |(s, _)| *s));
    }
    Err(ServiceError::StillRunning {
        service: record.service.clone(),
        schedule: schedule.text.clone(),
        pids,
    })
}

impl StopSchedule {
    /// Its first signal and how long the service is given after it.
    pub fn first(&self) -> (Signal, Duration) {
        self.steps[0]
    }
}

/// Waits up to `limit` for every process of the service to be gone.
pub fn wait_until_gone(record: &ServiceRecord, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(2);
    loop {
        if live_processes(record).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse() {
        let s = StopSchedule::parse("TERM/10/KILL/5").unwrap();
        assert_eq!(
            s.steps,
            vec![
                (Signal::SIGTERM, Duration::from_secs(10)),
                (Signal::SIGKILL, Duration::from_secs(5))
            ]
        );
        let s = StopSchedule::parse("sigint/0.5/kill/1").unwrap();
        assert_eq!(
            s.steps,
            vec![
                (Signal::SIGINT, Duration::from_millis(500)),
                (Signal::SIGKILL, Duration::from_secs(1))
            ]
        );
        for bad in [
            "",
            "TERM",
            "TERM/x",
            "NOPE/1",
            "TERM/1/KILL",
            "TERM/-1",
            "TERM/inf",
            "TERM/10",
            "KILL/1/TERM/1",
        ] {
            assert!(StopSchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_snapshot_of_proc_finds_what_a_live_scan_finds() {
        // A group leader with two children in its group, as a start
        // script's detached service.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & echo ready; wait"])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        let pid = child.id() as i32;
        let stat = process::stat(pid).unwrap();
        let record = ServiceRecord {
            service: "1.a.b.c".into(),
            runtime_path: "1.a.b.c".into(),
            package: "g:a:1".into(),
            package_dir: "/p".into(),
            args: Vec::new(),
            started_at: 0,
            processes: vec![RecordedProcess {
                pid,
                start_time: stat.start_time,
                pgrp: stat.pgrp,
            }],
            main: Vec::new(),
            stopped_at: None,
            cgroup: None,
            starting: false,
            failed: None,
            account: None,
            settings: Default::default(),
            boot_id: None,
        };
        let live = live_processes(&record);
        assert_eq!(live.len(), 3, "{live:?}");
        let snapshot = Groups::snapshot();
        assert_eq!(live_processes_in(&record, &snapshot), live);
        // The snapshot is kept: a second question scans nothing new.
        assert_eq!(live_processes_in(&record, &snapshot), live);
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .ok();
        child.wait().unwrap();
        assert!(live_processes(&record).is_empty());
    }

    #[test]
    fn a_process_outliving_the_schedule_is_an_error_naming_it() {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "trap '' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Once it says so, TERM is ignored (however loaded the machine is).
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        let stat = process::stat(pid).unwrap();
        let record = ServiceRecord {
            service: "1.a.b.c".into(),
            runtime_path: "1.a.b.c".into(),
            package: "g:a:1".into(),
            package_dir: "/p".into(),
            args: Vec::new(),
            started_at: 0,
            processes: vec![RecordedProcess {
                pid,
                start_time: stat.start_time,
                pgrp: stat.pgrp,
            }],
            main: Vec::new(),
            stopped_at: None,
            cgroup: None,
            starting: false,
            failed: None,
            account: None,
            settings: Default::default(),
            boot_id: None,
        };
        // A schedule without KILL only parses here, to reach this case.
        let schedule = StopSchedule::parse_steps("TERM/0.2").unwrap();
        let err = stop_by_signals(&record, &schedule).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "1.a.b.c still runs after the stop schedule TERM/0.2 (pid {pid}"
            )),
            "{err}"
        );
        assert!(process::is_running(pid, stat.start_time));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Tail {
            limit: 4,
            ..Tail::default()
        };
        tail.push(b"abc");
        tail.push(b"defg");
        assert_eq!(tail.text(), "[3 earlier bytes not kept]\ndefg");
    }
}
