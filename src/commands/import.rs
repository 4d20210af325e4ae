//! `copkg import FILE`: installs and starts what an export lists and this
//! machine lacks.

use std::collections::BTreeSet;
use std::io::Read;

use super::{Context, Error, Result, ResultExt, notices};
use crate::cli::ImportArgs;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::exit::{Coded, describe};
use crate::inventory::{self, Inventory};
use crate::journal::Outcome;
use crate::lifecycle::{self, LifecycleError, StartRequest};
use crate::lua::Policy;
use crate::repo::{Fetcher, ProxySettings};
use crate::store::{Installed, PackageState};

/// Installs the packages, starts the services and enables those enabled
/// in the export; one failure is reported and the rest go on. Returns
/// whether anything changed (or, with --dry-run, would).
pub fn run(ctx: &Context, args: &ImportArgs) -> Result<bool> {
    let inventory = read(args)?;
    let host = ctx.host()?;
    let policy = host.policy();
    let mut import = Import {
        ctx,
        policy: &policy,
        fetcher: None,
        planned: BTreeSet::new(),
        changed: false,
        failures: Vec::new(),
        total: 0,
    };
    import.packages(&inventory)?;
    import.services(&inventory)?;
    let Import {
        changed,
        mut failures,
        total,
        ..
    } = import;
    match failures.len() {
        0 => Ok(changed),
        1 if total == 1 => Err(failures.remove(0)),
        failed => Err(Error::Partial {
            failed,
            total,
            what: "imports",
            code: failures[0].exit_code(),
        }),
    }
}

/// The export, read whole (bounded) and checked before anything is done.
fn read(args: &ImportArgs) -> Result<Inventory> {
    let mut bytes = Vec::new();
    let limit = inventory::LIMIT + 1;
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(&args.file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|source| Error::Io {
        action: "cannot read the export file",
        source,
    })
    .with_context(|| format!("cannot import {}", args.file.display()))?;
    inventory::parse(&bytes)
        .map_err(Error::from)
        .with_context(|| format!("cannot import {}", args.file.display()))
}

struct Import<'a> {
    ctx: &'a Context,
    policy: &'a Policy<'a>,
    fetcher: Option<Fetcher>,
    /// Packages a dry run would install.
    planned: BTreeSet<String>,
    changed: bool,
    failures: Vec<Error>,
    total: usize,
}

impl Import<'_> {
    /// Notes one target's result: a failure is reported now and the import
    /// goes on.
    fn done(&mut self, action: &str, target: &str, result: Result<bool>) -> Result {
        self.total += 1;
        if !self.ctx.settings.dry_run {
            self.ctx
                .journal(action, target, &Outcome::of(&result, |changed| *changed));
        }
        match result {
            Ok(changed) => self.changed |= changed,
            Err(err) if err.is_broken_pipe() => return Err(err),
            Err(err) => {
                let err = Error::Context {
                    message: format!("cannot {action} {target}"),
                    source: Box::new(err),
                };
                self.ctx.progress(&describe(&err));
                self.failures.push(err);
            }
        }
        Ok(())
    }

    fn packages(&mut self, inventory: &Inventory) -> Result {
        for package in &inventory.packages {
            let result = self.package(package);
            self.done("install", &package.coordinate, result)?;
        }
        Ok(())
    }

    fn package(&mut self, package: &inventory::Package) -> Result<bool> {
        let coordinate = package.pinned()?;
        let layout = self.policy.layout(&coordinate)?;
        let settings = &self.ctx.settings;
        let store = settings.store();
        if settings.dry_run {
            let mut plan = lifecycle::Plan::default();
            let dir = store.install_dir(&layout);
            if !matches!(store.state(&layout)?, PackageState::Installed(_)) {
                self.planned.insert(coordinate.id());
                plan.step(format!("install {coordinate} into {}", dir.display()));
            }
            let fields = serde_json::json!({"coordinate": coordinate.id(), "dir": dir});
            return super::report_plan(self.ctx, fields, &coordinate.id(), &plan);
        }
        let fetcher = match &self.fetcher {
            Some(fetcher) => fetcher,
            None => self.fetcher.insert(Fetcher::new(
                settings.http.clone(),
                ProxySettings::from_env(),
            )?),
        };
        let result = store.install(
            fetcher,
            &settings.install_request(&coordinate, &layout),
            &mut self.ctx.lock_wait_notice(&coordinate.id()),
        );
        super::install::report(self.ctx, &coordinate, &result)?;
        Ok(matches!(result?, Installed::Fresh { .. }))
    }

    fn services(&mut self, inventory: &Inventory) -> Result {
        for service in &inventory.services {
            if !service.wanted() {
                self.ctx.progress(&format!(
                    "{} was stopped and not enabled where it was exported: not started",
                    service.service
                ));
                continue;
            }
            let started = self.start(service);
            let ok = started.is_ok();
            self.done("start", &service.service, started)?;
            if service.enabled && ok {
                let enabled = self.enable(service);
                self.done("enable", &service.service, enabled)?;
            }
        }
        Ok(())
    }

    fn start(&mut self, service: &inventory::Service) -> Result<bool> {
        let name: ServiceCoordinate = service.service.parse()?;
        let package: PackageCoordinate = service.package.parse()?;
        let account = service
            .user
            .as_deref()
            .map(crate::account::Account::parse)
            .transpose()?;
        let settings = &self.ctx.settings;
        let planned = self.planned.contains(&package.id());
        let request = StartRequest {
            package: &package,
            service: &name,
            args: &service.args,
            // A package this dry run would install counts as installed.
            install: planned,
            ready: None,
            ready_timeout: std::time::Duration::from_secs(60),
            account: account.as_ref(),
        };
        if settings.dry_run {
            let mut plan = lifecycle::plan_start(settings, self.policy, &request)?;
            if planned {
                plan.steps.retain(|step| !step.starts_with("install "));
            }
            let fields = serde_json::json!({"service": name.to_string(), "package": package.id()});
            return super::report_plan(self.ctx, fields, &service.service, &plan);
        }
        let started = lifecycle::start(settings, self.policy, &request, &notices(self.ctx))?;
        super::start::report(self.ctx, &started)?;
        Ok(started.changed)
    }

    fn enable(&mut self, service: &inventory::Service) -> Result<bool> {
        let name: ServiceCoordinate = service.service.parse()?;
        let after = service
            .after
            .iter()
            .map(|other| other.parse::<ServiceCoordinate>())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let settings = &self.ctx.settings;
        match crate::supervise::enable(settings, &name, &after, &notices(self.ctx)) {
            Ok(change) => {
                super::enable::report(self.ctx, &change)?;
                Ok(change.changed)
            }
            // A dry run has not started what it would enable.
            Err(LifecycleError::NoSuchService { .. }) if settings.dry_run => {
                let mut plan = lifecycle::Plan::default();
                plan.step(if after.is_empty() {
                    format!("enable {name}")
                } else {
                    format!("enable {name} (after {})", service.after.join(", "))
                });
                let fields = serde_json::json!({"service": name.to_string()});
                super::report_plan(self.ctx, fields, &service.service, &plan)
            }
            Err(err) => Err(err.into()),
        }
    }
}
