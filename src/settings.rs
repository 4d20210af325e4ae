//! Flags, environment and config files resolved into plain settings.
//! Precedence: flags, then environment (both through clap), then
//! `~/.copkg/config.json`, then `/etc/copkg/config.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::exit::{Coded, ExitCode};
use crate::lifecycle::LogCleanupOptions;
use crate::repo::{Credentials, HttpOptions, Repository, RepositoryError};
use crate::service::{ServiceError, StopSchedule};
use crate::signature::{SignatureMode, SignaturePolicy, TrustedKey};
use crate::store::ChecksumPolicy;

/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/copkg/config.json";

/// Why the settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A config file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not valid JSON or has an unknown key or a wrong type.
    #[error("invalid config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde's message, with line and column (never a value).
        message: String,
    },
    /// The CA bundle is unusable.
    #[error("invalid CA file {}: {message}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A repository is malformed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// The stop schedule is malformed.
    #[error(transparent)]
    Schedule(#[from] ServiceError),
    /// A config value is out of range, not finite, or empty.
    #[error("invalid config value for `{key}`: {reason}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong (never the value itself: it may be a secret).
        reason: String,
    },
    /// A value of one entry of `repositories` is wrong.
    #[error("invalid config value for `{key}` of repositories[{index}] ({repository}): {reason}")]
    RepositoryValue {
        /// The key within the entry.
        key: &'static str,
        /// The entry's place in the list, from 0.
        index: usize,
        /// The entry's URL, credentials removed.
        repository: String,
        /// What is wrong (never a secret).
        reason: String,
    },
    /// No home directory to put the defaults in.
    #[error("HOME is not set: give --software-root and --runtime-root")]
    NoHome,
}

impl Coded for SettingsError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SettingsError::Read { .. }
            | SettingsError::Parse { .. }
            | SettingsError::CaFile { .. }
            | SettingsError::Repository(_)
            | SettingsError::Schedule(_)
            | SettingsError::Value { .. }
            | SettingsError::RepositoryValue { .. }
            | SettingsError::NoHome => ExitCode::Usage,
        }
    }
}

/// One repository in a config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RepositoryConfig {
    url: String,
    username: Option<String>,
    password: Option<String>,
    /// minisign public keys (each the second line of a `.pub` file).
    public_keys: Option<Vec<String>>,
    /// `required`, `if-present` or `off`.
    signatures: Option<SignatureMode>,
    /// `required` or `if-present`.
    checksum: Option<ChecksumPolicy>,
}

/// A config file; the first five keys are the original copkg's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigFile {
    /// Software root (original copkg name).
    #[serde(alias = "softwareRoot")]
    package_dir: Option<PathBuf>,
    /// A single repository base URL (original copkg name).
    package_base_url: Option<String>,
    /// Basic-auth user for `packageBaseUrl`.
    username: Option<String>,
    /// Basic-auth password for `packageBaseUrl`.
    password: Option<String>,
    /// Runtime root (original copkg name).
    #[serde(alias = "runtimeRoot")]
    runtime_base_dir: Option<PathBuf>,
    /// Repositories, tried in order (after `packageBaseUrl`).
    repositories: Option<Vec<RepositoryConfig>>,
    /// Site script.
    site: Option<PathBuf>,
    /// `required` (default) or `if-present`, for every repository that
    /// sets none of its own.
    checksum: Option<ChecksumPolicy>,
    /// minisign public keys for every repository that sets none of its own.
    public_keys: Option<Vec<String>>,
    /// `required`, `if-present` or `off`, for every repository that sets
    /// none of its own.
    signatures: Option<SignatureMode>,
    /// Unpacked-size limit in bytes.
    max_unpacked_bytes: Option<u64>,
    /// Entry-count limit.
    max_entries: Option<u64>,
    /// Connect timeout in seconds.
    connect_timeout_secs: Option<f64>,
    /// Response-headers timeout in seconds.
    response_timeout_secs: Option<f64>,
    /// Per-read timeout in seconds.
    read_timeout_secs: Option<f64>,
    /// Retries on 5xx, 429 and timeouts.
    retries: Option<u32>,
    /// First retry delay in milliseconds.
    retry_backoff_ms: Option<u64>,
    /// Bytes per second a download must average over `lowSpeedTimeSecs`.
    low_speed_limit_bytes: Option<u64>,
    /// The window `lowSpeedLimitBytes` is averaged over, in seconds.
    low_speed_time_secs: Option<f64>,
    /// Stop schedule, e.g. `TERM/10/KILL/5`.
    stop_schedule: Option<String>,
    /// How long a start or stop script may run, in seconds.
    script_timeout_secs: Option<f64>,
    /// How much of a script's output is kept for reports, in bytes.
    script_output_bytes: Option<usize>,
    /// Memory limit of one Lua hook call or package script, in bytes.
    lua_memory_bytes: Option<usize>,
    /// The account services run as when `start` names none, NAME[:GROUP].
    default_user: Option<String>,
    /// Whether copkg tracks services in cgroups of its own (where it may).
    service_cgroups: Option<bool>,
    /// Options for the `clean_logs` hook.
    log_cleanup: Option<LogCleanupConfig>,
    /// How long a lock's holder may show no progress before a wait gives up.
    lock_timeout_secs: Option<f64>,
    /// PEM bundle of CA certificates trusted for https instead of the built-in roots.
    ca_file: Option<PathBuf>,
    /// Failures (crashes, failed starts) within `startLimitIntervalSecs`
    /// after which reconcile gives a service up as `failed`.
    start_limit_burst: Option<u32>,
    /// The window `startLimitBurst` counts failures in, in seconds.
    start_limit_interval_secs: Option<f64>,
    /// The wait before reconcile's second restart within the window, in
    /// seconds; it doubles for each further one, up to 60.
    restart_backoff_secs: Option<f64>,
    /// Package coordinates `copkg prune` never removes.
    pinned: Option<Vec<String>>,
    /// The download cache dir.
    cache_dir: Option<PathBuf>,
    /// Size bound of the download cache in bytes; 0 turns it off.
    cache_max_bytes: Option<u64>,
}

/// `logCleanup` in a config file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LogCleanupConfig {
    compress_after_days: Option<f64>,
    delete_after_days: Option<f64>,
    max_bytes: Option<u64>,
}

impl ConfigFile {
    /// Fills every key unset here from `lower` (a lower-precedence file).
    fn or(self, lower: ConfigFile) -> ConfigFile {
        let (repos_set, auth_set) = (
            self.package_base_url.is_some() || self.repositories.is_some(),
            self.package_base_url.is_some(),
        );
        ConfigFile {
            package_dir: self.package_dir.or(lower.package_dir),
            package_base_url: if repos_set {
                self.package_base_url
            } else {
                lower.package_base_url
            },
            username: if auth_set {
                self.username
            } else {
                self.username.or(lower.username)
            },
            password: if auth_set {
                self.password
            } else {
                self.password.or(lower.password)
            },
            runtime_base_dir: self.runtime_base_dir.or(lower.runtime_base_dir),
            repositories: if repos_set {
                self.repositories
            } else {
                lower.repositories
            },
            site: self.site.or(lower.site),
            checksum: self.checksum.or(lower.checksum),
            public_keys: self.public_keys.or(lower.public_keys),
            signatures: self.signatures.or(lower.signatures),
            max_unpacked_bytes: self.max_unpacked_bytes.or(lower.max_unpacked_bytes),
            max_entries: self.max_entries.or(lower.max_entries),
            connect_timeout_secs: self.connect_timeout_secs.or(lower.connect_timeout_secs),
            response_timeout_secs: self.response_timeout_secs.or(lower.response_timeout_secs),
            read_timeout_secs: self.read_timeout_secs.or(lower.read_timeout_secs),
            retries: self.retries.or(lower.retries),
            retry_backoff_ms: self.retry_backoff_ms.or(lower.retry_backoff_ms),
            low_speed_limit_bytes: self.low_speed_limit_bytes.or(lower.low_speed_limit_bytes),
            low_speed_time_secs: self.low_speed_time_secs.or(lower.low_speed_time_secs),
            stop_schedule: self.stop_schedule.or(lower.stop_schedule),
            script_timeout_secs: self.script_timeout_secs.or(lower.script_timeout_secs),
            script_output_bytes: self.script_output_bytes.or(lower.script_output_bytes),
            lua_memory_bytes: self.lua_memory_bytes.or(lower.lua_memory_bytes),
            default_user: self.default_user.or(lower.default_user),
            service_cgroups: self.service_cgroups.or(lower.service_cgroups),
            log_cleanup: self.log_cleanup.or(lower.log_cleanup),
            lock_timeout_secs: self.lock_timeout_secs.or(lower.lock_timeout_secs),
            ca_file: self.ca_file.or(lower.ca_file),
            start_limit_burst: self.start_limit_burst.or(lower.start_limit_burst),
            start_limit_interval_secs: self
                .start_limit_interval_secs
                .or(lower.start_limit_interval_secs),
            restart_backoff_secs: self.restart_backoff_secs.or(lower.restart_backoff_secs),
            pinned: self.pinned.or(lower.pinned),
            cache_dir: self.cache_dir.or(lower.cache_dir),
            cache_max_bytes: self.cache_max_bytes.or(lower.cache_max_bytes),
        }
    }

    fn read(path: &Path, required: bool) -> Result<ConfigFile, SettingsError> {
        let text = match read_bounded(path).and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
        }) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default());
            }
            Err(source) => {
                return Err(SettingsError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        ConfigFile::parse(path, &text)
    }

    /// Parses the text of the config file at `path` (named in errors only).
    fn parse(path: &Path, text: &str) -> Result<ConfigFile, SettingsError> {
        serde_json::from_str(text).map_err(|e| SettingsError::Parse {
            path: path.to_owned(),
            message: describe_json_error(&e, text),
        })
    }
}

/// A config error message that names the line and the key but never a
/// value, since values include passwords.
fn describe_json_error(err: &serde_json::Error, text: &str) -> String {
    let full = err.to_string();
    let what = full.split(" at line ").next().unwrap_or(&full);
    let what = match err.classify() {
        serde_json::error::Category::Data
            if !what.starts_with("unknown field")
                && !what.starts_with("missing field")
                && !what.starts_with("duplicate field") =>
        {
            let line = text.lines().nth(err.line().saturating_sub(1)).unwrap_or("");
            let before = &line[..err.column().min(line.len())];
            let key = before
                .rsplit_once("\":")
                .and_then(|(head, _)| head.rsplit_once('"'))
                .map(|(_, key)| key);
            match key {
                Some(key) => format!("key `{key}` has a value of the wrong type or out of range"),
                None => "a value has the wrong type or is out of range".to_owned(),
            }
        }
        _ => what.to_owned(),
    };
    // The one text of the file a message names is a key (between the
    // first backticks); one holding a password (pasted in the wrong
    // place) is not shown at all: a part of it could tell the password.
    let what = match what.split_once('`').and_then(|(head, rest)| {
        let (key, tail) = rest.split_once('`')?;
        Some((head, key, tail))
    }) {
        Some((head, key, tail)) if passwords_in(text).iter().any(|p| key.contains(p.as_str())) => {
            format!("{head}`<redacted: it holds a password>`{tail}")
        }
        _ => what,
    };
    format!("{what} at line {} column {}", err.line(), err.column())
}

/// Every `password` value of a config text that parses as JSON, at any
/// depth; none when it does not parse (then serde names no text of it).
fn passwords_in(text: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(s) if key == "password" && !s.is_empty() => {
                            found.push(s.clone());
                        }
                        _ => walk(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&value, &mut found);
    }
    found
}

/// How much copkg says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Progress and warnings.
    Normal,
    /// Also what is done and why.
    Verbose,
}

/// Everything a command needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where packages are installed.
    pub software_root: PathBuf,
    /// Where service runtime dirs live.
    pub runtime_root: PathBuf,
    /// Repositories in the order they are tried.
    pub repositories: Vec<Repository>,
    /// The site script, if any.
    pub site: Option<PathBuf>,
    /// Unpacked-size limit, `None` for the default rule.
    pub max_unpacked_bytes: Option<u64>,
    /// Entry-count limit.
    pub max_entries: u64,
    /// HTTP timeouts and retries.
    pub http: HttpOptions,
    /// How `stop` signals a service without a stop script.
    pub stop_schedule: StopSchedule,
    /// How long a start or stop script may run.
    pub script_timeout: Duration,
    /// How much of a script's output is kept.
    pub script_output_bytes: usize,
    /// Memory limit of one Lua hook call or package script.
    pub lua_memory_bytes: usize,
    /// The account services run as when `start` names none.
    pub default_user: Option<String>,
    /// Whether copkg tracks services in cgroups of its own (where it may).
    pub service_cgroups: bool,
    /// Options for the `clean_logs` hook.
    pub log_cleanup: LogCleanupOptions,
    /// How long a lock's holder may show no progress before a wait for
    /// the lock gives up (exit 6).
    pub lock_timeout: Duration,
    /// Failures within `start_limit_interval` after which reconcile gives
    /// a service up as `failed`.
    pub start_limit_burst: u32,
    /// The window the start limit counts failures in.
    pub start_limit_interval: Duration,
    /// The wait before reconcile's second restart within the window
    /// (doubling for each further one, up to a minute).
    pub restart_backoff: Duration,
    /// Packages `copkg prune` never removes (`pinned`).
    pub pinned: Vec<crate::coordinate::PackageCoordinate>,
    /// The download cache dir; `None` when there is no home to put it in.
    pub cache_dir: Option<PathBuf>,
    /// Size bound of the download cache; 0 when it is off.
    pub cache_max_bytes: u64,
    /// Fetch nothing: http(s) repositories only through the download cache.
    pub offline: bool,
    /// The config file given with `--config` (or `COPKG_CONFIG`), if any.
    pub config_file: Option<PathBuf>,
    /// Print results as JSON.
    pub json: bool,
    /// Print the plan and change nothing (`--dry-run`).
    pub dry_run: bool,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
}

/// Largest config file, CA bundle and other file copkg reads for its settings.
const CONFIG_FILE_LIMIT: u64 = 1 << 20;
/// Longest time any `...Secs` key may give.
const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Value {
        key,
        reason: reason.into(),
    }
}

/// A `...Secs` value: finite, above zero, at most a week.
fn seconds(
    key: &'static str,
    value: Option<f64>,
    default: Duration,
) -> Result<Duration, SettingsError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v <= MAX_SECONDS => Ok(Duration::from_secs_f64(v)),
        Some(_) => Err(invalid(
            key,
            format!("expected a number of seconds above 0 and at most {MAX_SECONDS}"),
        )),
    }
}

/// A whole number within `range`.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, SettingsError> {
    match value {
        Some(v) if !range.contains(&v) => Err(invalid(
            key,
            format!("expected {} to {}", range.start(), range.end()),
        )),
        other => Ok(other),
    }
}

/// A directory setting: never empty.
fn non_empty_path(
    key: &'static str,
    path: Option<PathBuf>,
) -> Result<Option<PathBuf>, SettingsError> {
    match path {
        Some(path) if path.as_os_str().is_empty() => Err(invalid(key, "an empty path")),
        other => Ok(other),
    }
}

/// Reads a file copkg's settings name: a regular file, at most
/// [`CONFIG_FILE_LIMIT`] bytes (a FIFO or `/dev/zero` is refused, not read).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::bounded::read_file(path, CONFIG_FILE_LIMIT)
}

/// Credentials from a config entry: an empty user name (as the original
/// copkg's configs for anonymous repositories have) means none.
/// A repository of a config file with its credentials. A URL refused
/// never shows the password given beside it, with a user name or without
/// one (then there are no credentials, but the password is still secret).
fn config_repository(
    url: &str,
    username: &Option<String>,
    password: &Option<String>,
) -> Result<Repository, RepositoryError> {
    Repository::parse(url, credentials(username, password))
        .map_err(|e| e.hiding(password.as_deref()))
}

fn credentials(username: &Option<String>, password: &Option<String>) -> Option<Credentials> {
    username
        .clone()
        .filter(|u| !u.is_empty())
        .map(|username| Credentials {
            username,
            password: password.clone().unwrap_or_default(),
        })
}

/// The trust keys (`publicKeys`, `signatures`, `checksum`) at the top
/// level of a config file, which apply to every repository that sets none
/// of its own: `packageBaseUrl` and `--repo` included.
struct Trust {
    public_keys: Option<Vec<TrustedKey>>,
    signatures: Option<SignatureMode>,
    checksum: Option<ChecksumPolicy>,
}

/// Parses a `publicKeys` list; the error names the entry (from 1), never
/// its text.
fn parse_keys(texts: &[String]) -> Result<Vec<TrustedKey>, String> {
    let mut keys: Vec<TrustedKey> = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let key = TrustedKey::parse(text).map_err(|reason| format!("entry {}: {reason}", n + 1))?;
        if let Some(first) = keys.iter().position(|k| k.id == key.id) {
            return Err(format!(
                "entries {} and {} have the same key id {}",
                first + 1,
                n + 1,
                key.id
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The signature policy of keys and a mode, each the repository's own or
/// else the top level's: `required` by default wherever keys are
/// configured, `off` where none are. A mode that checks signatures with no
/// key to check them against is refused.
fn signature_policy(
    keys: Option<Vec<TrustedKey>>,
    mode: Option<SignatureMode>,
) -> Result<SignaturePolicy, String> {
    let keys = keys.unwrap_or_default();
    let mode = mode.unwrap_or(if keys.is_empty() {
        SignatureMode::Off
    } else {
        SignatureMode::Required
    });
    if mode != SignatureMode::Off && keys.is_empty() {
        return Err(format!(
            "`{}` needs publicKeys, and none apply to this repository",
            mode.name()
        ));
    }
    Ok(SignaturePolicy { mode, keys })
}

impl Trust {
    fn top_level(config: &ConfigFile) -> Result<Trust, SettingsError> {
        Ok(Trust {
            public_keys: config
                .public_keys
                .as_deref()
                .map(parse_keys)
                .transpose()
                .map_err(|reason| invalid("publicKeys", reason))?,
            signatures: config.signatures,
            checksum: config.checksum,
        })
    }

    /// A repository that sets none of the keys: the top level's.
    fn apply(&self, mut repo: Repository) -> Result<Repository, SettingsError> {
        repo.checksum = self.checksum.unwrap_or_default();
        repo.signatures = signature_policy(self.public_keys.clone(), self.signatures)
            .map_err(|reason| invalid("signatures", format!("{reason} ({repo})")))?;
        Ok(repo)
    }

    /// An entry of `repositories`: each key its own, else the top level's.
    fn entry(
        &self,
        index: usize,
        entry: &RepositoryConfig,
        mut repo: Repository,
    ) -> Result<Repository, SettingsError> {
        let refuse = |key, reason| SettingsError::RepositoryValue {
            key,
            index,
            repository: repo.to_string(),
            reason,
        };
        let own_keys = entry
            .public_keys
            .as_deref()
            .map(parse_keys)
            .transpose()
            .map_err(|reason| refuse("publicKeys", reason))?;
        let signatures = signature_policy(
            own_keys.or_else(|| self.public_keys.clone()),
            entry.signatures.or(self.signatures),
        )
        .map_err(|reason| refuse("signatures", reason))?;
        repo.checksum = entry.checksum.or(self.checksum).unwrap_or_default();
        repo.signatures = signatures;
        Ok(repo)
    }
}

impl Settings {
    /// What the store needs to install one package under these settings.
    pub fn install_request<'a>(
        &'a self,
        coordinate: &'a crate::coordinate::PackageCoordinate,
        layout: &'a crate::store::PackageLayout,
    ) -> crate::store::InstallRequest<'a> {
        crate::store::InstallRequest {
            coordinate,
            layout,
            repositories: &self.repositories,
            max_unpacked_bytes: self.max_unpacked_bytes,
            max_entries: self.max_entries,
            progress: None,
            reinstall: false,
            offline: self.offline,
        }
    }

    /// The download cache, unless it is off; only looked into under
    /// `--dry-run`.
    pub fn cache(&self) -> Option<crate::cache::Cache> {
        let cache = self
            .cache_dir
            .as_ref()
            .filter(|_| self.cache_max_bytes > 0)
            .map(|dir| crate::cache::Cache::new(dir, self.cache_max_bytes))?;
        Some(if self.dry_run {
            cache.read_only()
        } else {
            cache
        })
    }

    /// The package store under these settings.
    pub fn store(&self) -> crate::store::Store {
        crate::store::Store::new(&self.software_root)
            .with_lock_timeout(self.lock_timeout)
            .with_cache(self.cache())
    }

    /// Resolves flags and environment (`args`) over the config files.
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, SettingsError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let config = match &args.config {
            Some(path) => ConfigFile::read(path, true)?,
            None => {
                let user = match &home {
                    Some(home) => ConfigFile::read(&home.join(".copkg/config.json"), false)?,
                    None => ConfigFile::default(),
                };
                user.or(ConfigFile::read(Path::new(SYSTEM_CONFIG), false)?)
            }
        };
        let xdg_cache_home = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
        Settings::from_config(
            args,
            config,
            home.as_deref(),
            xdg_cache_home.as_deref(),
            &read_bounded,
        )
    }

    /// Resolves the bytes of one config file alone, as [`Settings::resolve`]
    /// does with that file as `--config`, no other flag, no environment and
    /// `home` as the home directory; `path` only names the file in errors.
    /// A `caFile` it names is not read (a bundle must come from a file):
    /// naming one is an error here. Touches neither the environment nor the
    /// file system, so anything may be fed to it.
    pub fn from_config_bytes(
        path: &Path,
        bytes: &[u8],
        home: &Path,
    ) -> Result<Settings, SettingsError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SettingsError::Read {
            path: path.to_owned(),
            source: std::io::Error::other("not UTF-8 text"),
        })?;
        let config = ConfigFile::parse(path, text)?;
        let args = GlobalArgs {
            config: Some(path.to_owned()),
            site: None,
            software_root: None,
            runtime_root: None,
            repos: Vec::new(),
            cache_dir: None,
            offline: false,
            json: false,
            dry_run: false,
            quiet: false,
            verbose: 0,
        };
        let no_files = |_: &Path| -> std::io::Result<Vec<u8>> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "not read: the config was given as bytes",
            ))
        };
        Settings::from_config(&args, config, Some(home), None, &no_files)
    }

    /// Resolves flags (`args`) over a config (the files already merged):
    /// defaults under `home` (the cache's under `xdg_cache_home` when
    /// set), a CA bundle read by `read_file`.
    fn from_config(
        args: &GlobalArgs,
        config: ConfigFile,
        home: Option<&Path>,
        xdg_cache_home: Option<&Path>,
        read_file: &dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
    ) -> Result<Settings, SettingsError> {
        let default_dir = |name: &str| -> Result<PathBuf, SettingsError> {
            Ok(home.ok_or(SettingsError::NoHome)?.join(".copkg").join(name))
        };
        let software_root = match non_empty_path("packageDir", args.software_root.clone())?
            .or(non_empty_path("packageDir", config.package_dir.clone())?)
        {
            Some(dir) => dir,
            None => default_dir("software")?,
        };
        let runtime_root = match non_empty_path("runtimeBaseDir", args.runtime_root.clone())?.or(
            non_empty_path("runtimeBaseDir", config.runtime_base_dir.clone())?,
        ) {
            Some(dir) => dir,
            None => default_dir("runtime")?,
        };

        let top = Trust::top_level(&config)?;
        let mut repositories = Vec::new();
        if !args.repos.is_empty() {
            // The config's entries are checked even when --repo replaces them.
            for (index, entry) in config.repositories.iter().flatten().enumerate() {
                let repo = config_repository(&entry.url, &entry.username, &entry.password)?;
                top.entry(index, entry, repo)?;
            }
            for base in args
                .repos
                .iter()
                .map(|r| r.trim())
                .filter(|r| !r.is_empty())
            {
                repositories.push(top.apply(Repository::parse(base, None)?)?);
            }
        } else {
            if let Some(base) = &config.package_base_url {
                let repo = config_repository(base, &config.username, &config.password)?;
                repositories.push(top.apply(repo)?);
            }
            for (index, entry) in config.repositories.iter().flatten().enumerate() {
                let repo = config_repository(&entry.url, &entry.username, &entry.password)?;
                repositories.push(top.entry(index, entry, repo)?);
            }
        }

        let ca_certificates = match &config.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = read_file(path).map_err(|source| SettingsError::Read {
                    path: path.clone(),
                    source,
                })?;
                crate::repo::parse_ca_bundle(&pem).map_err(|message| SettingsError::CaFile {
                    path: path.clone(),
                    message,
                })?
            }
        };
        let defaults = HttpOptions::default();
        let http = HttpOptions {
            ca_certificates,
            connect_timeout: seconds(
                "connectTimeoutSecs",
                config.connect_timeout_secs,
                defaults.connect_timeout,
            )?,
            response_timeout: seconds(
                "responseTimeoutSecs",
                config.response_timeout_secs,
                defaults.response_timeout,
            )?,
            read_timeout: seconds(
                "readTimeoutSecs",
                config.read_timeout_secs,
                defaults.read_timeout,
            )?,
            retries: within("retries", config.retries, 0..=100)?.unwrap_or(defaults.retries),
            backoff: within("retryBackoffMs", config.retry_backoff_ms, 0..=600_000)?
                .map_or(defaults.backoff, Duration::from_millis),
            low_speed_limit: within(
                "lowSpeedLimitBytes",
                config.low_speed_limit_bytes,
                0..=1 << 40,
            )?
            .unwrap_or(defaults.low_speed_limit),
            low_speed_time: seconds(
                "lowSpeedTimeSecs",
                config.low_speed_time_secs,
                defaults.low_speed_time,
            )?,
            ..defaults
        };
        Ok(Settings {
            software_root,
            runtime_root,
            repositories,
            site: args.site.clone().or(config.site),
            max_unpacked_bytes: within(
                "maxUnpackedBytes",
                config.max_unpacked_bytes,
                1..=u64::MAX,
            )?,
            max_entries: within("maxEntries", config.max_entries, 1..=u64::MAX)?
                .unwrap_or(1_000_000),
            http,
            stop_schedule: match &config.stop_schedule {
                Some(text) => StopSchedule::parse(text)?,
                None => StopSchedule::default(),
            },
            script_timeout: seconds(
                "scriptTimeoutSecs",
                config.script_timeout_secs,
                Duration::from_secs(180),
            )?,
            script_output_bytes: within(
                "scriptOutputBytes",
                config.script_output_bytes,
                1..=64 << 20,
            )?
            .unwrap_or(64 * 1024),
            service_cgroups: config.service_cgroups.unwrap_or(true),
            default_user: match config.default_user {
                Some(user) if user.trim().is_empty() => {
                    return Err(invalid("defaultUser", "an empty account name"));
                }
                other => other,
            },
            lua_memory_bytes: within(
                "luaMemoryBytes",
                config.lua_memory_bytes,
                1 << 20..=64 << 30,
            )?
            .unwrap_or(256 << 20),
            log_cleanup: match config.log_cleanup {
                None => LogCleanupOptions::default(),
                Some(given) => {
                    let days = |key, value: Option<f64>| match value {
                        Some(v) if !(v.is_finite() && v >= 0.0) => {
                            Err(invalid(key, "expected a number of days, 0 or more"))
                        }
                        other => Ok(other),
                    };
                    LogCleanupOptions {
                        compress_after_days: days(
                            "logCleanup.compressAfterDays",
                            given.compress_after_days,
                        )?,
                        delete_after_days: days(
                            "logCleanup.deleteAfterDays",
                            given.delete_after_days,
                        )?,
                        max_bytes: given.max_bytes,
                    }
                }
            },
            lock_timeout: seconds(
                "lockTimeoutSecs",
                config.lock_timeout_secs,
                crate::store::DEFAULT_LOCK_TIMEOUT,
            )?,
            start_limit_burst: within("startLimitBurst", config.start_limit_burst, 1..=10_000)?
                .unwrap_or(5),
            start_limit_interval: seconds(
                "startLimitIntervalSecs",
                config.start_limit_interval_secs,
                Duration::from_secs(600),
            )?,
            restart_backoff: match config.restart_backoff_secs {
                None => Duration::from_secs(1),
                Some(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => {
                    Duration::from_secs_f64(v)
                }
                Some(_) => {
                    return Err(invalid(
                        "restartBackoffSecs",
                        "expected a number of seconds from 0 to 3600",
                    ));
                }
            },
            pinned: config
                .pinned
                .iter()
                .flatten()
                .enumerate()
                .map(|(n, text)| {
                    text.parse::<crate::coordinate::PackageCoordinate>()
                        .map_err(|e| invalid("pinned", format!("entry {}: {e}", n + 1)))
                })
                .collect::<Result<_, _>>()?,
            cache_dir: match non_empty_path("cacheDir", args.cache_dir.clone())?
                .or(non_empty_path("cacheDir", config.cache_dir)?)
            {
                Some(dir) => Some(dir),
                None => crate::cache::Cache::default_dir(
                    nix::unistd::geteuid().is_root(),
                    xdg_cache_home,
                    home,
                ),
            },
            cache_max_bytes: config
                .cache_max_bytes
                .unwrap_or(crate::cache::DEFAULT_MAX_BYTES),
            offline: args.offline,
            config_file: args.config.clone(),
            json: args.json,
            dry_run: args.dry_run,
            verbosity: if args.quiet {
                Verbosity::Quiet
            } else if args.verbose > 0 {
                Verbosity::Verbose
            } else {
                Verbosity::Normal
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        ConfigFile::read(&path, true)
    }

    #[test]
    fn accepts_original_copkg_keys() {
        let config = parse(
            r#"{"packageDir": "/comoyo/software", "packageBaseUrl": "https://repo/x",
                "username": "u", "password": "p", "runtimeBaseDir": "/comoyo/runtime"}"#,
        )
        .unwrap();
        assert_eq!(
            config.package_dir.as_deref(),
            Some(Path::new("/comoyo/software"))
        );
        assert_eq!(
            config.runtime_base_dir.as_deref(),
            Some(Path::new("/comoyo/runtime"))
        );
        assert_eq!(config.package_base_url.as_deref(), Some("https://repo/x"));
    }

    /// Found by fuzzing (fuzz/corpus/config/password-in-bad-url.json): a
    /// password without a user name made no credentials, so the refused
    /// URL that held it was shown whole.
    #[test]
    fn config_errors_never_show_a_password() {
        for (config, shown) in [
            (
                r#"{"repositories": [{"url": "ht4ps://u:pa55word-pa55word!h/x", "password": "pa55word-pa55word"}]}"#,
                "invalid repository `<redacted: it holds a password>`",
            ),
            (
                r#"{"packageBaseUrl": "ftp://pa55word-pa55word/x", "username": "u", "password": "pa55word-pa55word"}"#,
                "invalid repository `<redacted: it holds a password>`",
            ),
            // Found by fuzzing too (fuzz/corpus/config/password-in-a-key.json).
            (
                r#"{"packageBaseUrl": "https://h/x", "userpa55word-pa55word": "u", "password": "pa55word-pa55word"}"#,
                "unknown field `<redacted: it holds a password>`, expected one of",
            ),
            // A short password is not given away by what is hidden around
            // it, nor a longer one by a shorter one that starts it.
            (
                r#"{"password": "e", "repositories": [{"url": "https://h/x", "username": "u", "password": "hunter2secret"}], "usernamex": 1}"#,
                "unknown field `<redacted: it holds a password>`, expected one of `packageDir`",
            ),
            (
                r#"{"password": "hunter", "repositories": [{"url": "https://h/x", "username": "u", "password": "hunter2secret"}], "hunter2secret": 1}"#,
                "unknown field `<redacted: it holds a password>`",
            ),
        ] {
            let err = Settings::from_config_bytes(
                Path::new("/c/config.json"),
                config.as_bytes(),
                Path::new("/home"),
            )
            .unwrap_err();
            let text = crate::exit::describe(&err);
            for secret in ["pa55word-pa55word", "2secret", "hunter"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains(shown), "{text}");
        }
    }

    #[test]
    fn errors_name_line_and_key_but_never_values() {
        let err = parse("{\n  \"packageDir\": \"/x\",\n  \"pasword\": \"hunter2\"\n}").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown field `pasword`"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let err = parse("{\n  \"packageDir\": \"/x\"\n  \"site\": 1\n}").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");

        let err = parse("{\"password\": 12345}").unwrap_err();
        assert!(!err.to_string().contains("12345"), "{err}");
        assert!(err.to_string().contains("key `password`"), "{err}");
        let err = parse("{\"retries\": \"s3cret\"}").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn signatures_default_to_required_where_keys_apply_and_off_elsewhere() {
        let key = || {
            Some(vec![
                TrustedKey::parse("RWQr9fNDG+FVSQy5cS1M4arZ4tsMxiVYR9eAqtfsF/ejQijiSzlUc7hb")
                    .unwrap(),
            ])
        };
        use SignatureMode::*;
        let cases = [
            (key(), None, Ok(Required)),
            (key(), Some(IfPresent), Ok(IfPresent)),
            (key(), Some(Off), Ok(Off)),
            (None, None, Ok(Off)),
            (Some(Vec::new()), None, Ok(Off)),
            (None, Some(Off), Ok(Off)),
            (None, Some(Required), Err("`required` needs publicKeys")),
            (
                Some(Vec::new()),
                Some(IfPresent),
                Err("`if-present` needs publicKeys"),
            ),
        ];
        for (keys, mode, want) in cases {
            let got = signature_policy(keys.clone(), mode).map(|p| p.mode);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{keys:?} {mode:?}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{got}"),
                (got, want) => panic!("{keys:?} {mode:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn user_file_beats_system_file_key_by_key() {
        let user = ConfigFile {
            package_dir: Some("/user".into()),
            ..Default::default()
        };
        let system = ConfigFile {
            package_dir: Some("/system".into()),
            runtime_base_dir: Some("/system-rt".into()),
            package_base_url: Some("http://sys".into()),
            ..Default::default()
        };
        let merged = user.or(system);
        assert_eq!(merged.package_dir.as_deref(), Some(Path::new("/user")));
        assert_eq!(
            merged.runtime_base_dir.as_deref(),
            Some(Path::new("/system-rt"))
        );
        assert_eq!(merged.package_base_url.as_deref(), Some("http://sys"));
    }
}
