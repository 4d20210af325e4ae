//! `copkg boot`

use super::{Context, Error, Result, notices, out};
use crate::exit::Coded;
use crate::journal::Outcome;
use crate::supervise::{self, Acted, Action};

/// Starts every enabled service that does not run, in `--after` order.
pub fn run(ctx: &Context) -> Result {
    let host = ctx.host()?;
    let acted = supervise::boot(&ctx.settings, &host.policy(), &notices(ctx), &mut |acted| {
        report(ctx, "boot", acted, true)
    })?;
    outcome(&acted, "starts")
}

/// Prints what boot or reconcile did with one service as it is done: a
/// line on stdout (or a JSON object), and a failure's whole cause chain on
/// stderr. Services that simply run are printed only when `show_running`.
pub fn report(ctx: &Context, command: &str, acted: &Acted, show_running: bool) {
    let service = &acted.service;
    // What changed the machine is journaled: a start, a start that failed,
    // a service given up at its start limit.
    match &acted.action {
        Action::Started(_) => ctx.journal(command, service, &Outcome::Done { changed: true }),
        Action::Error(err) => ctx.journal(command, service, &Outcome::failed(err)),
        Action::Failed { now: true, .. } => {
            ctx.journal(command, service, &Outcome::Done { changed: true })
        }
        _ => {}
    }
    let mut json = serde_json::json!({
        "service": service,
        "action": acted.action.name(),
        "changed": matches!(acted.action, Action::Started(_) | Action::Failed { now: true, .. }),
    });
    let line = match &acted.action {
        Action::Running { pids } => {
            json["pids"] = pids.clone().into();
            show_running.then(|| format!("{service} already runs (pid {})", pids_text(pids)))
        }
        Action::Started(started) => {
            json["pids"] = started.pids.clone().into();
            json["package"] = started.package.clone().into();
            Some(format!(
                "started {service} (pid {}) from {}",
                pids_text(&started.pids),
                started.package
            ))
        }
        Action::LeftAlone { reason } => {
            json["reason"] = reason.clone().into();
            Some(format!("{service} left alone: {reason}"))
        }
        Action::BackingOff { wait } => {
            json["wait_secs"] = wait.as_secs_f64().into();
            Some(format!(
                "{service} crashed; backing off, next restart in {:.1} s",
                wait.as_secs_f64()
            ))
        }
        Action::Failed { failures, now } => {
            json["failures"] = (*failures).into();
            let window = ctx.settings.start_limit_interval.as_secs_f64();
            Some(format!(
                "{service} {} {failures} failures within {window} s (start limit); left alone until `copkg reset-failed {service}` or `copkg start`",
                if *now { "failed:" } else { "is failed:" }
            ))
        }
        Action::Error(err) => {
            json["error"] = crate::exit::one_line(err).into();
            json["exit_code"] = err.exit_code().code().into();
            eprintln!("{}", crate::exit::describe(err));
            Some(format!("{service} did not start"))
        }
    };
    let printed = if ctx.settings.json {
        out(&json.to_string())
    } else {
        match line {
            Some(line) => out(&line),
            None => {
                ctx.detail(&format!("{service} runs"));
                Ok(())
            }
        }
    };
    // A closed stdout must not stop the services after this one.
    let _ = printed;
}

fn pids_text(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Success, or the first failure's exit code with how many failed.
pub fn outcome(acted: &[Acted], what: &'static str) -> Result {
    let failed: Vec<&crate::lifecycle::LifecycleError> = acted
        .iter()
        .filter_map(|a| match &a.action {
            Action::Error(err) => Some(err),
            _ => None,
        })
        .collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::Partial {
            failed: failed.len(),
            total: acted.len(),
            what,
            code: first.exit_code(),
        }),
    }
}
