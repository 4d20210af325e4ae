//! Readiness checks: when a started service counts as ready. `tcp:HOST:PORT`
//! (a connection is accepted), `http:URL` (a 2xx answer) or `exec:PROGRAM
//! [ARGS]` (exits 0; run in the package dir with a clean environment),
//! tried until they pass or the readiness timeout runs out.

use std::ffi::OsString;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exit::{Coded, ExitCode};

/// The default readiness timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a single attempt may take.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);

/// A readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// A TCP connection to `host:port` is accepted.
    Tcp(String),
    /// A GET of the URL answers 2xx.
    Http(String),
    /// The program (relative to the package dir, or absolute) exits 0.
    Exec(Vec<String>),
}

/// Why a readiness check is malformed.
#[derive(Debug, thiserror::Error)]
#[error("invalid readiness check `{check}`: {reason}")]
pub struct ReadyCheckError {
    check: String,
    reason: &'static str,
}

impl Coded for ReadyCheckError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

impl std::str::FromStr for ReadyCheck {
    type Err = ReadyCheckError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason| ReadyCheckError {
            check: text.to_owned(),
            reason,
        };
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| bad("expected tcp:HOST:PORT, http:URL or exec:PROGRAM [ARGS]"))?;
        match kind {
            "tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad("expected tcp:HOST:PORT"))?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(bad("expected tcp:HOST:PORT with a port number"));
                }
                Ok(ReadyCheck::Tcp(rest.to_owned()))
            }
            "http" | "https" => {
                let url = if kind == "https" {
                    text.to_owned()
                } else if rest.starts_with("//") {
                    format!("http:{rest}")
                } else {
                    rest.to_owned()
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad("expected http:http://HOST[:PORT]/PATH"));
                }
                Ok(ReadyCheck::Http(url))
            }
            "exec" => {
                let words: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
                if words.is_empty() {
                    return Err(bad("expected exec:PROGRAM [ARGS]"));
                }
                Ok(ReadyCheck::Exec(words))
            }
            _ => Err(bad("expected tcp:, http: or exec:")),
        }
    }
}

impl std::fmt::Display for ReadyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadyCheck::Tcp(address) => write!(f, "tcp:{address}"),
            ReadyCheck::Http(url) => write!(f, "http:{url}"),
            ReadyCheck::Exec(words) => write!(f, "exec:{}", words.join(" ")),
        }
    }
}

/// What one attempt found.
enum Attempt {
    Ready,
    NotYet(String),
}

impl ReadyCheck {
    fn attempt(
        &self,
        package_dir: &Path,
        env: &[(OsString, OsString)],
        limit: Duration,
    ) -> Attempt {
        let limit = limit.min(ATTEMPT_LIMIT).max(Duration::from_millis(50));
        match self {
            ReadyCheck::Tcp(address) => {
                let addresses = match address.to_socket_addrs() {
                    Ok(addresses) => addresses.collect::<Vec<_>>(),
                    Err(e) => return Attempt::NotYet(format!("{address}: {e}")),
                };
                let mut last = format!("{address}: no address");
                for socket in addresses {
                    match TcpStream::connect_timeout(&socket, limit) {
                        Ok(_) => return Attempt::Ready,
                        Err(e) => last = format!("{address}: {e}"),
                    }
                }
                Attempt::NotYet(last)
            }
            ReadyCheck::Http(url) => {
                let config = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(limit))
                    .max_redirects(0)
                    .build();
                let agent = ureq::Agent::new_with_config(config);
                match agent.get(url).call() {
                    Ok(response) if response.status().is_success() => Attempt::Ready,
                    Ok(response) => {
                        Attempt::NotYet(format!("{url}: HTTP {}", response.status().as_u16()))
                    }
                    Err(e) => Attempt::NotYet(format!("{url}: {e}")),
                }
            }
            ReadyCheck::Exec(words) => {
                let program = if words[0].contains('/') && !words[0].starts_with('/') {
                    package_dir.join(&words[0])
                } else {
                    PathBuf::from(&words[0])
                };
                let run = crate::service::CapturedRun {
                    program,
                    args: words[1..].iter().map(OsString::from).collect(),
                    env: crate::service::clean_environment()
                        .into_iter()
                        .chain(env.iter().cloned())
                        .collect(),
                    cwd: package_dir.to_owned(),
                    // As the service's account, like its scripts.
                    account: Some(crate::account::current()).filter(|a| a.needs_switch()),
                    stdin: Vec::new(),
                    timeout: limit,
                    stdout_limit: 64 * 1024,
                };
                match crate::service::run_captured(&run) {
                    Ok(done) if done.success => Attempt::Ready,
                    Ok(done) => Attempt::NotYet(format!(
                        "{} failed{}",
                        words[0],
                        if done.stderr.trim().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", done.stderr.trim())
                        }
                    )),
                    Err(e) => Attempt::NotYet(crate::exit::one_line(&e)),
                }
            }
        }
    }

    /// Tries the check until it passes or `timeout` runs out, giving up at
    /// once when `alive` says the service is gone; `Err` says what the
    /// last attempt found.
    pub fn wait(
        &self,
        package_dir: &Path,
        env: &[(OsString, OsString)],
        timeout: Duration,
        alive: &dyn Fn() -> bool,
    ) -> Result<Duration, String> {
        poll(
            timeout,
            alive,
            &mut |left| match self.attempt(package_dir, env, left) {
                Attempt::Ready => Ok(()),
                Attempt::NotYet(why) => Err(why),
            },
        )
    }
}

/// Calls `attempt` (with the time left) until it passes or `timeout` runs
/// out, backing off from 5 ms to 250 ms between attempts (half as long
/// again each time: a service ready in 50 ms is seen within about 15 ms of
/// it, not 80) and giving up at
/// once when `alive` says the service is gone; `Err` says what the last
/// attempt found. Any readiness probe (a check, a package's ready.lua)
/// waits this way.
pub fn poll(
    timeout: Duration,
    alive: &dyn Fn() -> bool,
    attempt: &mut dyn FnMut(Duration) -> Result<(), String>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(left) {
            Ok(()) => return Ok(started.elapsed()),
            Err(why) => {
                if !alive() {
                    return Err(format!("the service exited before it became ready ({why})"));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "not ready after {} s: {why}",
                        timeout.as_secs_f64()
                    ));
                }
            }
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 3 / 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_parse_and_print() {
        for (text, want) in [
            ("tcp:127.0.0.1:8080", "tcp:127.0.0.1:8080"),
            (
                "http:http://localhost:8080/health",
                "http:http://localhost:8080/health",
            ),
            ("http://localhost:8080/", "http:http://localhost:8080/"),
            ("exec:bin/ready --quick", "exec:bin/ready --quick"),
        ] {
            assert_eq!(
                text.parse::<ReadyCheck>().unwrap().to_string(),
                want,
                "{text}"
            );
        }
        for bad in [
            "",
            "tcp:host",
            "tcp:host:x",
            "http:ftp://x",
            "exec:",
            "udp:1:2",
        ] {
            assert!(bad.parse::<ReadyCheck>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_check_passes_once_a_port_listens_and_gives_up_when_told() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let check: ReadyCheck = format!("tcp:{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        assert!(
            check
                .wait(Path::new("/"), &[], Duration::from_secs(5), &|| true)
                .is_ok()
        );
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let check: ReadyCheck = format!("tcp:127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        let err = check
            .wait(Path::new("/"), &[], Duration::from_millis(300), &|| true)
            .unwrap_err();
        assert!(
            err.starts_with("not ready after 0.3 s: 127.0.0.1:"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = check
            .wait(Path::new("/"), &[], Duration::from_secs(30), &|| false)
            .unwrap_err();
        assert!(
            err.starts_with("the service exited before it became ready"),
            "{err}"
        );
    }
}
