//! A static HTTP/1.1 file server for the benchmarks (benches/run.py) that
//! plays a repository far away: every response is sent `DELAY_MS` late,
//! and the first on each connection `DELAY_MS` later still (the handshake
//! a real round trip costs). One thread a connection, keep-alive, GET and
//! HEAD only; each request's path is appended to `LOG`.
//!
//!     cargo run --release --example delay_server -- ROOT DELAY_MS LOG
//!
//! Prints the port it listens on (127.0.0.1) as its first line. The CI
//! machines have no netem; a Python server, serialized by its lock, would
//! measure itself rather than the client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: delay_server ROOT DELAY_MS LOG");
        std::process::exit(2);
    }
    let root = PathBuf::from(&args[1]);
    let delay = Duration::from_millis(args[2].parse().expect("DELAY_MS: a number"));
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&args[3])
            .expect("LOG: cannot open"),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot listen");
    println!("{}", listener.local_addr().expect("no address").port());
    std::io::stdout().flush().expect("stdout");
    for stream in listener.incoming().flatten() {
        let root = root.clone();
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let _ = serve(stream, &root, delay, &log);
        });
    }
}

/// Answers the requests of one connection until it closes.
fn serve(
    stream: TcpStream,
    root: &Path,
    delay: Duration,
    log: &Mutex<std::fs::File>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        // The headers: only whether the client wants the connection closed.
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if header.eq_ignore_ascii_case("connection: close") {
                close = true;
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        writeln!(log.lock().unwrap_or_else(|e| e.into_inner()), "{target}")?;
        std::thread::sleep(if first { delay * 2 } else { delay });
        first = false;
        match file_for(root, &target).and_then(|path| std::fs::File::open(path).ok()) {
            Some(mut file) if method == "GET" || method == "HEAD" => {
                let len = file.metadata()?.len();
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n"
                )?;
                if method == "GET" {
                    std::io::copy(&mut (&mut file).take(len), &mut out)?;
                }
            }
            _ => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// The regular file a request path names below `root`, if any.
fn file_for(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split('?').next()?.trim_start_matches('/');
    let relative = Path::new(path);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let full = root.join(relative);
    full.is_file().then_some(full)
}
