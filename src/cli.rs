//! Command-line definitions (clap) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// copkg installs self-contained software packages atomically and verified,
/// and launches the services in them; site policy lives in Lua.
#[derive(Debug, Parser)]
#[command(name = "copkg", version, about, propagate_version = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command; each has an environment variable.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file to read instead of /etc/copkg/config.json and ~/.copkg/config.json.
    #[arg(
        long,
        global = true,
        env = "COPKG_CONFIG",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Site script (Lua) overriding the built-in default policy.
    #[arg(
        long,
        global = true,
        env = "COPKG_SITE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub site: Option<PathBuf>,
    /// Where packages are installed [default: ~/.copkg/software].
    #[arg(
        long,
        global = true,
        env = "COPKG_SOFTWARE_ROOT",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub software_root: Option<PathBuf>,
    /// Where service runtime dirs live [default: ~/.copkg/runtime].
    #[arg(
        long,
        global = true,
        env = "COPKG_RUNTIME_ROOT",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub runtime_root: Option<PathBuf>,
    /// Repository base (http://, https://, file:// or a path); repeatable, tried in order.
    /// COPKG_REPO takes a comma-separated list.
    #[arg(
        long = "repo",
        global = true,
        env = "COPKG_REPO",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub repos: Vec<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print what would be done and change nothing (prune; other commands
    /// that change the machine refuse it for now).
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what is done.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install packages (a no-op for those already installed).
    Install(InstallArgs),
    /// Remove installed packages.
    Uninstall(UninstallArgs),
    /// List installed packages, one coordinate a line.
    List,
    /// Show where a package installs, where it is fetched from, and its state.
    Resolve(ResolveArgs),
    /// Check installed packages' files against the manifest recorded at install.
    Verify(VerifyArgs),
    /// Take over a package dir the original copkg installed: record its
    /// manifest and a marker (unverified), after checking what it holds.
    Adopt(AdoptArgs),
    /// Remove old versions of each installed artifact, keeping the newest N.
    ///
    /// Versions are ordered as Maven orders them (1.10 after 1.9, 1.0-rc1
    /// before 1.0). A version a registered service names (running,
    /// stopped, crashed, failed or enabled) is never removed, nor one the
    /// config lists under `pinned`; each is reported with the reason. A
    /// removal that fails is reported and the others go on; the exit code
    /// is the first failure's. With --dry-run, prints the plan only.
    Prune(PruneArgs),
    /// Write this machine's packages and services to stdout, as JSON.
    ///
    /// Each installed package with the sha256 of its archive (an import
    /// installs exactly those bytes), and each registered service with its
    /// package, arguments, account (by name), whether it is enabled (and
    /// after which others) and whether it runs. `copkg import` makes
    /// another machine the same.
    Export,
    /// Install and start what an export file lists and this machine lacks.
    ///
    /// Installs the packages missing here (pinned to the exported sha256),
    /// starts each service that ran or was enabled there and does not run
    /// here (after the services it is enabled after), and enables those
    /// enabled there. What is here already is left as it is: an import run
    /// twice changes nothing the second time. A service that runs here
    /// with another package or other arguments is reported and left
    /// running (exit 6); the others go on. With --dry-run, prints the plan.
    Import(ImportArgs),
    /// Pack a directory into a reproducible package archive in a repository.
    Pack(PackArgs),
    /// Make a minisign key pair for signing packages (PREFIX.pub, PREFIX.key).
    Keygen(KeygenArgs),
    /// Start a service from an installed package.
    Start(StartArgs),
    /// Stop a service (a no-op that succeeds when it does not run).
    Stop(ServiceArgs),
    /// Stop a service and start it again with its recorded package and arguments.
    Restart(RestartArgs),
    /// Ask a running service to reload its configuration (its reload script, else a signal).
    Reload(ServiceArgs),
    /// Move a service to another package version; roll back if it does not start or become ready.
    Upgrade(UpgradeArgs),
    /// Show whether services run (all services when none are named).
    Status(StatusArgs),
    /// Remove a stopped service's runtime dir (--keep-data: all but data/ and etc/).
    Cleanup(CleanupArgs),
    /// Run the log-cleanup policy over services' log dirs (all when none named).
    CleanLogs(ServicesArgs),
    /// Record that a service should run: `copkg boot` starts it and
    /// `copkg reconcile` brings it back when it crashes.
    ///
    /// The service must be one copkg has started before: boot and reconcile
    /// start it from its record (package, arguments, account), as restart
    /// does. With --after, it starts only after those services run (each
    /// must be known to copkg); the list given replaces the one recorded.
    /// An order that would loop is refused (exit 2), naming the loop.
    /// Enabling does not start the service. Already so: success, changed
    /// false.
    Enable(EnableArgs),
    /// Record that a service should no longer be started at boot or brought
    /// back by reconcile.
    ///
    /// It is not stopped (`copkg stop` does that). Not enabled: success,
    /// changed false.
    Disable(ServiceArgs),
    /// At startup: start every enabled service that does not run, each after
    /// the enabled services it is --after.
    ///
    /// Each starts from its record: its package, arguments and account. One
    /// that fails does not stop the others, except those after it, which are
    /// left alone saying why; the exit code is the first failure's. Left
    /// alone too, when boot runs again in the same boot: a service stopped
    /// with `copkg stop`, and one past its start limit. Each service's lock
    /// is taken only while it is started, and one another copkg holds is
    /// skipped, never waited for. Run it from systemd or cron @reboot
    /// (contrib/).
    Boot,
    /// Restart enabled services that crashed, with a back-off and a start
    /// limit; safe to run every minute.
    ///
    /// Crashed: dead without a `copkg stop` in this boot, or its last start
    /// failed. A crash or a failed start counts as a failure; with
    /// startLimitBurst (5) failures within startLimitIntervalSecs (600) the
    /// service is `failed` and left alone until `copkg start` or `copkg
    /// reset-failed`. Restarts within that window wait restartBackoffSecs
    /// (1) after the one before, doubling each time up to a minute. A
    /// service stopped with `copkg stop`, and one that has not run since
    /// the last boot, are left alone. Never waits for a lock: a service
    /// another copkg works on is skipped. Prints only what needs attention
    /// (-v: every enabled service); the exit code is the first failed
    /// restart's.
    Reconcile,
    /// Forget a service's start-limit count, so that reconcile brings it
    /// back again (it is no longer `failed`).
    ResetFailed(ServiceArgs),
    /// Print a systemd unit that hands one service to systemd's supervision
    /// instead of boot and reconcile.
    ///
    /// Type=forking with PIDFile= in copkg's state dir (the service's main
    /// pid, written by copkg after each start, removed at stop), and
    /// ExecStart, ExecStop and ExecReload through this copkg with its
    /// software root, runtime root, config and site. Install it as
    /// /etc/systemd/system/copkg-SERVICE.service; do not also enable the
    /// service in copkg.
    SystemdUnit(ServiceArgs),
    /// Run a Lua script with the copkg module (bulk installs, rollouts).
    Run(RunArgs),
    /// Show copkg's journal of changes (installs, starts, stops, …), newest last.
    ///
    /// Every change copkg makes to this machine is journaled in
    /// `<runtime root>/.copkg/journal.jsonl` (rotated at 8 MiB, three old
    /// files kept): when, who (uid, name, SUDO_USER), the command line
    /// (credentials in URLs redacted), the action, its target, the result
    /// and the exit code. No-ops are journaled with `unchanged`.
    History(HistoryArgs),
    /// Show a service's console/ and log/ files (the last lines; -f follows,
    /// across rotations).
    Logs(LogsArgs),
    /// Load the site script and show which hooks it overrides.
    Site,
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions(CompletionsArgs),
    /// Print copkg's man page (roff) on stdout.
    Man,
    /// Internal: runs a Lua hook as a service's account (copkg starts it).
    #[command(name = "__lua-hook", hide = true)]
    LuaHook,
}

/// `copkg run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop the script (exit 8) after this many seconds; none by default.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// The Lua script.
    #[arg(value_name = "SCRIPT")]
    pub script: PathBuf,
    /// Arguments, as `copkg.args` in the script.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// `copkg start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Package coordinate (group:artifact:version).
    #[arg(value_name = "PACKAGE")]
    pub package: String,
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Install the package first if it is not installed.
    #[arg(long)]
    pub install: bool,
    /// Run the service (and its scripts) as this account, NAME[:GROUP];
    /// copkg must be root for another user [default: defaultUser, else copkg's user].
    #[arg(long, value_name = "NAME[:GROUP]")]
    pub user: Option<String>,
    /// When the service counts as started.
    #[command(flatten)]
    pub ready: ReadyArgs,
    /// Arguments passed on to the start script.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `--ready` and `--ready-timeout`.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// Readiness check: tcp:HOST:PORT, http:URL (2xx) or exec:PROGRAM [ARGS]
    /// (run in the package dir). Default: the package's script.d/ready.py, if any.
    #[arg(long, value_name = "CHECK")]
    pub ready: Option<String>,
    /// How long the service has to become ready, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub ready_timeout: f64,
}

/// `copkg restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// When the service counts as started.
    #[command(flatten)]
    pub ready: ReadyArgs,
}

/// `copkg upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The package to move the service to (group:artifact:version).
    #[arg(value_name = "NEW_COORD")]
    pub package: String,
    /// When the new version counts as started.
    #[command(flatten)]
    pub ready: ReadyArgs,
    /// Arguments for the new version's start script (default: the recorded ones).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `copkg enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Services this one starts after (at boot); repeatable, or several
    /// after one --after.
    #[arg(long, value_name = "OTHER", num_args = 1..)]
    pub after: Vec<String>,
}

/// `copkg stop` and `copkg cleanup`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

/// `copkg cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Keep data/ and etc/ (and which package they belong to); remove the
    /// rest and unregister the service.
    #[arg(long)]
    pub keep_data: bool,
}

/// `copkg logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Service coordinate (instance.service.user.cell).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// How many of the last lines of each file to show.
    #[arg(short = 'n', value_name = "N", default_value_t = 20)]
    pub lines: usize,
    /// Keep showing what is appended, across rotations, until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only this file, relative to the runtime dir (console/stdout.log,
    /// log/access.log).
    #[arg(long, value_name = "NAME")]
    pub file: Option<String>,
}

/// `copkg history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only the entries of this service or package coordinate.
    #[arg(value_name = "SERVICE|COORD")]
    pub target: Option<String>,
    /// Only the last N entries (after filtering).
    #[arg(short = 'n', value_name = "N")]
    pub last: Option<usize>,
}

/// `copkg status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Service coordinates; all services under the runtime root when none.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// An aligned table with a header (the default on a terminal; through
    /// a pipe, one tab-separated line a service, for scripts).
    #[arg(long)]
    pub table: bool,
    /// Also show the last lines of each service's console/ files.
    #[arg(long)]
    pub console: bool,
}

/// `copkg clean-logs`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Service coordinates; all services under the runtime root when none.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

/// `copkg install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Package coordinates (group:artifact:version[@sha256:HEX]); `-` reads one a line from stdin.
    #[arg(required = true, value_name = "COORD")]
    pub coordinates: Vec<String>,
    /// Installs run at once.
    #[arg(short = 'j', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Fetch and replace installed versions (after a republish, or to repair
    /// what `verify` reports), atomically.
    #[arg(long)]
    pub reinstall: bool,
    /// With --reinstall: replace a package even while a service of it runs.
    #[arg(long, requires = "reinstall")]
    pub force: bool,
}

/// `copkg uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Package coordinates.
    #[arg(required = true, value_name = "COORD")]
    pub coordinates: Vec<String>,
    /// Uninstall even when a registered service that is not running uses the package.
    #[arg(long)]
    pub force: bool,
}

/// `copkg prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many of the newest versions of each group:artifact to keep.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

/// `copkg import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file `copkg export` wrote, or `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `copkg completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Shells `copkg completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// `copkg resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Package coordinate.
    #[arg(value_name = "COORD")]
    pub coordinate: String,
}

/// `copkg adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// Package coordinate (group:artifact:version) whose install dir to take over.
    #[arg(value_name = "COORD")]
    pub coordinate: String,
}

/// `copkg verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Package coordinates.
    #[arg(
        value_name = "COORD",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub coordinates: Vec<String>,
    /// Verify every installed package.
    #[arg(long)]
    pub all: bool,
}

/// `copkg pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The package tree to pack (bin/, etc/, lib/, script.d/ …).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The package's coordinate, group:artifact:version.
    #[arg(long, value_name = "G:A:V")]
    pub coordinate: String,
    /// Repository directory to write the archive and its .sha256 into.
    #[arg(long, value_name = "REPO")]
    pub out: PathBuf,
    /// Replace an archive already in the repository with different content.
    #[arg(long)]
    pub force: bool,
    /// Sign the archive with this minisign secret key (its password from
    /// COPKG_KEY_PASSWORD or the file COPKG_KEY_PASSWORD_FILE names, else
    /// asked on a terminal); the signature is
    /// published beside the archive as <archive>.minisig.
    #[arg(long, value_name = "SECRET_KEY_FILE")]
    pub sign: Option<PathBuf>,
}

/// `copkg keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key pair: PREFIX.pub and PREFIX.key (never
    /// overwritten). The secret key is encrypted with COPKG_KEY_PASSWORD (or
    /// the first line of the file COPKG_KEY_PASSWORD_FILE names),
    /// else with a password asked twice on a terminal; without either it
    /// is written unencrypted, as `minisign -W` does.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}
