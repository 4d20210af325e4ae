//! Service settings a package declares in `script.d/service.lua` (how it
//! stops, reloads and reopens its logs, when it is ready, the account and
//! environment it needs, its limits, its log files), as the site's
//! `service_settings` hook may change them. Whatever a package or a hook
//! returns is checked here, field by field, before copkg acts on it; the
//! checked settings are kept in the service's record, so that stop and
//! reload act by what the service was started with.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::service::{StopSchedule, parse_signal};

/// The file a package declares its settings in, relative to its dir.
pub const SERVICE_LUA: &str = "script.d/service.lua";

/// Longest stop timeout a package may ask for.
const MAX_STOP_TIMEOUT: f64 = 3600.0;
/// How long KILL is given after a declared stop signal's timeout.
const AFTER_KILL: f64 = 5.0;
/// Most environment variables, log files.
const MAX_ENTRIES: usize = 256;

/// The settings, as a package or hook returns them (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// How it stops: a signal, then KILL after `timeout` seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSetting>,
    /// The signal that makes it reload its configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<SignalSetting>,
    /// The signal that makes it reopen its log files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopen_logs: Option<SignalSetting>,
    /// Its readiness check (`tcp:…`, `http:…`, `exec:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// The account it runs as, `NAME[:GROUP]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variables its scripts and processes get.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// Its log files, relative to the runtime dir (log/… or console/…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// `stop = { signal = "QUIT", timeout = 30 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopSetting {
    /// The first signal.
    pub signal: String,
    /// Seconds to wait for it before KILL (default 10).
    #[serde(default = "default_stop_timeout")]
    pub timeout: f64,
}

fn default_stop_timeout() -> f64 {
    10.0
}

/// `{ signal = "HUP" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSetting {
    /// The signal's name, with or without `SIG`.
    pub signal: String,
}

/// `limits = { nofile = 65536, memory = "512M" }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Open files (RLIMIT_NOFILE, soft and hard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// Memory in bytes: a number, or a string with a K, M or G suffix.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bytes"
    )]
    pub memory: Option<u64>,
}

impl Limits {
    fn is_empty(&self) -> bool {
        self.nofile.is_none() && self.memory.is_none()
    }
}

/// A size: a whole number of bytes, or `512M`-style text (K, M, G: powers
/// of 1024).
fn bytes<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Float(f64),
        Text(String),
    }
    let bad = |what: &str| {
        serde::de::Error::custom(format!(
            "`limits.memory` = {what}: give bytes, or a number with K, M or G (e.g. \"512M\")"
        ))
    };
    match Option::<Size>::deserialize(de)? {
        None => Ok(None),
        Some(Size::Number(n)) => Ok(Some(n)),
        Some(Size::Float(f)) if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 => {
            Ok(Some(f as u64))
        }
        Some(Size::Float(f)) => Err(bad(&f.to_string())),
        Some(Size::Text(text)) => {
            let trimmed = text.trim();
            let (digits, unit) = match trimmed.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                Some((at, _)) => trimmed.split_at(at),
                None => (trimmed, ""),
            };
            let shift = match unit.to_ascii_uppercase().as_str() {
                "" | "B" => 0,
                "K" | "KB" | "KIB" => 10,
                "M" | "MB" | "MIB" => 20,
                "G" | "GB" | "GIB" => 30,
                _ => return Err(bad(&format!("\"{}\"", text.escape_debug()))),
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(1 << shift))
                .map(Some)
                .ok_or_else(|| bad(&format!("\"{}\"", text.escape_debug())))
        }
    }
}

impl ServiceSettings {
    /// Reads settings from JSON (what a package's service.lua or a hook
    /// returned, converted), refusing unknown fields and wrong types, then
    /// checks every value; `what` names the source in errors.
    pub fn from_json(mut value: serde_json::Value, what: &str) -> Result<ServiceSettings, String> {
        // Lua has one empty table for both: `{}` is an empty object or list.
        let empty_list = serde_json::Value::Array(Vec::new());
        let empty_object = serde_json::Value::Object(serde_json::Map::new());
        if value == empty_list {
            value = empty_object.clone();
        }
        if let Some(fields) = value.as_object_mut() {
            for (name, want) in [
                ("logs", &empty_list),
                ("env", &empty_object),
                ("limits", &empty_object),
            ] {
                if let Some(field) = fields.get_mut(name)
                    && (*field == empty_list || *field == empty_object)
                {
                    *field = want.clone();
                }
            }
        }
        let settings: ServiceSettings =
            serde_json::from_value(value).map_err(|e| format!("{what}: {e}"))?;
        settings.check().map_err(|e| format!("{what}: {e}"))?;
        Ok(settings)
    }

    /// Checks every value, naming the field that is wrong.
    pub fn check(&self) -> Result<(), String> {
        let signal = |field: &str, name: &str| match parse_signal(name) {
            Some(_) => Ok(()),
            None => Err(format!(
                "`{field}` = \"{}\" is not a signal name",
                name.escape_debug()
            )),
        };
        if let Some(stop) = &self.stop {
            signal("stop.signal", &stop.signal)?;
            if !(stop.timeout.is_finite() && (0.0..=MAX_STOP_TIMEOUT).contains(&stop.timeout)) {
                return Err(format!(
                    "`stop.timeout` = {} must be seconds from 0 to {MAX_STOP_TIMEOUT}",
                    stop.timeout
                ));
            }
        }
        if let Some(reload) = &self.reload {
            signal("reload.signal", &reload.signal)?;
        }
        if let Some(reopen) = &self.reopen_logs {
            signal("reopen_logs.signal", &reopen.signal)?;
        }
        if let Some(ready) = &self.ready {
            ready
                .parse::<crate::ready::ReadyCheck>()
                .map_err(|e| format!("`ready`: {e}"))?;
        }
        if let Some(user) = &self.user
            && (user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(format!(
                "`user` = \"{}\" is not NAME or NAME:GROUP",
                user.escape_debug()
            ));
        }
        if self.env.len() > MAX_ENTRIES {
            return Err(format!("`env` has more than {MAX_ENTRIES} variables"));
        }
        for (name, value) in &self.env {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`env` name \"{}\" is not a variable name",
                    name.escape_debug()
                ));
            }
            if name.starts_with("COPKG_") {
                return Err(format!(
                    "`env.{name}`: COPKG_ variables are copkg's contract, not the package's"
                ));
            }
            if value.contains('\0') {
                return Err(format!("`env.{name}` holds a NUL byte"));
            }
        }
        if let Some(nofile) = self.limits.nofile
            && !(1..=(1 << 30)).contains(&nofile)
        {
            return Err(format!("`limits.nofile` = {nofile} is out of range"));
        }
        if let Some(memory) = self.limits.memory
            && memory < (1 << 20)
        {
            return Err(format!(
                "`limits.memory` = {memory} bytes is less than 1 MiB"
            ));
        }
        if self.logs.len() > MAX_ENTRIES {
            return Err(format!("`logs` has more than {MAX_ENTRIES} files"));
        }
        for log in &self.logs {
            let parts: Vec<&str> = log.split('/').collect();
            let plain = parts.len() >= 2
                && matches!(parts[0], "log" | "console")
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && *p != "." && *p != "..")
                && !log.chars().any(|c| c.is_control() || c == '\\');
            if !plain {
                return Err(format!(
                    "`logs` entry \"{}\" must be a plain path under log/ or console/",
                    log.escape_debug()
                ));
            }
        }
        Ok(())
    }

    /// The stop schedule these settings ask for: the declared signal, its
    /// timeout, then KILL; `None` when they declare none.
    pub fn stop_schedule(&self) -> Option<StopSchedule> {
        let stop = self.stop.as_ref()?;
        StopSchedule::parse(&format!(
            "{}/{}/KILL/{AFTER_KILL}",
            stop.signal.trim(),
            stop.timeout
        ))
        .ok()
    }

    /// How long a declared stop may take, KILL included.
    pub fn stop_time(&self) -> Option<Duration> {
        self.stop
            .as_ref()
            .map(|s| Duration::from_secs_f64(s.timeout + AFTER_KILL))
    }

    /// The environment as pairs, for a process's environment.
    pub fn env_pairs(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        self.env.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_declaration_reads_and_checks() {
        let settings = ServiceSettings::from_json(
            json!({
                "stop": {"signal": "QUIT", "timeout": 30},
                "reload": {"signal": "HUP"},
                "reopen_logs": {"signal": "USR1"},
                "ready": "tcp:127.0.0.1:8080",
                "user": "www-data",
                "env": {"LANG": "C.UTF-8"},
                "limits": {"nofile": 65536, "memory": "512M"},
                "logs": ["log/access.log", "console/stdout.log"],
            }),
            "service.lua",
        )
        .unwrap();
        assert_eq!(settings.limits.memory, Some(512 << 20));
        assert_eq!(
            settings.stop_schedule().unwrap(),
            StopSchedule::parse("QUIT/30/KILL/5").unwrap()
        );
        assert_eq!(settings.stop_time(), Some(Duration::from_secs(35)));
        // What it serializes to reads back the same (it is kept in records).
        let again = serde_json::to_value(&settings).unwrap();
        assert_eq!(
            ServiceSettings::from_json(again, "record").unwrap(),
            settings
        );
        assert_eq!(
            ServiceSettings::from_json(json!({}), "x").unwrap(),
            ServiceSettings::default()
        );
    }

    #[test]
    fn every_wrong_field_is_named() {
        for (value, message) in [
            (json!({"stopp": {}}), "unknown field `stopp`"),
            (
                json!({"stop": {"signal": "NOPE"}}),
                "`stop.signal` = \"NOPE\"",
            ),
            (
                json!({"stop": {"signal": "TERM", "timeout": -1}}),
                "`stop.timeout` = -1",
            ),
            (json!({"stop": {"signal": 15}}), "invalid type"),
            (json!({"reload": {"signal": "HUPP"}}), "`reload.signal`"),
            (
                json!({"reopen_logs": {"sig": "USR1"}}),
                "unknown field `sig`",
            ),
            (json!({"ready": "udp:x"}), "`ready`"),
            (json!({"user": "a b"}), "`user`"),
            (json!({"env": {"A=B": "x"}}), "`env` name \"A=B\""),
            (json!({"env": {"COPKG_RUNTIME_DIR": "/"}}), "COPKG_"),
            (json!({"env": {"A": 1}}), "invalid type"),
            (
                json!({"limits": {"memory": "12Q"}}),
                "`limits.memory` = \"12Q\"",
            ),
            (json!({"limits": {"memory": 100}}), "less than 1 MiB"),
            (json!({"limits": {"nofile": 0}}), "`limits.nofile` = 0"),
            (json!({"limits": {"cpu": 1}}), "unknown field `cpu`"),
            (
                json!({"logs": ["../etc/shadow"]}),
                "`logs` entry \"../etc/shadow\"",
            ),
            (json!({"logs": ["data/x"]}), "`logs` entry \"data/x\""),
            (json!({"logs": ["log/../../x"]}), "`logs` entry"),
        ] {
            let err = ServiceSettings::from_json(value.clone(), "service.lua").unwrap_err();
            assert!(err.starts_with("service.lua: "), "{err}");
            assert!(err.contains(message), "{value}: {err}");
        }
    }
}
