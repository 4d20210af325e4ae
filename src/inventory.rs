//! What one machine has, as `copkg export` writes it and `copkg import`
//! reads it: the installed packages (with the sha256 of each archive, so
//! the clone gets the same bytes) and the registered services (package,
//! arguments, account by name, whether enabled and after which others,
//! whether running). The file is hostile input to the machine importing
//! it: bounded, strictly parsed, every coordinate and name checked before
//! anything is done.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::exit::{Coded, ExitCode};
use crate::runtime::RuntimeDir;
use crate::service::{self, ServiceState};
use crate::settings::Settings;
use crate::state::{StateDir, StateError};
use crate::store::StoreError;

/// What the file says it is.
pub const FORMAT: &str = "copkg-export/1";

/// The largest export file read.
pub const LIMIT: u64 = 16 << 20;

/// A machine's packages and services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// [`FORMAT`].
    pub format: String,
    /// The installed packages, by coordinate.
    pub packages: Vec<Package>,
    /// The registered services, in an order that starts each after those
    /// it is enabled after.
    pub services: Vec<Service>,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// `group:artifact:version`.
    pub coordinate: String,
    /// The sha256 of the archive it was installed from, when verified.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Package {
    /// The coordinate to install: pinned to the archive's digest when known.
    pub fn pinned(&self) -> Result<PackageCoordinate, InventoryError> {
        let text = match &self.sha256 {
            Some(sha256) => format!("{}@sha256:{sha256}", self.coordinate),
            None => self.coordinate.clone(),
        };
        text.parse().map_err(|e| InventoryError::Invalid {
            reason: format!("package `{}`: {e}", self.coordinate),
        })
    }
}

/// A registered service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service coordinate.
    pub service: String,
    /// The package it runs.
    pub package: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The account it runs as, `USER:GROUP` by name where the names are
    /// known (ids differ between machines).
    #[serde(default)]
    pub user: Option<String>,
    /// Whether it is enabled.
    #[serde(default)]
    pub enabled: bool,
    /// The services it starts after.
    #[serde(default)]
    pub after: Vec<String>,
    /// Whether it was running when exported.
    #[serde(default)]
    pub running: bool,
}

impl Service {
    /// Whether an import starts it: it ran, or it should run.
    pub fn wanted(&self) -> bool {
        self.running || self.enabled
    }
}

/// Why an inventory could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file is not an export copkg can import.
    #[error("not a copkg export: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// The state dir.
    #[error(transparent)]
    State(#[from] StateError),
    /// The store.
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
}

impl Coded for InventoryError {
    fn exit_code(&self) -> ExitCode {
        match self {
            InventoryError::Invalid { .. } => ExitCode::Usage,
            InventoryError::State(err) => err.exit_code(),
            InventoryError::Store(err) => err.exit_code(),
        }
    }
}

/// What this machine has.
pub fn read(settings: &Settings) -> Result<Inventory, InventoryError> {
    let packages = settings
        .store()
        .list()
        .map_err(Box::new)?
        .into_iter()
        .map(|(_, record)| Package {
            coordinate: record.coordinate,
            sha256: record.sha256.filter(|_| record.verified),
        })
        .collect();
    let mut services = Vec::new();
    if let Some(state) = StateDir::peek(&settings.runtime_root)? {
        let groups = service::Groups::snapshot();
        for name in state.services()? {
            // An unreadable record is the status command's to report.
            let Ok(Some(record)) = state.read(&name) else {
                continue;
            };
            let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
            let running = matches!(
                service::status_in(Some(&record), &runtime, &groups),
                ServiceState::Running { .. }
            );
            let unit = state.read_unit(&name)?;
            services.push(Service {
                user: Some(match &record.account {
                    Some(a) => account_name(a.uid, a.gid),
                    // Started as copkg's own account.
                    None => account_name(
                        nix::unistd::geteuid().as_raw(),
                        nix::unistd::getegid().as_raw(),
                    ),
                }),
                enabled: unit.as_ref().is_some_and(|u| u.enabled),
                after: unit.map(|u| u.after).unwrap_or_default(),
                service: name,
                package: record.package,
                args: record.args,
                running,
            });
        }
    }
    Ok(Inventory {
        format: FORMAT.to_owned(),
        packages,
        services: in_start_order(services),
    })
}

/// `USER:GROUP` by name where the password and group databases know them.
fn account_name(uid: u32, gid: u32) -> String {
    use nix::unistd::{Gid, Group, Uid, User};
    let user = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name);
    format!("{user}:{group}")
}

/// The services ordered so that each comes after those it is enabled
/// after (by name otherwise); a cycle (enable refuses them) keeps the
/// order by name for what is left.
fn in_start_order(services: Vec<Service>) -> Vec<Service> {
    let mut left: BTreeMap<String, Service> = services
        .into_iter()
        .map(|s| (s.service.clone(), s))
        .collect();
    let mut ordered = Vec::new();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .values()
            .filter(|s| s.after.iter().all(|a| !left.contains_key(a)))
            .map(|s| s.service.clone())
            .collect();
        let take = if ready.is_empty() {
            left.keys().cloned().collect()
        } else {
            ready
        };
        for name in take {
            ordered.extend(left.remove(&name));
        }
    }
    ordered
}

/// Reads an export, checking everything in it before anything is done.
pub fn parse(bytes: &[u8]) -> Result<Inventory, InventoryError> {
    let invalid = |reason: String| InventoryError::Invalid { reason };
    if bytes.len() as u64 > LIMIT {
        return Err(invalid(format!("larger than {LIMIT} bytes")));
    }
    let inventory: Inventory = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if inventory.format != FORMAT {
        return Err(invalid(format!(
            "format `{}`, expected `{FORMAT}`",
            crate::runtime::escape_controls(&inventory.format)
        )));
    }
    let mut seen = BTreeSet::new();
    for package in &inventory.packages {
        package.pinned()?;
        if !seen.insert(&package.coordinate) {
            return Err(invalid(format!("package `{}` twice", package.coordinate)));
        }
    }
    let mut names = BTreeSet::new();
    for service in &inventory.services {
        let what =
            |e: &dyn std::fmt::Display| invalid(format!("service `{}`: {e}", service.service));
        service
            .service
            .parse::<ServiceCoordinate>()
            .map_err(|e| what(&e))?;
        service
            .package
            .parse::<PackageCoordinate>()
            .map_err(|e| what(&e))?;
        for other in &service.after {
            other.parse::<ServiceCoordinate>().map_err(|e| what(&e))?;
        }
        if let Some(user) = &service.user
            && (user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(what(&format!("bad user {user:?}")));
        }
        if !names.insert(&service.service) {
            return Err(invalid(format!("service `{}` twice", service.service)));
        }
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, after: &[&str]) -> Service {
        Service {
            service: name.to_owned(),
            package: "g:a:1".to_owned(),
            args: Vec::new(),
            user: None,
            enabled: true,
            after: after.iter().map(|s| s.to_string()).collect(),
            running: true,
        }
    }

    #[test]
    fn services_come_after_those_they_start_after() {
        let ordered = in_start_order(vec![
            service("1.a.x.y", &["1.c.x.y"]),
            service("1.b.x.y", &[]),
            service("1.c.x.y", &["1.b.x.y"]),
        ]);
        let names: Vec<&str> = ordered.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["1.b.x.y", "1.c.x.y", "1.a.x.y"]);
        // A cycle still yields every service once.
        let ordered = in_start_order(vec![
            service("1.a.x.y", &["1.b.x.y"]),
            service("1.b.x.y", &["1.a.x.y"]),
        ]);
        assert_eq!(ordered.len(), 2);
    }

    #[test]
    fn hostile_exports_are_refused_before_anything_is_done() {
        let good = r#"{"format":"copkg-export/1","packages":[{"coordinate":"g:a:1"}],
            "services":[{"service":"1.a.x.y","package":"g:a:1","user":"svc:svc"}]}"#;
        assert_eq!(parse(good.as_bytes()).unwrap().services.len(), 1);
        for (bad, says) in [
            (
                r#"{"format":"copkg-export/2","packages":[],"services":[]}"#,
                "format",
            ),
            (
                r#"{"format":"copkg-export/1","packages":[],"services":[],"x":1}"#,
                "unknown field",
            ),
            (
                r#"{"format":"copkg-export/1","packages":[{"coordinate":"../../etc:a:1"}],"services":[]}"#,
                "package",
            ),
            (
                r#"{"format":"copkg-export/1","packages":[{"coordinate":"g:a:1","sha256":"abc"}],"services":[]}"#,
                "digest",
            ),
            (
                r#"{"format":"copkg-export/1","packages":[],"services":[{"service":"../x","package":"g:a:1"}]}"#,
                "service `../x`",
            ),
            (
                r#"{"format":"copkg-export/1","packages":[],"services":[{"service":"1.a.x.y","package":"g:a:1","user":"a b"}]}"#,
                "bad user",
            ),
            (
                r#"{"format":"copkg-export/1","packages":[{"coordinate":"g:a:1"},{"coordinate":"g:a:1"}],"services":[]}"#,
                "twice",
            ),
            ("[]", "not a copkg export"),
        ] {
            let err = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::Usage);
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
        let huge = vec![b' '; LIMIT as usize + 1];
        assert!(
            parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
    }
}
