//! shared/SECURITY.md part C: downloads under faults, against an in-process
//! HTTP server on 127.0.0.1 that misbehaves on purpose (truncated bodies,
//! stalls, 5xx then success, redirects across hosts, proxies).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A sandbox whose repository holds a good archive (with sidecar), served by
/// `handler`; returns the sandbox, the server and the archive.
fn setup(
    handler: impl Fn(&PathBuf, &[u8], &Request, usize, &mut TcpStream) + Send + Sync + 'static,
) -> (Sandbox, FaultServer, Arc<Vec<u8>>) {
    let sandbox = Sandbox::new();
    // Big enough that a body cut in half is cut inside the deflate stream.
    let mut tar = Tar::new();
    for i in 0..8 {
        let data: Vec<u8> = (0..64 * 1024)
            .map(|j| ((i * 7 + j * 13) % 251) as u8)
            .collect();
        tar.file(&format!("lib/part{i}"), &data, 0o644);
    }
    let archive = Arc::new(tar.end().gz());
    sandbox.publish_verified(&archive);
    let repo = sandbox.repo();
    let served = Arc::clone(&archive);
    let server = FaultServer::start(move |req, n, stream| handler(&repo, &served, req, n, stream));
    (sandbox, server, archive)
}

/// A config with short timeouts and fast retries, for fault tests.
fn fast_config(sandbox: &Sandbox, extra: &str) -> PathBuf {
    let path = sandbox.path().join("config.json");
    let body = format!(
        r#"{{"connectTimeoutSecs": 2, "responseTimeoutSecs": 2, "readTimeoutSecs": 1, "retries": 2, "retryBackoffMs": 50{extra}}}"#
    );
    std::fs::write(&path, body).unwrap();
    path
}

fn install_from(sandbox: &Sandbox, config: &PathBuf, url: &str) -> Output {
    run(sandbox
        .copkg()
        .arg("--config")
        .arg(config)
        .args(["--repo", url, "install", COORD]))
}

fn is_archive(req: &Request) -> bool {
    req.path.ends_with(".tar.gz")
}

fn range_start(req: &Request) -> Option<usize> {
    req.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// Sends headers announcing the whole archive, then only `cut` bytes of it.
fn truncated(stream: &mut TcpStream, archive: &[u8], cut: usize) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        archive.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&archive[..cut]);
}

fn assert_nothing_installed(sandbox: &Sandbox) {
    assert!(!sandbox.install_dir().exists());
    let tmp = sandbox.root().join(".copkg/tmp");
    if tmp.exists() {
        assert_eq!(
            std::fs::read_dir(tmp).unwrap().count(),
            0,
            "temp dirs left behind"
        );
    }
}

#[test]
fn c1_body_shorter_than_content_length_is_an_error() {
    // Every answer, resumes included, is cut short.
    let (sandbox, server, _) = setup(|repo, archive, req, _, stream| {
        if is_archive(req) {
            truncated(stream, archive, archive.len() / 2);
        } else {
            serve_file(repo, req, stream);
        }
    });
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "cannot unpack {COORD} from {}/{ARCHIVE_PATH}",
            server.url
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("reading the archive failed"),
        "{}",
        out.stderr
    );
    assert_nothing_installed(&sandbox);
}

#[test]
fn c2_stall_after_headers_times_out() {
    let (sandbox, server, _) = setup(|repo, archive, req, _, stream| {
        if is_archive(req) {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                archive.len()
            );
            let _ = stream.write_all(head.as_bytes());
            std::thread::sleep(Duration::from_secs(30));
        } else {
            serve_file(repo, req, stream);
        }
    });
    let config = fast_config(&sandbox, "");
    let started = Instant::now();
    let out = install_from(&sandbox, &config, &server.url);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 9, "{out:?}");
    assert!(
        out.stderr.to_lowercase().contains("timed out") || out.stderr.contains("timeout"),
        "{}",
        out.stderr
    );
    assert_nothing_installed(&sandbox);
}

#[test]
fn c2_stall_during_body_times_out() {
    let (sandbox, server, _) = setup(|repo, archive, req, _, stream| {
        if is_archive(req) {
            truncated(stream, archive, archive.len() / 3);
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(30));
        } else {
            serve_file(repo, req, stream);
        }
    });
    let config = fast_config(&sandbox, "");
    let started = Instant::now();
    let out = install_from(&sandbox, &config, &server.url);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 9, "{out:?}");
    assert_nothing_installed(&sandbox);
}

#[test]
fn c2_no_response_headers_times_out() {
    let server = FaultServer::start(|_, _, _| std::thread::sleep(Duration::from_secs(30)));
    let sandbox = Sandbox::new();
    let config = fast_config(&sandbox, "");
    let started = Instant::now();
    let out = install_from(&sandbox, &config, &server.url);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    // A timeout after the retries is a network failure.
    assert_eq!(out.code, 9, "{out:?}");
    assert!(
        out.stderr.contains("timeout") || out.stderr.contains("timed out"),
        "{}",
        out.stderr
    );
    // Timeouts are retried: three attempts in all with retries = 2, for
    // the sidecar and for the archive asked for with it.
    assert_eq!(asked(&server), per_path(&[3, 3, 0, 0]));
}

/// How often each of the sidecar, the archive, the zip's sidecar and the
/// zip was asked for (they are asked for at once, in no fixed order).
fn asked(server: &FaultServer) -> Vec<(String, usize)> {
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    files()
        .into_iter()
        .map(|file| {
            let n = paths.iter().filter(|p| **p == file).count();
            (file, n)
        })
        .collect()
}

/// The four files of [`asked`] with the counts given.
fn per_path(counts: &[usize; 4]) -> Vec<(String, usize)> {
    files().into_iter().zip(counts.iter().copied()).collect()
}

fn files() -> [String; 4] {
    let zip = ARCHIVE_PATH.replace(".tar.gz", ".zip");
    [
        format!("/{ARCHIVE_PATH}.sha256"),
        format!("/{ARCHIVE_PATH}"),
        format!("/{zip}.sha256"),
        format!("/{zip}"),
    ]
}

/// Sends the archive's headers (a 206 with its Content-Range for a resume),
/// then one byte every `every`, until the client goes away.
fn trickle(stream: &mut TcpStream, archive: &[u8], from: usize, every: Duration) {
    let head = if from == 0 {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            archive.len()
        )
    } else {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\n\r\n",
            archive.len() - from,
            archive.len() - 1,
            archive.len()
        )
    };
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for byte in &archive[from..archive.len().min(from + 30)] {
        std::thread::sleep(every);
        if stream
            .write_all(&[*byte])
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn h4_a_trickling_server_fails_below_the_low_speed_limit() {
    // A byte every 2 s: every read returns well within the read timeout,
    // so only the low-speed limit can stop it.
    let (sandbox, server, _) = setup(|repo, archive, req, _, stream| {
        if is_archive(req) {
            let from = range_start(req).unwrap_or(0);
            trickle(stream, archive, from, Duration::from_secs(2));
        } else {
            serve_file(repo, req, stream);
        }
    });
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"connectTimeoutSecs": 2, "responseTimeoutSecs": 2, "readTimeoutSecs": 5,
            "retries": 2, "retryBackoffMs": 50, "lowSpeedTimeSecs": 3}"#,
    )
    .unwrap();
    let started = Instant::now();
    let out = install_from(&sandbox, &config, &server.url);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(out.code, 9, "{out:?}");
    let url = format!("{}/{ARCHIVE_PATH}", server.url);
    let stderr = out.stderr.replace(&url, "URL");
    // The rate depends on timing: check the rest of the message exactly.
    let rate = regex_free_rate(&stderr);
    assert_eq!(
        stderr.replace(&rate, "R"),
        format!(
            "error: cannot install {COORD}\n  caused by: cannot unpack {COORD} from URL\n  caused by: reading the archive failed\n  caused by: URL: R, below the low-speed limit of 1024 bytes/s\n"
        ),
        "{}",
        out.stderr
    );
    // The first slow window is resumed (a new connection may be faster);
    // the second in a row ends the download.
    let archive_requests: Vec<Option<usize>> = server
        .requests()
        .iter()
        .filter(|r| is_archive(r))
        .map(range_start)
        .collect();
    assert_eq!(archive_requests.len(), 2, "{archive_requests:?}");
    assert_eq!(archive_requests[0], None);
    assert!(archive_requests[1].is_some_and(|from| from > 0));
    assert_nothing_installed(&sandbox);

    // The same limits leave a normal download alone.
    let other = Sandbox::new();
    other.publish_verified(&std::fs::read(sandbox.repo().join(ARCHIVE_PATH)).unwrap());
    let repo = other.repo();
    let normal = FaultServer::start(move |req, _, stream| serve_file(&repo, req, stream));
    let out = install_from(&other, &config, &normal.url);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(other.install_dir().join("lib/part7").is_file());
}

/// The `N bytes/s over the last S s` part of a low-speed message.
fn regex_free_rate(text: &str) -> String {
    let end = text.find(", below the low-speed limit").expect(text);
    let start = text[..end].rfind("URL: ").expect(text) + "URL: ".len();
    let rate = &text[start..end];
    let words: Vec<&str> = rate.split(' ').collect();
    assert_eq!(words.len(), 7, "{rate}");
    assert!(words[0].parse::<f64>().is_ok_and(|r| r < 1024.0), "{rate}");
    assert_eq!(&words[1..5], ["bytes/s", "over", "the", "last"], "{rate}");
    assert!(words[5].parse::<f64>().is_ok_and(|s| s >= 3.0), "{rate}");
    assert_eq!(words[6], "s", "{rate}");
    rate.to_owned()
}

#[test]
fn c3_server_errors_are_retried_then_succeed() {
    // Each file fails twice (500, then 503) before it is served.
    let tries = std::sync::Mutex::new(std::collections::HashMap::<String, usize>::new());
    let (sandbox, server, _) = setup(move |repo, _, req, _, stream| {
        let n = {
            let mut tries = tries.lock().unwrap();
            let n = tries.entry(req.path.clone()).or_default();
            *n += 1;
            *n
        };
        match n {
            1 => respond(stream, "500 Internal Server Error", &[], b"oops"),
            2 => respond(stream, "503 Service Unavailable", &[], b"busy"),
            _ => serve_file(repo, req, stream),
        }
    });
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(asked(&server), per_path(&[3, 3, 0, 0]));
}

#[test]
fn c3_retry_after_is_honoured() {
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&times);
    let sidecar = format!("/{ARCHIVE_PATH}.sha256");
    let (sandbox, server, _) = setup(move |repo, _, req, _, stream| {
        if req.path != sidecar {
            return serve_file(repo, req, stream);
        }
        let first = {
            let mut seen = seen.lock().unwrap();
            seen.push(Instant::now());
            seen.len() == 1
        };
        if first {
            respond(
                stream,
                "429 Too Many Requests",
                &[("Retry-After", "1".to_owned())],
                b"slow down",
            );
        } else {
            serve_file(repo, req, stream);
        }
    });
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 0, "{out:?}");
    let times = times.lock().unwrap();
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[test]
fn c3_retries_give_up_after_the_configured_count() {
    let server = FaultServer::start(|_, _, stream| respond(stream, "502 Bad Gateway", &[], b""));
    let sandbox = Sandbox::new();
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    // A server error that outlived the retries is a network failure.
    assert_eq!(out.code, 9, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{}/{ARCHIVE_PATH}.sha256: HTTP 502", server.url)),
        "{}",
        out.stderr
    );
    // Three attempts each for the sidecar and the archive asked with it.
    assert_eq!(asked(&server), per_path(&[3, 3, 0, 0]));
}

#[test]
fn c3_not_found_and_unauthorized_are_not_retried() {
    // A 404 moves on to the next format (the .tar.gz and its sidecar, then
    // the .zip and its sidecar), each asked for once; a 401 ends the
    // install (the archive was asked for with its sidecar, once).
    for (status, code, counts) in [
        ("404 Not Found", 3, [1, 1, 1, 1]),
        ("401 Unauthorized", 1, [1, 1, 0, 0]),
    ] {
        let server = FaultServer::start(move |_, _, stream| respond(stream, status, &[], b""));
        let sandbox = Sandbox::new();
        let config = fast_config(&sandbox, "");
        let out = install_from(&sandbox, &config, &server.url);
        assert_eq!(out.code, code, "{status}: {out:?}");
        assert_eq!(asked(&server), per_path(&counts), "{status}");
    }
}

/// Serves the archive cut short on its first request, then answers the
/// resume (a Range request) with `resume`.
fn resume_case(
    resume: impl Fn(&[u8], usize, &mut TcpStream) + Send + Sync + 'static,
) -> (Sandbox, FaultServer, Output) {
    let cut = std::sync::atomic::AtomicBool::new(false);
    let (sandbox, server, _) = setup(move |repo, archive, req, _, stream| {
        if !is_archive(req) {
            return serve_file(repo, req, stream);
        }
        match range_start(req) {
            // The first full request gets cut; later ones (restarts) are served whole.
            None if !cut.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                truncated(stream, archive, archive.len() / 2)
            }
            None => respond(stream, "200 OK", &[], archive),
            Some(from) => resume(archive, from, stream),
        }
    });
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    (sandbox, server, out)
}

#[test]
fn c4_resume_with_206_appends_the_rest() {
    let (sandbox, server, out) = resume_case(|archive, from, stream| {
        let range = format!("bytes {from}-{}/{}", archive.len() - 1, archive.len());
        respond(
            stream,
            "206 Partial Content",
            &[("Content-Range", range)],
            &archive[from..],
        );
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("lib/part7").is_file());
    let archive_requests: Vec<Option<String>> = server
        .requests()
        .iter()
        .filter(|r| is_archive(r))
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(archive_requests.len(), 2);
    assert_eq!(archive_requests[0], None);
    let from: usize = archive_requests[1].as_deref().unwrap()[6..]
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > 0, "resume must start after the bytes already read");
}

#[test]
fn c4_resume_answered_200_restarts_from_zero() {
    let (sandbox, server, out) =
        resume_case(|archive, _, stream| respond(stream, "200 OK", &[], archive));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("lib/part7").is_file());
    let archive_requests = server.requests().iter().filter(|r| is_archive(r)).count();
    assert_eq!(
        archive_requests, 3,
        "first, the refused resume, then the restart"
    );
}

#[test]
fn c4_resume_answered_416_restarts() {
    let (sandbox, _, out) =
        resume_case(|_, _, stream| respond(stream, "416 Range Not Satisfiable", &[], b""));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("lib/part7").is_file());
}

#[test]
fn c4_resume_with_a_wrong_content_range_restarts() {
    let (sandbox, _, out) = resume_case(|archive, from, stream| {
        let range = format!("bytes {}-{}/{}", from + 1, archive.len() - 1, archive.len());
        respond(
            stream,
            "206 Partial Content",
            &[("Content-Range", range)],
            &archive[from + 1..],
        );
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("lib/part7").is_file());
}

#[test]
fn c7_credentials_stay_on_their_host_across_redirects() {
    let (sandbox, other, _) = setup(|repo, _, req, _, stream| serve_file(repo, req, stream));
    let other_url = format!("http://localhost:{}", other.port);
    let origin = FaultServer::start(move |req, _, stream| {
        respond(
            stream,
            "302 Found",
            &[("Location", format!("{other_url}{}", req.path))],
            b"",
        );
    });
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"packageBaseUrl": "{}", "username": "deploy", "password": "s3cret"}}"#,
            origin.url
        ),
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    let sent = origin.requests();
    assert!(!sent.is_empty());
    for req in &sent {
        assert_eq!(
            req.header("authorization"),
            Some("Basic ZGVwbG95OnMzY3JldA=="),
            "origin must get the credentials"
        );
    }
    let redirected = other.requests();
    assert!(!redirected.is_empty());
    for req in &redirected {
        assert_eq!(
            req.header("authorization"),
            None,
            "{} got the credentials",
            req.path
        );
    }
}

#[test]
fn c8_redirect_loop_is_a_clear_error() {
    let server = FaultServer::start(|req, _, stream| {
        let next = if req.path.ends_with("/again") {
            req.path.trim_end_matches("/again").to_owned()
        } else {
            format!("{}/again", req.path)
        };
        respond(stream, "301 Moved Permanently", &[("Location", next)], b"");
    });
    let sandbox = Sandbox::new();
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}/{ARCHIVE_PATH}.sha256: redirect loop",
            server.url
        )),
        "{}",
        out.stderr
    );
    // Each of the sidecar and the archive (asked for at once) followed at
    // most a couple of redirects before the loop showed.
    assert!(server.requests().len() <= 6, "{:?}", server.requests());
}

#[test]
fn c9_proxy_is_used_and_no_proxy_entries_are_trimmed() {
    let (sandbox, server, _) = setup(|repo, _, req, _, stream| serve_file(repo, req, stream));
    let proxy = FaultServer::start(|req, _, stream| {
        // An HTTP CONNECT proxy: tunnel to the target.
        let Ok(mut upstream) = TcpStream::connect(&req.path) else {
            return respond(stream, "502 Bad Gateway", &[], b"");
        };
        let _ = stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let (mut down_in, mut down_out) =
            (upstream.try_clone().unwrap(), stream.try_clone().unwrap());
        let pump = std::thread::spawn(move || {
            let _ = std::io::copy(&mut down_in, &mut down_out);
        });
        let _ = std::io::copy(stream, &mut upstream);
        let _ = upstream.shutdown(std::net::Shutdown::Write);
        let _ = pump.join();
    });
    let config = fast_config(&sandbox, "");
    let out = run(sandbox
        .copkg()
        .env("HTTP_PROXY", &proxy.url)
        .arg("--config")
        .arg(&config)
        .args(["--repo", &server.url, "install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    let tunnels = proxy.requests();
    assert!(!tunnels.is_empty(), "the proxy was not used");
    assert_eq!(tunnels[0].path, format!("127.0.0.1:{}", server.port));

    let other = Sandbox::new();
    other.publish_verified(&std::fs::read(sandbox.repo().join(ARCHIVE_PATH)).unwrap());
    let direct = FaultServer::start({
        let repo = other.repo();
        move |req, _, stream| serve_file(&repo, req, stream)
    });
    let before = proxy.requests().len();
    let out = run(other
        .copkg()
        .env("HTTP_PROXY", &proxy.url)
        .env("NO_PROXY", "example.org,  127.0.0.1 , localhost")
        .arg("--config")
        .arg(&config)
        .args(["--repo", &direct.url, "install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        proxy.requests().len(),
        before,
        "NO_PROXY host went through the proxy"
    );
}

#[test]
fn c10_huge_sidecar_is_read_bounded() {
    // Announced as 10 GB: refused from the header.
    let server = FaultServer::start(|_, _, stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n");
        let _ = stream.write_all(&[b'a'; 4096]);
    });
    let sandbox = Sandbox::new();
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("larger than 65536 bytes"),
        "{}",
        out.stderr
    );

    // Endless chunked body with no length: cut at the limit.
    let server = FaultServer::start(|_, _, stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("{:x}\r\n{}\r\n", 8192, "a".repeat(8192));
        for _ in 0..100_000 {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("larger than 65536 bytes"),
        "{}",
        out.stderr
    );
}

#[test]
fn content_encoding_gzip_is_not_decoded() {
    // Static servers often label .tar.gz as gzip-encoded; the bytes must be
    // hashed and unpacked as they are.
    let (sandbox, server, _) = setup(|repo, _, req, _, stream| {
        let path = repo.join(req.path.trim_start_matches('/'));
        let body = std::fs::read(path).unwrap_or_default();
        respond(
            stream,
            "200 OK",
            &[
                ("Content-Encoding", "gzip".to_owned()),
                ("Content-Type", "application/x-tar".to_owned()),
            ],
            &body,
        );
    });
    let config = fast_config(&sandbox, "");
    let out = install_from(&sandbox, &config, &server.url);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("lib/part0").is_file());
}

#[test]
fn empty_credentials_of_an_original_config_send_no_authorization() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let repo = sandbox.repo();
    let server = FaultServer::start(move |req, _, stream| serve_file(&repo, req, stream));
    let config = sandbox.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"packageBaseUrl": "{}", "username": "", "password": ""}}"#,
            server.url
        ),
    )
    .unwrap();
    let out = run(sandbox
        .copkg()
        .arg("--config")
        .arg(&config)
        .args(["install", COORD]));
    assert_eq!(out.code, 0, "{out:?}");
    let sent = server.requests();
    assert!(!sent.is_empty());
    for req in &sent {
        assert_eq!(req.header("authorization"), None, "{}", req.path);
    }
}
