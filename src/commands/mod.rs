//! One module per subcommand, each thin: parse what the user gave, call the
//! core, print results on stdout and progress on stderr.

pub mod adopt;
pub mod boot;
pub mod clean_logs;
pub mod cleanup;
pub mod completions;
pub mod enable;
mod error;
pub mod export;
pub mod history;
pub mod import;
pub mod install;
pub mod keygen;
pub mod list;
pub mod logs;
pub mod man;
pub mod pack;
pub mod prune;
pub mod reconcile;
pub mod reload;
pub mod resolve;
pub mod restart;
pub mod run;
pub mod site;
pub mod start;
pub mod status;
pub mod stop;
pub mod systemd_unit;
pub mod uninstall;
pub mod upgrade;
pub mod verify;

pub use error::{Error, ResultExt};

use std::io::Write;
use std::path::Path;

use crate::cli::{Cli, Command};
use crate::coordinate::PackageCoordinate;
use crate::journal::{Outcome, Recorder};
use crate::lua::Host;
use crate::settings::{Settings, Verbosity};
use crate::store::{PackageLayout, Store};

/// What a command returns.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// What every command gets: the settings and a way to report.
pub struct Context {
    /// Resolved settings.
    pub settings: Settings,
    /// Entries this command wrote to the audit journal.
    journaled: std::sync::atomic::AtomicUsize,
}

impl Context {
    /// The context of a command run with `settings`.
    pub fn new(settings: Settings) -> Context {
        Context {
            settings,
            journaled: Default::default(),
        }
    }

    /// Records a change (or an attempt at one) on `target` in the audit
    /// journal; when the journal cannot be written, the command goes on and
    /// warns once.
    pub fn journal(&self, action: &str, target: &str, outcome: &Outcome) {
        self.journaled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(failure) =
            Recorder::shared(&self.settings.runtime_root).record(action, target, outcome)
        {
            self.progress(&format!(
                "warning: copkg's journal is not written: {failure}"
            ));
        }
    }

    /// Progress or a notice on stderr, unless quiet.
    pub fn progress(&self, message: &str) {
        if self.settings.verbosity >= Verbosity::Normal {
            eprintln!("{message}");
        }
    }

    /// Detail on stderr, only when verbose.
    pub fn detail(&self, message: &str) {
        if self.settings.verbosity >= Verbosity::Verbose {
            eprintln!("{message}");
        }
    }

    /// The Lua state with the default policy and the site script.
    pub fn host(&self) -> Result<Host> {
        let host = Host::new(self.settings.site.as_deref())?;
        host.attach_settings(self.settings.clone());
        if let Some(site) = host.site() {
            self.detail(&format!(
                "site script {} overrides: {}",
                site.display(),
                if host.overridden().is_empty() {
                    "nothing".to_owned()
                } else {
                    host.overridden().join(", ")
                }
            ));
        }
        Ok(host)
    }

    /// The Lua state for commands that must work while the site script is
    /// broken (stop, status): the site's, or, when it does not load, the
    /// built-in policy alone, with a warning that the site's hooks are
    /// skipped (SECURITY.md G7). Runtime dirs come from copkg's records.
    pub fn host_even_if_site_is_broken(&self) -> Result<Host> {
        match self.host() {
            Ok(host) => Ok(host),
            Err(Error::Lua(err)) if matches!(*err, crate::lua::LuaError::Site(_)) => {
                self.progress(&format!(
                    "warning: {}; going on with the built-in policy (the site's hooks are skipped)",
                    crate::exit::one_line(&*err)
                ));
                let host = Host::new(None)?;
                host.attach_settings(self.settings.clone());
                Ok(host)
            }
            Err(err) => Err(err),
        }
    }

    /// The package store.
    pub fn store(&self) -> Store {
        self.settings.store()
    }

    /// A callback that says what a lock wait is for.
    pub fn lock_wait_notice<'a>(&'a self, what: &'a str) -> impl FnMut(&Path) + 'a {
        move |lock: &Path| {
            self.progress(&format!(
                "waiting for another copkg working on {what} (lock {})",
                lock.display()
            ))
        }
    }
}

/// Writes one line to stdout; a closed pipe surfaces as an error main ends quietly on.
pub fn out(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.write_all(b"\n")
}

/// Parses coordinates given on the command line.
pub fn parse_coordinates(texts: &[String]) -> Result<Vec<PackageCoordinate>> {
    texts
        .iter()
        .map(|t| t.parse::<PackageCoordinate>().map_err(Error::from))
        .collect()
}

/// Evaluates the layout policy for each coordinate.
pub fn layouts(host: &Host, coordinates: &[PackageCoordinate]) -> Result<Vec<PackageLayout>> {
    let policy = host.policy();
    coordinates
        .iter()
        .map(|c| {
            policy
                .layout(c)
                .map_err(Error::from)
                .with_context(|| format!("site policy failed for {c}"))
        })
        .collect()
}

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> Result {
    // The hook child runs as a service's account, with no config of copkg's.
    if let Command::LuaHook = cli.command {
        return lua_hook();
    }
    // Neither needs settings: they work with a broken config.
    match &cli.command {
        Command::Completions(args) => return completions::run(args),
        Command::Man => return man::run(),
        _ => {}
    }
    refuse_dry_run(&cli)?;
    let settings = Settings::resolve(&cli.global)?;
    let ctx = Context::new(settings);
    let ctx = &ctx;
    // Commands that change this machine are journaled (one entry a
    // target); reads, pack and keygen are not. `run` scripts journal each
    // change they make through the Lua module; clean-logs, the changes it
    // made.
    match &cli.command {
        Command::Install(args) => journaled(ctx, "install", &args.coordinates, || {
            install::run(ctx, args)
        }),
        Command::Uninstall(args) => journaled(ctx, "uninstall", &args.coordinates, || {
            uninstall::run(ctx, args)
        }),
        Command::List => list::run(ctx),
        Command::Resolve(args) => resolve::run(ctx, args),
        Command::Verify(args) => verify::run(ctx, args),
        Command::Adopt(args) => {
            journaled(ctx, "adopt", &[&args.coordinate], || adopt::run(ctx, args))
        }
        Command::Prune(args) => journaled(
            ctx,
            "prune",
            &[ctx.settings.software_root.display().to_string()],
            || prune::run(ctx, args),
        ),
        Command::Export => export::run(ctx),
        Command::Import(args) => import::run(ctx, args).map(|_| ()),
        Command::Pack(args) => pack::run(ctx, args),
        Command::Keygen(args) => keygen::run(ctx, args),
        Command::Start(args) => journaled(ctx, "start", &[&args.service], || start::run(ctx, args)),
        Command::Stop(args) => journaled(ctx, "stop", &[&args.service], || stop::run(ctx, args)),
        Command::Restart(args) => {
            journaled(ctx, "restart", &[&args.service], || restart::run(ctx, args))
        }
        Command::Reload(args) => {
            journaled(ctx, "reload", &[&args.service], || reload::run(ctx, args))
        }
        Command::Upgrade(args) => {
            journaled(ctx, "upgrade", &[&args.service], || upgrade::run(ctx, args))
        }
        Command::Status(args) => status::run(ctx, args),
        Command::Cleanup(args) => {
            journaled(ctx, "cleanup", &[&args.service], || cleanup::run(ctx, args))
        }
        Command::Run(args) => run::run(ctx, args),
        Command::CleanLogs(args) => clean_logs::run(ctx, args),
        Command::History(args) => history::run(ctx, args),
        Command::Logs(args) => logs::run(ctx, args),
        Command::Enable(args) => journaled(ctx, "enable", &[&args.service], || {
            enable::enable(ctx, args)
        }),
        Command::Disable(args) => journaled(ctx, "disable", &[&args.service], || {
            enable::disable(ctx, args)
        }),
        Command::Boot => boot::run(ctx),
        Command::Reconcile => reconcile::run(ctx),
        Command::ResetFailed(args) => journaled(ctx, "reset-failed", &[&args.service], || {
            reconcile::reset_failed(ctx, args).map(|()| true)
        }),
        Command::SystemdUnit(args) => systemd_unit::run(ctx, args),
        Command::Site => site::run(ctx),
        Command::Completions(args) => completions::run(args),
        Command::Man => man::run(),
        Command::LuaHook => lua_hook(),
    }
}

/// Refuses `--dry-run` (exit 2) for a command that would change the
/// machine anyway; commands that only read accept it, as they change
/// nothing either way.
fn refuse_dry_run(cli: &Cli) -> Result {
    if !cli.global.dry_run {
        return Ok(());
    }
    let changes = match &cli.command {
        Command::Prune(_)
        | Command::Install(_)
        | Command::Uninstall(_)
        | Command::Start(_)
        | Command::Stop(_)
        | Command::Restart(_)
        | Command::Upgrade(_)
        | Command::Cleanup(_)
        | Command::Enable(_)
        | Command::Disable(_)
        | Command::Import(_)
        | Command::Export
        | Command::List
        | Command::Resolve(_)
        | Command::Verify(_)
        | Command::Status(_)
        | Command::History(_)
        | Command::Logs(_)
        | Command::Site
        | Command::SystemdUnit(_)
        | Command::Completions(_)
        | Command::Man
        | Command::LuaHook => None,
        Command::Adopt(_) => Some("adopt"),
        Command::Pack(_) => Some("pack"),
        Command::Keygen(_) => Some("keygen"),
        Command::Reload(_) => Some("reload"),
        Command::CleanLogs(_) => Some("clean-logs"),
        Command::Boot => Some("boot"),
        Command::Reconcile => Some("reconcile"),
        Command::ResetFailed(_) => Some("reset-failed"),
        Command::Run(_) => Some("run"),
    };
    match changes {
        Some(command) => Err(usage(format!(
            "`copkg {command}` has no --dry-run (see `copkg {command} --help`)"
        ))),
        None => Ok(()),
    }
}

/// Runs a command that changes this machine and journals its result: a
/// command that journals each of its targets itself (install, uninstall)
/// is left to do so; otherwise, and whenever a command fails before it
/// reaches its targets (a bad coordinate, a broken site script), each
/// target given gets an entry with the command's result and exit code.
/// `command` returns whether it changed anything.
fn journaled<T: AsRef<str>>(
    ctx: &Context,
    action: &str,
    targets: &[T],
    command: impl FnOnce() -> Result<bool>,
) -> Result {
    use std::sync::atomic::Ordering;
    // A dry run changes nothing, so there is nothing to journal.
    if ctx.settings.dry_run {
        return command().map(|_| ());
    }
    let before = ctx.journaled.load(Ordering::SeqCst);
    let result = command();
    if ctx.journaled.load(Ordering::SeqCst) == before {
        let outcome = match &result {
            Ok(changed) => Outcome::Done { changed: *changed },
            // The change was made; only printing its result failed.
            Err(err) if err.is_broken_pipe() => Outcome::Done { changed: true },
            Err(err) => Outcome::failed(err),
        };
        for target in targets {
            ctx.journal(action, target.as_ref(), &outcome);
        }
    }
    result.map(|_| ())
}

/// `copkg __lua-hook`: a hook request on stdin, its answer on stdout.
fn lua_hook() -> Result {
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(crate::lua::REQUEST_LIMIT)
        .read_to_end(&mut input)
        .map_err(|source| Error::Io {
            action: "cannot read the hook request",
            source,
        })?;
    // The answer goes out on a private copy of stdout; what the Lua code
    // prints (print, io.write, the programs it runs) goes to stderr, where
    // copkg keeps it as the script's output, and can never forge an answer.
    let answer_fd = nix::fcntl::fcntl(std::io::stdout(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .map_err(|e| Error::Io {
            action: "cannot set up the hook's output",
            source: e.into(),
        })?;
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    let mut answer_out =
        unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(answer_fd) };
    let _ = nix::unistd::dup2_stdout(std::io::stderr());
    let answer = crate::lua::serve_hook(&input);
    answer_out.write_all(&answer)?;
    Ok(())
}

/// Warns about entries of a package a service's account could not read.
pub fn warn_unreadable(ctx: &Context, package: &str, entries: &[String]) {
    const SHOWN: usize = 10;
    if entries.is_empty() {
        return;
    }
    let mut entries = entries.to_vec();
    entries.sort();
    let more = entries.len().saturating_sub(SHOWN);
    ctx.progress(&format!(
        "warning: {package}: a service running as another user could not read {}{}",
        entries[..entries.len().min(SHOWN)].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ));
}

/// The readiness check and timeout the user gave.
pub fn ready_of(
    args: &crate::cli::ReadyArgs,
) -> Result<(Option<crate::ready::ReadyCheck>, std::time::Duration)> {
    let check = args
        .ready
        .as_deref()
        .map(str::parse::<crate::ready::ReadyCheck>)
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    let secs = args.ready_timeout;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(usage(
            "--ready-timeout takes seconds above 0, at most a day",
        ));
    }
    Ok((check, std::time::Duration::from_secs_f64(secs)))
}

/// Prints what a `--dry-run` would do: each step as "would …" on stdout
/// (or that there is nothing to do), or with `--json` one object: `fields`
/// (what the command's own result names: service, coordinate…), with
/// `changed` (whether the real run would change anything), `dry_run` and
/// `plan` (the steps). Returns `changed`.
pub fn report_plan(
    ctx: &Context,
    fields: serde_json::Value,
    target: &str,
    plan: &crate::lifecycle::Plan,
) -> Result<bool> {
    if ctx.settings.json {
        let mut value = fields;
        if let Some(object) = value.as_object_mut() {
            object.insert("changed".into(), plan.changed.into());
            object.insert("dry_run".into(), true.into());
            object.insert("plan".into(), plan.steps.clone().into());
        }
        out(&value.to_string())?;
    } else if plan.steps.is_empty() {
        out(&format!("{target}: nothing to do"))?;
    } else {
        for step in &plan.steps {
            out(&format!("would {step}"))?;
        }
    }
    Ok(plan.changed)
}

/// A usage error.
pub fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

/// Notices from the lifecycle, on stderr unless quiet.
pub fn notices(ctx: &Context) -> impl Fn(&str) + '_ {
    move |message| ctx.progress(message)
}
