//! `copkg install [-j N] COORD… | -`

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Read};
use std::sync::Mutex;

use super::{Context, Error, Result, ResultExt, out, usage};
use crate::cli::InstallArgs;
use crate::coordinate::PackageCoordinate;
use crate::exit::{Coded, describe, one_line};
use crate::journal::Outcome;
use crate::lua::Policy;
use crate::parallel::in_parallel;
use crate::repo::{Fetcher, ProxySettings};
use crate::settings::Verbosity;
use crate::store::{InstallRequest, Installed, PackageLayout, Progress, StoreError};

/// Longest line of coordinates read from stdin.
const LINE_LIMIT: u64 = 4096;

/// A coordinate to install, with its paths.
type Job = (PackageCoordinate, PackageLayout);

/// What the arguments ask for, in order: a coordinate given as an
/// argument (parsed and laid out before anything starts), or `-`.
enum Given {
    Coordinate(Box<Job>),
    Stdin,
}

/// The coordinates to install, in order, each once: the arguments, with
/// `-` meaning one a line from stdin (blank lines and `#` comments
/// skipped), read only as the installs ask for more, so that each starts
/// as its line arrives. The first bad line ends the stream; its error is
/// left in `failure`.
struct Coordinates<'a> {
    ctx: &'a Context,
    given: std::vec::IntoIter<Given>,
    stdin: Option<(std::io::StdinLock<'static>, usize)>,
    policy: &'a Policy<'a>,
    seen: HashSet<String>,
    failure: &'a RefCell<Option<Error>>,
}

impl Coordinates<'_> {
    /// The next coordinate from stdin, `Ok(None)` at its end.
    fn next_line(&mut self) -> Result<Option<Job>> {
        let Some((stdin, number)) = &mut self.stdin else {
            return Ok(None);
        };
        let read_error = |source| Error::Io {
            action: "cannot read coordinates from stdin",
            source,
        };
        loop {
            let mut line = Vec::new();
            stdin
                .by_ref()
                .take(LINE_LIMIT + 1)
                .read_until(b'\n', &mut line)
                .map_err(read_error)?;
            if line.is_empty() {
                return Ok(None);
            }
            *number += 1;
            if line.len() as u64 > LINE_LIMIT {
                return Err(usage(format!(
                    "stdin line {number}: longer than {LINE_LIMIT} bytes"
                )));
            }
            let line = String::from_utf8(line).map_err(|_| {
                read_error(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {number} is not UTF-8"),
                ))
            })?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let coordinate = line
                .parse::<PackageCoordinate>()
                .map_err(Error::from)
                .and_then(|c| super::resolve_latest(self.ctx, c))
                .with_context(|| format!("stdin line {number}"))?;
            let layout = lay_out(self.policy, &coordinate)?;
            return Ok(Some((coordinate, layout)));
        }
    }
}

impl Iterator for Coordinates<'_> {
    type Item = Job;

    fn next(&mut self) -> Option<Job> {
        loop {
            let job = match self.next_line() {
                Ok(Some(job)) => job,
                Ok(None) => {
                    self.stdin = None;
                    match self.given.next()? {
                        Given::Coordinate(job) => *job,
                        Given::Stdin => {
                            self.stdin = Some((std::io::stdin().lock(), 0));
                            continue;
                        }
                    }
                }
                Err(err) => {
                    *self.failure.borrow_mut() = Some(err);
                    return None;
                }
            };
            if self.seen.insert(job.0.to_string()) {
                return Some(job);
            }
        }
    }
}

/// The progress bars of several installs on a terminal: one a download,
/// above a total of the installs done.
struct Bars {
    multi: indicatif::MultiProgress,
    total: indicatif::ProgressBar,
    started: std::sync::atomic::AtomicU64,
}

impl Bars {
    /// Bars on stderr, the total expecting `given` installs (more as
    /// lines arrive on stdin).
    fn new(given: u64) -> Bars {
        use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(given));
        total.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} installed, {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        total.set_prefix("total");
        total.tick();
        Bars {
            multi,
            total,
            started: Default::default(),
        }
    }

    /// A bar for the download of `id`.
    fn start(&self, id: &str) -> indicatif::ProgressBar {
        use indicatif::{ProgressBar, ProgressStyle};
        let started = 1 + self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if started > self.total.length().unwrap_or(0) {
            self.total.set_length(started);
        }
        // Its length once the download says it.
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::no_length());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_owned());
        bar
    }

    /// Ends the bar of one install.
    fn done(&self, bar: &indicatif::ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
        self.total.inc(1);
    }
}

fn lay_out(policy: &Policy<'_>, coordinate: &PackageCoordinate) -> Result<PackageLayout> {
    policy
        .layout(coordinate)
        .map_err(Error::from)
        .with_context(|| format!("site policy failed for {coordinate}"))
}

/// Installs every coordinate, `jobs` at a time; coordinates from stdin
/// start installing as they arrive.
pub fn run(ctx: &Context, args: &InstallArgs) -> Result<bool> {
    let mut parsed = Vec::new();
    for arg in &args.coordinates {
        parsed.push(match arg.as_str() {
            "-" => None,
            text => Some(super::resolve_latest(
                ctx,
                text.parse::<PackageCoordinate>()?,
            )?),
        });
    }
    let host = ctx.host()?;
    let policy = host.policy();
    let mut given = Vec::new();
    for coordinate in parsed {
        given.push(match coordinate {
            Some(coordinate) => {
                let layout = lay_out(&policy, &coordinate)?;
                Given::Coordinate(Box::new((coordinate, layout)))
            }
            None => Given::Stdin,
        });
    }
    if ctx.settings.dry_run {
        return dry_run(ctx, args, given, &policy);
    }
    let settings = &ctx.settings;
    let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())?;
    // One coordinate given as an argument: its error is the command's.
    let single = match given.as_slice() {
        [Given::Coordinate(job)] => Some(job.0.id()),
        _ => None,
    };
    // One install on a terminal shows a progress line; pipes and logs get none.
    let show_progress = single.is_some()
        && settings.verbosity >= Verbosity::Normal
        && !settings.json
        && std::io::stderr().is_terminal();
    let progress_line = |read: u64, total: Option<u64>| {
        let id = single.as_deref().unwrap_or_default();
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let line = match total {
            Some(total) if total > 0 => format!(
                "{id}: {:.1} / {:.1} MiB ({:.0}%)",
                mib(read),
                mib(total),
                100.0 * read as f64 / total as f64
            ),
            _ => format!("{id}: {:.1} MiB", mib(read)),
        };
        eprint!("\r\x1b[K{line}");
    };
    // Several installs on a terminal: a bar a download and a total.
    let bars = (single.is_none()
        && settings.verbosity >= Verbosity::Normal
        && !settings.json
        && std::io::stderr().is_terminal())
    .then(|| {
        let given = given
            .iter()
            .filter(|g| matches!(g, Given::Coordinate(_)))
            .count();
        Bars::new(given as u64)
    });
    // What is printed while the bars are drawn goes above them.
    let print = |f: &mut dyn FnMut()| match &bars {
        Some(bars) => bars.multi.suspend(f),
        None => f(),
    };
    let failure = RefCell::new(None);
    let source = Coordinates {
        ctx,
        given: given.into_iter(),
        stdin: None,
        policy: &policy,
        seen: HashSet::new(),
        failure: &failure,
    };
    let store = ctx.store();
    let report_failures = Mutex::new(Vec::new());
    let results = in_parallel(
        source,
        usize::from(args.jobs),
        &|_, (coordinate, layout): &Job| {
            let bar = bars.as_ref().map(|bars| bars.start(&coordinate.id()));
            let on_read = |read: u64, total: Option<u64>| {
                if let Some(bar) = &bar {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(read);
                }
            };
            let progress = if show_progress {
                Some(Progress(&progress_line))
            } else if bar.is_some() {
                Some(Progress(&on_read))
            } else {
                None
            };
            let request = InstallRequest {
                progress,
                reinstall: args.reinstall,
                ..settings.install_request(coordinate, layout)
            };
            // A reinstall swaps the files under a running service: only
            // when asked to (--force).
            let in_use = match (args.reinstall && !args.force)
                .then(|| crate::lifecycle::running_user(settings, &store.install_dir(layout)))
            {
                Some(Ok(Some(service))) => Some(Err(crate::store::StoreError::Reinstall {
                    coordinate: coordinate.id(),
                    service,
                })),
                Some(Err(_)) | Some(Ok(None)) | None => None,
            };
            let result = in_use.unwrap_or_else(|| {
                store.install(
                    &fetcher,
                    &request,
                    &mut ctx.lock_wait_notice(&coordinate.id()),
                )
            });
            if show_progress {
                eprint!("\r\x1b[K");
            }
            if let (Some(bars), Some(bar)) = (&bars, &bar) {
                bars.done(bar);
            }
            ctx.journal(
                "install",
                &coordinate.id(),
                &Outcome::of(&result, |i| matches!(i, Installed::Fresh { .. })),
            );
            print(&mut || {
                if let Err(err) = &result
                    && single.is_none()
                {
                    print_failure(&coordinate.id(), err);
                }
                if let Err(err) = report(ctx, coordinate, &result) {
                    report_failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(err);
                }
            });
            result
        },
    );
    if let Some(bars) = &bars {
        bars.total.finish_and_clear();
    }
    if let Some(err) = report_failures
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
    {
        return Err(err.into());
    }
    // A bad line ended the stream: what started has been reported.
    if let Some(err) = failure.into_inner() {
        return Err(err);
    }
    let total = results.len();
    let failures: Vec<Error> = results
        .into_iter()
        .filter_map(|((coordinate, _), result)| {
            result
                .with_context(|| format!("cannot install {}", coordinate.id()))
                .err()
        })
        .collect();
    outcome(total, single.is_some(), failures, true)
}

/// What `install` would do, one coordinate after another: fetch and
/// install what is missing (or, with --reinstall, everything given).
fn dry_run(ctx: &Context, args: &InstallArgs, given: Vec<Given>, policy: &Policy) -> Result<bool> {
    let single = matches!(given.as_slice(), [Given::Coordinate(_)]);
    let failure = RefCell::new(None);
    let source = Coordinates {
        ctx,
        given: given.into_iter(),
        stdin: None,
        policy,
        seen: HashSet::new(),
        failure: &failure,
    };
    let store = ctx.store();
    let fetcher = Fetcher::new(ctx.settings.http.clone(), ProxySettings::from_env())?;
    let mut changed = false;
    let mut failures = Vec::new();
    let mut total = 0;
    for (coordinate, layout) in source {
        total += 1;
        let id = coordinate.id();
        let dir = store.install_dir(&layout);
        let mut plan = crate::lifecycle::Plan::default();
        let verb = match store.state(&layout)? {
            crate::store::PackageState::Installed(_) if !args.reinstall => None,
            crate::store::PackageState::Installed(_) => {
                if !args.force
                    && let Some(service) = crate::lifecycle::running_user(&ctx.settings, &dir)?
                {
                    return Err(StoreError::Reinstall {
                        coordinate: id,
                        service,
                    }
                    .into());
                }
                Some("reinstall")
            }
            crate::store::PackageState::Absent => Some("install"),
            crate::store::PackageState::Foreign => {
                return Err(StoreError::Foreign { path: dir })
                    .with_context(|| format!("cannot install {id}"));
            }
        };
        if let Some(verb) = verb {
            let request = InstallRequest {
                reinstall: args.reinstall,
                ..ctx.settings.install_request(&coordinate, &layout)
            };
            match crate::lifecycle::fetch_source(&ctx.settings, &fetcher, &request) {
                Ok(from) => plan.step(format!("{verb} {id} into {} from {from}", dir.display())),
                // As the real run: reported, and the others go on.
                Err(err) => {
                    if !single {
                        print_failure(&id, &err);
                    }
                    let result: std::result::Result<Installed, StoreError> = Err(err);
                    report(ctx, &coordinate, &result)?;
                    if let Err(err) = result.with_context(|| format!("cannot install {id}")) {
                        failures.push(err);
                    }
                    continue;
                }
            }
        }
        let fields = serde_json::json!({"coordinate": id, "dir": dir});
        changed |= super::report_plan(ctx, fields, &id, &plan)?;
    }
    if let Some(err) = failure.into_inner() {
        return Err(err);
    }
    outcome(total, single, failures, changed)
}

/// The error of one of several installs, printed as it happens (the
/// command's own error says how many failed).
fn print_failure(id: &str, err: &StoreError) {
    eprintln!(
        "error: cannot install {id}\n  caused by: {}",
        describe(err).trim_start_matches("error: ")
    );
}

/// How `install` ends, after `total` coordinates: `changed` when all went
/// well, the one error of a single coordinate, else how many failed (with
/// the first one's exit code).
fn outcome(total: usize, single: bool, mut failures: Vec<Error>, changed: bool) -> Result<bool> {
    match failures.len() {
        _ if total == 0 => Err(usage("no coordinates given")),
        0 => Ok(changed),
        _ if single => Err(failures.remove(0)),
        failed => Err(Error::Partial {
            failed,
            total,
            what: "installs",
            code: failures[0].exit_code(),
        }),
    }
}

/// Prints what an install of one coordinate did.
pub(super) fn report(
    ctx: &Context,
    coordinate: &PackageCoordinate,
    result: &std::result::Result<Installed, StoreError>,
) -> std::io::Result<()> {
    let id = coordinate.id();
    if ctx.settings.json {
        let value = match result {
            Ok(Installed::Fresh { dir, record, .. }) => serde_json::json!({
                "coordinate": id, "status": "installed", "dir": dir,
                "sha256": record.sha256, "verified": record.verified, "source": record.source,
                "signed_by": record.signed_by, "changed": true,
            }),
            Ok(Installed::Already { dir }) => serde_json::json!({
                "coordinate": id, "status": "already-installed", "dir": dir, "changed": false,
            }),
            Err(err) => serde_json::json!({
                "coordinate": id, "status": "failed", "changed": false,
                "error": one_line(err),
                "exit_code": err.exit_code().code(),
            }),
        };
        return out(&value.to_string());
    }
    match result {
        Ok(Installed::Fresh {
            dir,
            record,
            unreadable,
        }) => {
            super::warn_unreadable(ctx, &id, unreadable);
            if !record.verified {
                ctx.progress(&format!(
                    "warning: {id} was installed without a checksum to verify it against"
                ));
            }
            out(&format!("installed {id} in {}", dir.display()))
        }
        Ok(Installed::Already { dir }) => {
            out(&format!("{id} is already installed in {}", dir.display()))
        }
        Err(_) => Ok(()),
    }
}
