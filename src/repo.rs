//! Repositories and fetching: `http(s)://`, `file://` and plain-path bases;
//! timeouts, retries with backoff, manual redirects that keep credentials on
//! their own host, proxies from the environment, and resumable bodies.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::exit::{Coded, ExitCode};
use crate::signature::SignaturePolicy;

/// Username and password for HTTP basic auth. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password; kept out of `Debug` output and every message.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    fn header_value(&self) -> String {
        format!(
            "Basic {}",
            base64(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An `http://` or `https://` base URL, without user info or trailing `/`.
    Http(String),
    /// A local directory (from `file://` or a plain path).
    Dir(PathBuf),
}

/// Whether an archive without a checksum sidecar (and no digest pin) may
/// be installed from a repository (`checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumPolicy {
    /// A sidecar or pin is required (a signature checked instead will do).
    #[default]
    Required,
    /// A sidecar is checked when the repository has one.
    IfPresent,
}

/// A configured repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Its base.
    pub location: Location,
    /// Basic-auth credentials, sent only to the base URL's own scheme, host and port.
    pub credentials: Option<Credentials>,
    /// Whether its archives need a checksum sidecar.
    pub checksum: ChecksumPolicy,
    /// What its archives' signatures must be.
    pub signatures: SignaturePolicy,
}

/// Why a repository base was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid repository `{base}`: {reason}")]
pub struct RepositoryError {
    base: String,
    reason: &'static str,
}

impl RepositoryError {
    /// The same error without the URL when it holds `password` (a `!`
    /// typed for the `@`, say): user info is removed from it already, but
    /// a password given beside the URL is not known there. The whole URL
    /// goes: what is left around a short password could tell it.
    pub fn hiding(mut self, password: Option<&str>) -> Self {
        if password.is_some_and(|p| !p.is_empty() && self.base.contains(p)) {
            self.base = "<redacted: it holds a password>".to_owned();
        }
        self
    }
}

impl Repository {
    /// Parses a base URL or path. User info in an http(s) URL becomes the
    /// credentials and is removed from the URL; `credentials` given
    /// separately win.
    pub fn parse(base: &str, credentials: Option<Credentials>) -> Result<Self, RepositoryError> {
        let refuse = |reason| {
            RepositoryError {
                base: redact_url(base),
                reason,
            }
            .hiding(credentials.as_ref().map(|c| c.password.as_str()))
        };
        let trimmed = base.trim_end_matches('/');
        if let Some(path) = base.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(refuse("a file:// URL needs an absolute path"));
            }
            return Ok(Repository::new(Location::Dir(PathBuf::from(path)), None));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            if base.is_empty() {
                return Err(refuse("empty"));
            }
            return Ok(Repository::new(Location::Dir(PathBuf::from(base)), None));
        };
        if scheme != "http" && scheme != "https" {
            return Err(refuse(
                "only http://, https://, file:// and plain paths are supported",
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(refuse("no host"));
        }
        let from_url = userinfo.map(|info| {
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            Credentials {
                username: percent_decode(user),
                password: percent_decode(pass),
            }
        });
        Ok(Repository::new(
            Location::Http(format!("{scheme}://{host}{path}")),
            credentials.or(from_url),
        ))
    }

    /// A repository with the default trust settings: checksums required,
    /// signatures off (the config sets both).
    fn new(location: Location, credentials: Option<Credentials>) -> Self {
        Repository {
            location,
            credentials,
            checksum: ChecksumPolicy::Required,
            signatures: SignaturePolicy::off(),
        }
    }

    /// The address of a file at `relative` (a `/`-separated path) in this repository.
    pub fn address(&self, relative: &str) -> String {
        match &self.location {
            Location::Http(base) => format!("{base}/{relative}"),
            Location::Dir(dir) => dir.join(relative).display().to_string(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Http(base) => f.write_str(base),
            Location::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// The DER certificates in a PEM bundle (private keys and other items are
/// ignored); an error when there is none or the PEM is malformed.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| e.to_string())? {
            certificates.push(cert.der().to_vec());
        }
    }
    if certificates.is_empty() {
        return Err("no PEM certificate in it".to_owned());
    }
    Ok(certificates)
}

/// Removes any `user:password@` from a URL so it can be shown.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://<redacted>@{host}{}", &rest[end..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The file is not in the repository (404/410, or no such file).
    #[error("{url}: not found")]
    NotFound {
        /// What was asked for.
        url: String,
    },
    /// The repository could not be reached (connection refused, unknown host).
    #[error("{url}: cannot connect{}", via.as_ref().map(|p| format!(" (through proxy {p})")).unwrap_or_default())]
    Unreachable {
        /// What was asked for.
        url: String,
        /// The proxy it went through, credentials removed.
        via: Option<String>,
        /// The transport error.
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an error status that is not worth retrying, or
    /// kept answering with one that is.
    #[error("{url}: HTTP {status}")]
    Status {
        /// What was asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The request failed in transport (timeouts after retries, TLS, protocol).
    #[error("{url}: request failed")]
    Transport {
        /// What was asked for.
        url: String,
        /// The transport error.
        #[source]
        source: ureq::Error,
    },
    /// A redirect was refused.
    #[error("{url}: {reason}")]
    Redirect {
        /// The URL that redirected.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A small file (such as a checksum sidecar) was larger than allowed.
    #[error("{url}: larger than {limit} bytes")]
    TooLarge {
        /// What was asked for.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A body stalled or stayed below the low-speed limit, after resumes.
    #[error("{url}: download broken off")]
    Stalled {
        /// What was asked for.
        url: String,
        /// The read error ([`TooSlow`] or a timeout).
        #[source]
        source: io::Error,
    },
    /// A local file could not be read.
    #[error("{url}: cannot read")]
    Io {
        /// The path.
        url: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// Whether the next repository should be tried after this error.
    pub fn try_next_repository(&self) -> bool {
        matches!(
            self,
            FetchError::NotFound { .. } | FetchError::Unreachable { .. }
        )
    }
}

/// HTTP behaviour: timeouts, retries and redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time to establish a connection (including TLS).
    pub connect_timeout: Duration,
    /// Time from sending a request to receiving the response headers.
    pub response_timeout: Duration,
    /// Longest wait for any single read of a response body.
    pub read_timeout: Duration,
    /// Retries after the first attempt, on 5xx, 429 and timeouts.
    pub retries: u32,
    /// First backoff delay; doubled each retry, with jitter.
    pub backoff: Duration,
    /// The most a `Retry-After` header may make copkg wait.
    pub retry_after_cap: Duration,
    /// Most redirects followed for one request.
    pub max_redirects: u32,
    /// Times a body broken off mid-way is resumed with a `Range` request.
    pub resumes: u32,
    /// Bytes per second a body must average over each `low_speed_time`;
    /// 0 turns the check off.
    pub low_speed_limit: u64,
    /// The window the low-speed limit is averaged over.
    pub low_speed_time: Duration,
    /// DER certificates of the CAs to trust for https instead of the
    /// built-in Mozilla roots; empty for the built-in roots.
    pub ca_certificates: Vec<Vec<u8>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(500),
            retry_after_cap: Duration::from_secs(30),
            max_redirects: 10,
            resumes: 3,
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(30),
            ca_certificates: Vec::new(),
        }
    }
}

/// The proxy settings read from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Proxy for `http://` URLs (`HTTP_PROXY`, else `ALL_PROXY`).
    pub http: Option<String>,
    /// Proxy for `https://` URLs (`HTTPS_PROXY`, else `ALL_PROXY`).
    pub https: Option<String>,
    /// Hosts reached directly (`NO_PROXY`, entries trimmed and lowercased).
    pub no_proxy: Vec<String>,
}

impl ProxySettings {
    /// Reads `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case).
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .or_else(|_| std::env::var(name.to_ascii_lowercase()))
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        let all = var("ALL_PROXY");
        ProxySettings {
            http: var("HTTP_PROXY").or_else(|| all.clone()),
            https: var("HTTPS_PROXY").or(all),
            no_proxy: var("NO_PROXY")
                .map(|v| {
                    v.split(',')
                        .map(|e| e.trim().to_ascii_lowercase())
                        .filter(|e| !e.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether `host` (without port) bypasses the proxy.
    pub fn bypasses(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.no_proxy.iter().any(|entry| {
            let entry = entry.split(':').next().unwrap_or(entry);
            if entry == "*" {
                return true;
            }
            let suffix = entry.trim_start_matches('*').trim_start_matches('.');
            host == suffix || host.ends_with(&format!(".{suffix}"))
        })
    }
}

/// Idle connections kept for reuse: three requests at once for each of
/// the default 8 parallel installs.
const IDLE_CONNECTIONS: usize = 24;

/// Fetches files from repositories.
#[derive(Clone)]
pub struct Fetcher {
    options: HttpOptions,
    proxies: ProxySettings,
    direct: ureq::Agent,
    via_http_proxy: Option<ureq::Agent>,
    via_https_proxy: Option<ureq::Agent>,
}

/// An open file of a repository, read as a stream.
pub struct Download {
    /// Where it came from (after redirects), for messages.
    pub url: String,
    /// Its length, when the server or file system says.
    pub len: Option<u64>,
    reader: Box<dyn Read + Send>,
}

impl Download {
    /// A download read from a local file (a download-cache entry) that
    /// stands in for `url`.
    pub fn from_file(url: String, file: std::fs::File, len: u64) -> Self {
        Download {
            url,
            len: Some(len),
            reader: Box::new(file),
        }
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("url", &self.url)
            .field("len", &self.len)
            .finish()
    }
}

/// The error a resumable body gives when the server would not resume, so the
/// whole transfer must start again from its first byte.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {after}; the server cannot resume (answered {status} to a range request)")]
pub struct RestartNeeded {
    url: String,
    status: u16,
    after: String,
    /// Whether what broke the body was a timeout ([`is_network_failure`]).
    timed_out: bool,
}

/// A proxy setting in the environment (`HTTPS_PROXY`, …) is unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid proxy setting in the environment")]
pub struct ProxyError(#[source] ureq::Error);

impl Coded for ProxyError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

impl Coded for RepositoryError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

impl Coded for FetchError {
    fn exit_code(&self) -> ExitCode {
        match self {
            FetchError::NotFound { .. } => ExitCode::NotFound,
            FetchError::Unreachable { .. }
            | FetchError::Transport { .. }
            | FetchError::Stalled { .. } => ExitCode::Network,
            // Server errors and throttling that outlived the retries.
            FetchError::Status { status, .. } if *status >= 500 || *status == 429 => {
                ExitCode::Network
            }
            FetchError::Status { .. }
            | FetchError::Redirect { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Io { .. } => ExitCode::Failure,
        }
    }
}

impl Fetcher {
    /// A fetcher with the given HTTP options and proxies.
    pub fn new(options: HttpOptions, proxies: ProxySettings) -> Result<Self, ProxyError> {
        Self::build(options, proxies).map_err(ProxyError)
    }

    fn build(options: HttpOptions, proxies: ProxySettings) -> Result<Self, ureq::Error> {
        let agent = |proxy: Option<&str>| -> Result<ureq::Agent, ureq::Error> {
            let proxy = proxy.map(ureq::Proxy::new).transpose()?;
            let mut config = ureq::Agent::config_builder();
            if !options.ca_certificates.is_empty() {
                let roots: Vec<ureq::tls::Certificate<'static>> = options
                    .ca_certificates
                    .iter()
                    .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                    .collect();
                config = config.tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                        .build(),
                );
            }
            let config = config
                .proxy(proxy)
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .timeout_connect(Some(options.connect_timeout))
                .timeout_recv_response(Some(options.response_timeout))
                .timeout_per_read(Some(options.read_timeout))
                .user_agent(concat!("copkg/", env!("CARGO_PKG_VERSION")))
                // Parallel installs ask for a sidecar, a signature and an
                // archive at once each: keep their connections for the
                // next packages rather than handshaking again (ureq keeps
                // 3 a host by default).
                .max_idle_connections(IDLE_CONNECTIONS)
                .max_idle_connections_per_host(IDLE_CONNECTIONS)
                // Requests are GETs without a body.
                .output_buffer_size(16 * 1024)
                .build();
            Ok(ureq::Agent::new_with_config(config))
        };
        Ok(Fetcher {
            direct: agent(None)?,
            via_http_proxy: proxies
                .http
                .as_deref()
                .map(|p| agent(Some(p)))
                .transpose()?,
            via_https_proxy: proxies
                .https
                .as_deref()
                .map(|p| agent(Some(p)))
                .transpose()?,
            options,
            proxies,
        })
    }

    /// Opens the file at `relative` in `repo` for streaming.
    pub fn open(&self, repo: &Repository, relative: &str) -> Result<Download, FetchError> {
        let url = repo.address(relative);
        match &repo.location {
            Location::Dir(dir) => {
                let path = dir.join(relative);
                // Non-blocking, so that a FIFO is refused, not waited on
                // (it changes nothing for a regular file).
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&path)
                    .map_err(|source| match source.kind() {
                        io::ErrorKind::NotFound => FetchError::NotFound { url: url.clone() },
                        _ => FetchError::Io {
                            url: url.clone(),
                            source,
                        },
                    })?;
                let len = file
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len());
                if len.is_none() {
                    return Err(FetchError::NotFound { url });
                }
                Ok(Download {
                    url,
                    len,
                    reader: Box::new(file),
                })
            }
            Location::Http(_) => {
                let (final_url, response) = self.get(repo, &url, None)?;
                let len = response.body().content_length();
                let reader = ResumableBody {
                    fetcher: self.clone(),
                    repo: repo.clone(),
                    url: final_url.clone(),
                    body: response.into_body().into_reader(),
                    offset: 0,
                    len,
                    resumes_left: self.options.resumes,
                    meter: SpeedMeter::new(
                        self.options.low_speed_limit,
                        self.options.low_speed_time,
                    ),
                    slow: None,
                };
                Ok(Download {
                    url: final_url,
                    len,
                    reader: Box::new(reader),
                })
            }
        }
    }

    /// Reads a small file (at most `limit` bytes) from `repo`.
    pub fn read_small(
        &self,
        repo: &Repository,
        relative: &str,
        limit: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let mut download = self.open(repo, relative)?;
        if download.len.is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge {
                url: download.url,
                limit,
            });
        }
        let mut out = Vec::new();
        (&mut download)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|source| {
                let url = download.url.clone();
                if is_network_failure(&source) {
                    FetchError::Stalled { url, source }
                } else {
                    FetchError::Io { url, source }
                }
            })?;
        if out.len() as u64 > limit {
            return Err(FetchError::TooLarge {
                url: download.url,
                limit,
            });
        }
        Ok(out)
    }

    /// The proxy a request for `url` goes through, for messages (no credentials).
    fn proxy_for(&self, url: &str) -> Option<String> {
        let (scheme, host) = scheme_and_host(url);
        let proxy = match scheme {
            "https" => self.proxies.https.as_ref(),
            _ => self.proxies.http.as_ref(),
        }?;
        (!self.proxies.bypasses(host_without_port(host))).then(|| redact_url(proxy))
    }

    fn agent_for(&self, url: &str) -> &ureq::Agent {
        let (scheme, host) = scheme_and_host(url);
        let proxied = match scheme {
            "https" => self.via_https_proxy.as_ref(),
            _ => self.via_http_proxy.as_ref(),
        };
        match proxied {
            Some(agent) if !self.proxies.bypasses(host_without_port(host)) => agent,
            _ => &self.direct,
        }
    }

    /// GETs `url`, following redirects by hand and retrying transient
    /// failures; returns the final URL and a 2xx response.
    fn get(
        &self,
        repo: &Repository,
        url: &str,
        range_from: Option<u64>,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), FetchError> {
        let origin = match &repo.location {
            Location::Http(base) => scheme_and_host(base),
            Location::Dir(_) => ("", ""),
        };
        let mut current = url.to_owned();
        let mut seen = HashSet::new();
        loop {
            if !seen.insert(current.clone()) {
                return Err(FetchError::Redirect {
                    url: current,
                    reason: "redirect loop".to_owned(),
                });
            }
            if seen.len() as u32 > self.options.max_redirects + 1 {
                return Err(FetchError::Redirect {
                    url: current,
                    reason: format!("more than {} redirects", self.options.max_redirects),
                });
            }
            // Credentials go only to the configured scheme, host and port.
            let auth = repo
                .credentials
                .as_ref()
                .filter(|_| scheme_and_host(&current) == origin);
            let response = self.get_with_retries(&current, auth, range_from)?;
            let status = response.status().as_u16();
            if !(300..400).contains(&status) || status == 304 {
                return match status {
                    200..=299 => Ok((current, response)),
                    404 | 410 => Err(FetchError::NotFound { url: current }),
                    416 if range_from.is_some() => Ok((current, response)),
                    _ => Err(FetchError::Status {
                        url: current,
                        status,
                    }),
                };
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Redirect {
                    url: current.clone(),
                    reason: format!("HTTP {status} without a Location header"),
                })?;
            let next =
                resolve_location(&current, location).ok_or_else(|| FetchError::Redirect {
                    url: current.clone(),
                    reason: format!(
                        "redirect to an unsupported location `{}`",
                        redact_url(location)
                    ),
                })?;
            if let Some(reason) = refused_redirect(&current, &next) {
                return Err(FetchError::Redirect {
                    url: current,
                    reason,
                });
            }
            current = next;
        }
    }

    fn get_with_retries(
        &self,
        url: &str,
        auth: Option<&Credentials>,
        range_from: Option<u64>,
    ) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
        let mut attempt = 0;
        loop {
            let mut request = self.agent_for(url).get(url);
            if let Some(credentials) = auth {
                request = request.header("Authorization", credentials.header_value());
            }
            if let Some(from) = range_from {
                request = request.header("Range", format!("bytes={from}-"));
            }
            let (delay, failure) = match request.call() {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if !(status == 429 || (500..=599).contains(&status)) {
                        return Ok(response);
                    }
                    let hinted =
                        retry_after(&response).map(|d| d.min(self.options.retry_after_cap));
                    (
                        hinted,
                        FetchError::Status {
                            url: url.to_owned(),
                            status,
                        },
                    )
                }
                Err(err @ (ureq::Error::ConnectionFailed | ureq::Error::HostNotFound)) => {
                    return Err(FetchError::Unreachable {
                        url: url.to_owned(),
                        via: self.proxy_for(url),
                        source: err,
                    });
                }
                Err(ureq::Error::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(FetchError::Unreachable {
                        url: url.to_owned(),
                        via: self.proxy_for(url),
                        source: ureq::Error::Io(e),
                    });
                }
                Err(err @ (ureq::Error::Timeout(_) | ureq::Error::Io(_))) => (
                    None,
                    FetchError::Transport {
                        url: url.to_owned(),
                        source: err,
                    },
                ),
                Err(err) => {
                    return Err(FetchError::Transport {
                        url: url.to_owned(),
                        source: err,
                    });
                }
            };
            if attempt >= self.options.retries {
                return Err(failure);
            }
            attempt += 1;
            std::thread::sleep(delay.unwrap_or_else(|| backoff(self.options.backoff, attempt)));
        }
    }
}

/// Exponential backoff with full jitter in its upper half: `base·2^(n-1)·[0.5, 1)`.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(1 << (attempt - 1).min(16));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as u64
        ^ u64::from(std::process::id()).rotate_left(17);
    let fraction = 0.5 + (nanos % 1000) as f64 / 2000.0;
    full.mul_f64(fraction)
}

fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Splits `scheme://host:port/...` into the scheme and `host:port`.
fn scheme_and_host(url: &str) -> (&str, &str) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return ("", "");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (scheme, host)
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Why a redirect from `current` to `next` may not be followed: a downgrade
/// from https to http would expose the request (and any credentials).
fn refused_redirect(current: &str, next: &str) -> Option<String> {
    (current.starts_with("https://") && next.starts_with("http://")).then(|| {
        format!(
            "refusing redirect from https to http ({})",
            redact_url(next)
        )
    })
}

/// Resolves a `Location` header against the URL that sent it.
fn resolve_location(current: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let (scheme, host) = scheme_and_host(current);
    if scheme.is_empty() {
        return None;
    }
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{host}{location}"));
    }
    if location.contains("://") {
        return None;
    }
    let path_start = current.find("://").map(|i| i + 3 + host.len())?;
    let path = &current[path_start..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{host}{dir}/{location}"))
}

/// Why a body was broken off: its average rate over a whole window stayed
/// below the low-speed limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "{url}: {rate:.1} bytes/s over the last {window:.1} s, below the low-speed limit of {limit} bytes/s"
)]
pub struct TooSlow {
    url: String,
    rate: f64,
    window: f64,
    limit: u64,
}

/// Watches a body's rate in consecutive windows of `window` (as curl's
/// `--speed-limit`/`--speed-time`): a window ends at the first read that
/// returns after it has lasted `window`, so a window of a body that
/// trickles is at most one per-read timeout longer.
struct SpeedMeter {
    limit: u64,
    window: Duration,
    start: Instant,
    bytes: u64,
    /// Whether the window before the current one was slow.
    was_slow: bool,
}

/// What the end of a slow window asks for.
#[derive(Debug, Clone, Copy)]
struct Slow {
    rate: f64,
    window: Duration,
    /// The window before it was slow too.
    again: bool,
}

impl SpeedMeter {
    fn new(limit: u64, window: Duration) -> Self {
        SpeedMeter {
            limit,
            window,
            start: Instant::now(),
            bytes: 0,
            was_slow: false,
        }
    }

    /// Counts `n` bytes read at `now`; the rate of the window that ends
    /// with them, when it was below the limit.
    fn record(&mut self, n: usize, now: Instant) -> Option<Slow> {
        self.bytes += n as u64;
        let elapsed = now.saturating_duration_since(self.start);
        if self.limit == 0 || elapsed < self.window {
            return None;
        }
        let rate = self.bytes as f64 / elapsed.as_secs_f64();
        let slow = rate < self.limit as f64;
        let again = slow && self.was_slow;
        self.was_slow = slow;
        self.start = now;
        self.bytes = 0;
        slow.then_some(Slow {
            rate,
            window: elapsed,
            again,
        })
    }
}

/// An HTTP body that, when the connection breaks mid-way or a window of it
/// stays below the low-speed limit, asks for the rest with a `Range`
/// request and carries on where it stopped. The speed meter runs across
/// resumes (time spent reconnecting counts), and a second slow window in a
/// row ends the body: a server that trickles fails within about two
/// windows, whatever the resumes.
struct ResumableBody {
    fetcher: Fetcher,
    repo: Repository,
    url: String,
    body: ureq::BodyReader<'static>,
    offset: u64,
    len: Option<u64>,
    resumes_left: u32,
    meter: SpeedMeter,
    /// A slow window that ended with bytes still to hand out: acted on at
    /// the next read.
    slow: Option<Slow>,
}

impl Read for ResumableBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(slow) = self.slow.take() {
                self.break_off(slow)?;
            }
            match self.body.read(buf) {
                Ok(0) => return Ok(0),
                Ok(n) => {
                    self.offset += n as u64;
                    self.slow = self.meter.record(n, Instant::now());
                    return Ok(n);
                }
                Err(err) => {
                    // A window that ended slow decides before the error does.
                    if let Some(slow) = self.meter.record(0, Instant::now()) {
                        self.slow = Some(slow);
                        continue;
                    }
                    if self.resumes_left > 0 && self.len.is_some() {
                        self.resumes_left -= 1;
                        self.resume(&err).map_err(|resume_err| match resume_err {
                            Some(restart) => io::Error::other(restart),
                            None => err,
                        })?;
                    } else {
                        return Err(err);
                    }
                }
            }
        }
    }
}

impl ResumableBody {
    /// Acts on a slow window: the first one is resumed on a new connection
    /// (which may be faster); a second in a row, or one that cannot be
    /// resumed, ends the body with [`TooSlow`]. A server that cannot
    /// resume it does not get the whole transfer restarted, which would
    /// unbound the time spent on a slow server.
    fn break_off(&mut self, slow: Slow) -> io::Result<()> {
        let too_slow = TooSlow {
            url: self.url.clone(),
            rate: slow.rate,
            window: slow.window.as_secs_f64(),
            limit: self.meter.limit,
        };
        if slow.again || self.resumes_left == 0 || self.len.is_none() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, too_slow));
        }
        self.resumes_left -= 1;
        let reason = io::Error::new(io::ErrorKind::TimedOut, too_slow.to_string());
        self.resume(&reason)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, too_slow))
    }

    /// Re-requests the body from `offset`; `Err(Some)` when only a restart
    /// from zero can help, `Err(None)` when the original error stands.
    fn resume(&mut self, broken: &io::Error) -> Result<(), Option<RestartNeeded>> {
        let (_, response) = self
            .fetcher
            .get(&self.repo, &self.url, Some(self.offset))
            .map_err(|_| None)?;
        let status = response.status().as_u16();
        let restart = Some(RestartNeeded {
            url: self.url.clone(),
            status,
            after: broken.to_string(),
            timed_out: is_network_failure(broken),
        });
        if status != 206 {
            return Err(restart);
        }
        let expected = format!("bytes {}-", self.offset);
        let range_ok = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.starts_with(&expected)
                    && v.rsplit_once('/')
                        .and_then(|(_, total)| total.parse::<u64>().ok())
                        == self.len
            });
        if !range_ok {
            return Err(restart);
        }
        self.body = response.into_body().into_reader();
        Ok(())
    }
}

/// Whether an I/O error from a [`Download`] asks for the transfer to start over.
pub fn is_restart_needed(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<RestartNeeded>())
}

/// Whether an I/O error from a [`Download`] is the network's fault after
/// every resume: a body that stayed below the low-speed limit, or a read
/// that timed out (also when the server could not resume after it). A body
/// cut short by the server is not: that is the server's answer.
pub fn is_network_failure(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::TimedOut
        || err.get_ref().is_some_and(|inner| {
            inner.is::<TooSlow>()
                || inner
                    .downcast_ref::<RestartNeeded>()
                    .is_some_and(|r| r.timed_out)
                || inner
                    .downcast_ref::<ureq::Error>()
                    .is_some_and(|e| matches!(e, ureq::Error::Timeout(_)))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_bases() {
        let r = Repository::parse("https://bob:s%40cret@repo.example:8443/maven/", None).unwrap();
        assert_eq!(
            r.location,
            Location::Http("https://repo.example:8443/maven".into())
        );
        let creds = r.credentials.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("bob", "s@cret")
        );
        assert!(!format!("{creds:?}").contains("s@cret"));

        let r = Repository::parse("file:///srv/repo", None).unwrap();
        assert_eq!(r.location, Location::Dir("/srv/repo".into()));
        let r = Repository::parse("./repo", None).unwrap();
        assert_eq!(r.location, Location::Dir("./repo".into()));
        assert!(Repository::parse("ftp://x/y", None).is_err());
        assert!(Repository::parse("file://relative", None).is_err());
        assert!(Repository::parse("", None).is_err());
    }

    #[test]
    fn redacts_userinfo() {
        assert_eq!(redact_url("https://u:p@h/x"), "https://<redacted>@h/x");
        assert_eq!(redact_url("https://h/x@y"), "https://h/x@y");
    }

    /// Found by fuzzing (fuzz/corpus/config/password-in-bad-url.json): a
    /// URL refused for its scheme held the password given beside it.
    #[test]
    fn a_refused_url_never_shows_the_password_given_beside_it() {
        let credentials = Credentials {
            username: "user".to_owned(),
            password: "pa55word-pa55word".to_owned(),
        };
        let err = Repository::parse("ht4ps://user:pa55word-pa55word!host/x", Some(credentials))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid repository `<redacted: it holds a password>`: \
             only http://, https://, file:// and plain paths are supported"
        );
    }

    #[test]
    fn resolves_redirect_locations() {
        let cases = [
            ("http://a:1/x/y", "http://b/z", Some("http://b/z")),
            ("http://a:1/x/y", "/z", Some("http://a:1/z")),
            ("http://a:1/x/y", "z", Some("http://a:1/x/z")),
            ("https://a/x", "//c/d", Some("https://c/d")),
            ("http://a/x", "ftp://c/d", None),
        ];
        for (current, location, want) in cases {
            assert_eq!(
                resolve_location(current, location).as_deref(),
                want,
                "{location}"
            );
        }
    }

    #[test]
    fn https_to_http_redirects_are_refused() {
        assert_eq!(
            refused_redirect("https://a/x", "http://u:p@b/y").as_deref(),
            Some("refusing redirect from https to http (http://<redacted>@b/y)")
        );
        assert_eq!(refused_redirect("https://a/x", "https://b/y"), None);
        assert_eq!(refused_redirect("http://a/x", "https://b/y"), None);
        assert_eq!(refused_redirect("http://a/x", "http://b/y"), None);
    }

    #[test]
    fn no_proxy_entries_are_trimmed_and_matched() {
        let proxies = ProxySettings {
            http: Some("http://proxy:3128".into()),
            https: None,
            no_proxy: vec![
                "localhost".into(),
                ".internal.example".into(),
                "127.0.0.1".into(),
            ],
        };
        assert!(proxies.bypasses("localhost"));
        assert!(proxies.bypasses("a.internal.example"));
        assert!(proxies.bypasses("internal.example"));
        assert!(proxies.bypasses("127.0.0.1"));
        assert!(!proxies.bypasses("example.org"));
        assert!(!proxies.bypasses("notinternal.example"));
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn speed_meter_flags_windows_below_the_limit() {
        /// A slow window's (rate, again).
        type Ends = Option<(f64, bool)>;
        // 100 bytes/s over 10 s windows; (seconds since start, bytes read,
        // the slow window that ends there).
        let steps: [(u64, usize, Ends); 9] = [
            (5, 100, None),                       // the window is still open
            (10, 2000, None),                     // 210 bytes/s: fast
            (15, 10, None),                       // open
            (21, 10, Some((20.0 / 11.0, false))), // slow: the first
            (31, 5000, None),                     // fast again
            (41, 0, Some((0.0, false))),          // a failed read ends a slow window
            (45, 1, None),
            (56, 1, Some((2.0 / 15.0, true))), // a second in a row
            (70, 1500, None),                  // 107 bytes/s: fast
        ];
        let start = Instant::now();
        let mut meter = SpeedMeter::new(100, Duration::from_secs(10));
        meter.start = start;
        for (at, n, want) in steps {
            let got = meter
                .record(n, start + Duration::from_secs(at))
                .map(|slow| (slow.rate, slow.again));
            match (got, want) {
                (None, None) => {}
                (Some((rate, again)), Some((want_rate, want_again))) => {
                    assert!((rate - want_rate).abs() < 1e-9, "at {at}: {rate}");
                    assert_eq!(again, want_again, "at {at}");
                }
                _ => panic!("at {at}: got {got:?}, want {want:?}"),
            }
        }
        // A limit of 0 turns the check off.
        let mut off = SpeedMeter::new(0, Duration::from_secs(1));
        assert!(
            off.record(0, Instant::now() + Duration::from_secs(60))
                .is_none()
        );
    }

    #[test]
    fn a_file_repository_serves_only_regular_files_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), b"abc").unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let repo = Repository::parse(dir.path().to_str().unwrap(), None).unwrap();
        let fetcher = Fetcher::new(HttpOptions::default(), ProxySettings::default()).unwrap();
        assert_eq!(fetcher.read_small(&repo, "small", 3).unwrap(), b"abc");
        assert!(matches!(
            fetcher.read_small(&repo, "small", 2),
            Err(FetchError::TooLarge { limit: 2, .. })
        ));
        // A FIFO (nobody writes it) and a directory are not files of the repository.
        for name in ["fifo", "."] {
            assert!(
                matches!(
                    fetcher.read_small(&repo, name, 10),
                    Err(FetchError::NotFound { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_jitters_within_bounds() {
        let base = Duration::from_millis(100);
        for attempt in 1..5 {
            let d = backoff(base, attempt);
            let full = base * (1 << (attempt - 1));
            assert!(d >= full / 2 && d < full, "{attempt}: {d:?}");
        }
    }
}
