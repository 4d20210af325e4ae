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
    /// Where downloaded archives are cached [default: /var/cache/copkg as
    /// root, else ~/.cache/copkg].
    #[arg(
        long,
        global = true,
        env = "COPKG_CACHE_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,
    /// Fetch nothing: http(s) repositories are served from the download
    /// cache only; file repositories are read as ever.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print what would be done and change nothing (install, uninstall,
    /// start, stop, restart, upgrade, cleanup, enable, disable, prune,
    /// import; other commands that change the machine refuse it).
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
    #[command(after_help = examples::INSTALL)]
    Install(InstallArgs),
    /// Remove installed packages.
    #[command(after_help = examples::UNINSTALL)]
    Uninstall(UninstallArgs),
    /// List installed packages, one coordinate a line.
    #[command(after_help = examples::LIST)]
    List,
    /// Show where a package installs, where it is fetched from, and its state.
    #[command(after_help = examples::RESOLVE)]
    Resolve(ResolveArgs),
    /// Check installed packages' files against the manifest recorded at install.
    #[command(after_help = examples::VERIFY)]
    Verify(VerifyArgs),
    /// Take over a package dir the original copkg installed: record its
    /// manifest and a marker (unverified), after checking what it holds.
    #[command(after_help = examples::ADOPT)]
    Adopt(AdoptArgs),
    /// Remove old versions of each installed artifact, keeping the newest N.
    ///
    /// Versions are ordered as Maven orders them (1.10 after 1.9, 1.0-rc1
    /// before 1.0). A version a registered service names (running,
    /// stopped, crashed, failed or enabled) is never removed, nor one the
    /// config lists under `pinned`; each is reported with the reason. A
    /// removal that fails is reported and the others go on; the exit code
    /// is the first failure's. With --dry-run, prints the plan only.
    #[command(after_help = examples::PRUNE)]
    Prune(PruneArgs),
    /// Write this machine's packages and services to stdout, as JSON.
    ///
    /// Each installed package with the sha256 of its archive (an import
    /// installs exactly those bytes), and each registered service with its
    /// package, arguments, account (by name), whether it is enabled (and
    /// after which others) and whether it runs. `copkg import` makes
    /// another machine the same.
    #[command(after_help = examples::EXPORT)]
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
    #[command(after_help = examples::IMPORT)]
    Import(ImportArgs),
    /// List the versions the repositories offer for group:artifact, oldest
    /// first in Maven order (from each repository's maven-metadata.xml).
    ///
    /// `copkg install G:A:latest` installs the newest release (a version
    /// with none of the qualifiers alpha, beta, milestone, rc, cr,
    /// snapshot, or Maven's a1, b1, m1); `G:A:latest-prerelease` the
    /// newest of all. stderr names both. A repository without metadata for
    /// the artifact is skipped; none with it: exit 3.
    #[command(after_help = examples::VERSIONS)]
    Versions(VersionsArgs),
    /// Pack a directory into a reproducible package archive in a repository,
    /// and add its version to the artifact's maven-metadata.xml there.
    #[command(after_help = examples::PACK)]
    Pack(PackArgs),
    /// Make a minisign key pair for signing packages (PREFIX.pub, PREFIX.key).
    #[command(after_help = examples::KEYGEN)]
    Keygen(KeygenArgs),
    /// Start a service from an installed package.
    #[command(after_help = examples::START)]
    Start(StartArgs),
    /// Stop a service (a no-op that succeeds when it does not run).
    #[command(after_help = examples::STOP)]
    Stop(ServiceArgs),
    /// Stop a service and start it again with its recorded package and arguments.
    #[command(after_help = examples::RESTART)]
    Restart(RestartArgs),
    /// Ask a running service to reload its configuration (its reload script, else a signal).
    #[command(after_help = examples::RELOAD)]
    Reload(ServiceArgs),
    /// Move a service to another package version; roll back if it does not start or become ready.
    #[command(after_help = examples::UPGRADE)]
    Upgrade(UpgradeArgs),
    /// Show whether services run (all services when none are named).
    #[command(after_help = examples::STATUS)]
    Status(StatusArgs),
    /// Remove a stopped service's runtime dir (--keep-data: all but data/ and etc/).
    #[command(after_help = examples::CLEANUP)]
    Cleanup(CleanupArgs),
    /// Run the log-cleanup policy over services' log dirs (all when none named).
    #[command(after_help = examples::CLEAN_LOGS)]
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
    #[command(after_help = examples::ENABLE)]
    Enable(EnableArgs),
    /// Record that a service should no longer be started at boot or brought
    /// back by reconcile.
    ///
    /// It is not stopped (`copkg stop` does that). Not enabled: success,
    /// changed false.
    #[command(after_help = examples::DISABLE)]
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
    #[command(after_help = examples::BOOT)]
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
    #[command(after_help = examples::RECONCILE)]
    Reconcile,
    /// Forget a service's start-limit count, so that reconcile brings it
    /// back again (it is no longer `failed`).
    #[command(after_help = examples::RESET_FAILED)]
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
    #[command(after_help = examples::SYSTEMD_UNIT)]
    SystemdUnit(ServiceArgs),
    /// Run a Lua script with the copkg module (bulk installs, rollouts).
    #[command(after_help = examples::RUN)]
    Run(RunArgs),
    /// Show copkg's journal of changes (installs, starts, stops, …), newest last.
    ///
    /// Every change copkg makes to this machine is journaled in
    /// `<runtime root>/.copkg/journal.jsonl` (rotated at 8 MiB, three old
    /// files kept): when, who (uid, name, SUDO_USER), the command line
    /// (credentials in URLs redacted), the action, its target, the result
    /// and the exit code. No-ops are journaled with `unchanged`.
    #[command(after_help = examples::HISTORY)]
    History(HistoryArgs),
    /// Show a service's console/ and log/ files (the last lines; -f follows,
    /// across rotations).
    #[command(after_help = examples::LOGS)]
    Logs(LogsArgs),
    /// Load the site script and show which hooks it overrides.
    #[command(after_help = examples::SITE)]
    Site,
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(after_help = examples::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Print copkg's man page (roff) on stdout.
    #[command(after_help = examples::MAN)]
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
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
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

/// `copkg versions`.
#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// group:artifact, e.g. com.example:hello.
    #[arg(value_name = "G:A")]
    pub artifact: String,
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

/// The "Examples:" section of each subcommand's help: real command lines,
/// each after a comment saying what it does (a test in tests/install_cli.rs parses
/// every line that starts with `copkg` and fails for a subcommand without
/// one).
mod examples {
    pub const INSTALL: &str = "\
Examples:
  # Install a package from the configured repositories
  copkg install com.example:hello:1.0.0
  # Install several, eight at a time, from a repository given here
  copkg --repo https://repo.example.com/copkg install -j 8 com.example:hello:1.0.0 com.example:webapp:1.0.0
  # Install what another machine has (one coordinate a line on stdin)
  ssh other-host copkg list | copkg install -
  # Fetch an installed version again and replace it (repairs what verify reports)
  copkg install --reinstall com.example:hello:1.0.0";

    pub const UNINSTALL: &str = "\
Examples:
  # Remove one version of a package
  copkg uninstall com.example:hello:1.0.0
  # Remove every installed package
  copkg list | xargs copkg uninstall";

    pub const LIST: &str = "\
Examples:
  # One coordinate a line
  copkg list
  # As JSON, for scripts
  copkg --json list";

    pub const RESOLVE: &str = "\
Examples:
  # Where the package installs, the URLs it is fetched from, and whether it is installed
  copkg resolve com.example:hello:1.0.0
  # The same against another repository, as JSON
  copkg --repo /srv/copkg-repo --json resolve com.example:hello:1.0.0";

    pub const VERIFY: &str = "\
Examples:
  # Check one package's files against its install manifest (exit 13 on differences)
  copkg verify com.example:hello:1.0.0
  # Check every installed package
  copkg verify --all";

    pub const ADOPT: &str = "\
Examples:
  # Take over a package dir the original copkg installed under the software root
  copkg adopt com.example:legacy:2.3.0";

    pub const PRUNE: &str = "\
Examples:
  # Show which versions would go, keeping the newest two of each artifact
  copkg --dry-run prune --keep 2
  # Remove them
  copkg prune --keep 2";

    pub const EXPORT: &str = "\
Examples:
  # Save this machine's packages and services
  copkg export > /root/copkg-export.json";

    pub const IMPORT: &str = "\
Examples:
  # See what an import would install and start here, then do it
  copkg --dry-run import /root/copkg-export.json
  copkg import /root/copkg-export.json
  # From another machine, over ssh
  ssh web1 copkg export | copkg import -";

    pub const VERSIONS: &str = "\
Examples:
  # What the repositories offer of an artifact, oldest first
  copkg versions com.example:hello
  # Install the newest release
  copkg install com.example:hello:latest";

    pub const PACK: &str = "\
Examples:
  # Pack a package tree into a repository directory
  copkg pack packages-example/hello --coordinate com.example:hello:1.0.0 --out /srv/copkg-repo
  # The same, signed (the key's password from a file)
  COPKG_KEY_PASSWORD_FILE=/root/copkg-key.pass copkg pack packages-example/hello --coordinate com.example:hello:1.0.0 --out /srv/copkg-repo --sign /root/copkg.key";

    pub const KEYGEN: &str = "\
Examples:
  # Make /root/copkg.pub and /root/copkg.key (the password asked on the terminal)
  copkg keygen --out /root/copkg";

    pub const START: &str = "\
Examples:
  # Start a service from an installed package, with arguments for its start script
  copkg start com.example:webapp:1.0.0 1.web.demo.local -- --port=8080
  # Install the package if needed, run as www-data, and wait until the port answers
  copkg start --install --user www-data --ready tcp:127.0.0.1:8080 com.example:webapp:1.0.0 1.web.demo.local -- --port=8080";

    pub const STOP: &str = "\
Examples:
  # Stop a service (succeeds when it does not run)
  copkg stop 1.web.demo.local";

    pub const RESTART: &str = "\
Examples:
  # Restart with the recorded package and arguments
  copkg restart 1.web.demo.local
  # Restart and wait until it answers HTTP with a 2xx
  copkg restart --ready http:http://127.0.0.1:8080/ --ready-timeout 30 1.web.demo.local";

    pub const RELOAD: &str = "\
Examples:
  # Ask a running service to reload its configuration
  copkg reload 1.web.demo.local";

    pub const UPGRADE: &str = "\
Examples:
  # Move a service to a new version; roll back if it does not become ready
  copkg upgrade 1.web.demo.local com.example:webapp:1.1.0 --ready tcp:127.0.0.1:8080
  # The same with new arguments for the new version's start script
  copkg upgrade 1.web.demo.local com.example:webapp:1.1.0 -- --port=8081";

    pub const STATUS: &str = "\
Examples:
  # Every service under the runtime root
  copkg status
  # One service, with the last lines of its console output
  copkg status --console 1.web.demo.local
  # As JSON, for scripts (exit 7 when a named service does not run)
  copkg --json status 1.web.demo.local";

    pub const CLEANUP: &str = "\
Examples:
  # Remove a stopped service's runtime dir
  copkg cleanup 1.web.demo.local
  # Remove all but its data/ and etc/
  copkg cleanup --keep-data 1.web.demo.local";

    pub const CLEAN_LOGS: &str = "\
Examples:
  # Apply the log policy to every service's logs
  copkg clean-logs
  # Only to one service's
  copkg clean-logs 1.web.demo.local";

    pub const ENABLE: &str = "\
Examples:
  # Start this service at boot and bring it back when it crashes
  copkg enable 1.db.demo.local
  # The same, started only after the database runs
  copkg enable 1.web.demo.local --after 1.db.demo.local";

    pub const DISABLE: &str = "\
Examples:
  # Neither start it at boot nor bring it back (it keeps running)
  copkg disable 1.web.demo.local";

    pub const BOOT: &str = "\
Examples:
  # What copkg-boot.service and the @reboot cron line run
  copkg --config /etc/copkg/config.json boot";

    pub const RECONCILE: &str = "\
Examples:
  # What copkg-reconcile.timer runs every minute
  copkg --config /etc/copkg/config.json reconcile
  # By hand, reporting every enabled service
  copkg -v reconcile";

    pub const RESET_FAILED: &str = "\
Examples:
  # Let reconcile bring a service past its start limit back again
  copkg reset-failed 1.web.demo.local";

    pub const SYSTEMD_UNIT: &str = "\
Examples:
  # Hand a service to systemd
  copkg systemd-unit 1.web.demo.local > /etc/systemd/system/copkg-1.web.demo.local.service
  systemctl daemon-reload && systemctl enable --now copkg-1.web.demo.local";

    pub const RUN: &str = "\
Examples:
  # A scripted rollout: bulk install, then start services (copkg.args[1] is 8080)
  copkg --repo /srv/copkg-repo run packages-example/rollout.lua 8080
  # The same, given ten minutes at most
  copkg --repo /srv/copkg-repo run --timeout 600 packages-example/rollout.lua 8080";

    pub const HISTORY: &str = "\
Examples:
  # Every change copkg made to this machine, newest last
  copkg history
  # The last 20 changes to one service
  copkg history -n 20 1.web.demo.local
  # Everything done with one package, as JSON
  copkg --json history com.example:webapp:1.0.0";

    pub const LOGS: &str = "\
Examples:
  # The last 20 lines of each of a service's console/ and log/ files
  copkg logs 1.web.demo.local
  # Follow one file, starting from its last 100 lines
  copkg logs -n 100 -f --file log/access.log 1.web.demo.local";

    pub const SITE: &str = "\
Examples:
  # Which hooks the configured site script overrides
  copkg site
  # Check a site script before putting it in the config
  copkg --site /etc/copkg/site.lua site";

    pub const COMPLETIONS: &str = "\
Examples:
  # bash, for the current user (the Debian package installs all three)
  copkg completions bash > ~/.local/share/bash-completion/completions/copkg
  # zsh, into a directory on $fpath
  copkg completions zsh > ~/.zfunc/_copkg
  # fish
  copkg completions fish > ~/.config/fish/completions/copkg.fish";

    pub const MAN: &str = "\
Examples:
  # Read it without installing it
  copkg man > copkg.1 && man -l copkg.1
  # Install it for man(1), compressed
  copkg man | gzip -9n > /usr/local/share/man/man1/copkg.1.gz";
}
