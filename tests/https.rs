//! https repositories end to end: a real TLS server on 127.0.0.1 (python3's
//! ssl module) with a certificate from a CA made here with openssl; `caFile`
//! trusts it, the built-in roots do not, and an https→http redirect is
//! refused (SECURITY.md C7).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for https tests");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=copkg test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    dir.join("ca.pem")
}

const SERVER: &str = r#"
import http.server, os, ssl, sys
port, certs, root, redirect_to = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", redirect_to + self.path[len("/redirect"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        return super().do_GET()
    def log_message(self, *args):
        pass
os.chdir(root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(certs, "srv.pem"), os.path.join(certs, "srv.key"))
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

struct TlsServer {
    child: Child,
    url: String,
}

impl TlsServer {
    fn start(certs: &Path, root: &Path, redirect_to: &str) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(port.to_string())
            .arg(certs)
            .arg(root)
            .arg(redirect_to)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        TlsServer {
            child,
            url: format!("https://127.0.0.1:{port}"),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_repository_with_a_site_ca() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let certs = sandbox.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_certificates(&certs);
    let plain = StaticServer::start(&sandbox.repo());
    let server = TlsServer::start(&certs, &sandbox.repo(), &plain.url);

    // The built-in roots do not know this CA.
    let out = run(sandbox
        .copkg()
        .args(["--repo", &server.url, "install", COORD]));
    // A TLS failure is a network failure.
    assert_eq!(out.code, 9, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}/{ARCHIVE_PATH}.sha256: request failed",
            server.url
        )),
        "{}",
        out.stderr
    );
    assert!(!sandbox.install_dir().exists());

    let config = sandbox.path().join("config.json");
    std::fs::write(&config, format!(r#"{{"caFile": "{}"}}"#, ca.display())).unwrap();
    // https -> http is refused even with the CA trusted.
    let redirecting = format!("{}/redirect", server.url);
    let out = run(sandbox.copkg().arg("--config").arg(&config).args([
        "--repo",
        &redirecting,
        "install",
        COORD,
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{redirecting}/{ARCHIVE_PATH}.sha256: refusing redirect from https to http ({}/{ARCHIVE_PATH}.sha256)",
            plain.url
        )),
        "{}",
        out.stderr
    );

    let out = run(sandbox.copkg().arg("--config").arg(&config).args([
        "--repo",
        &server.url,
        "install",
        COORD,
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("bin/hello").is_file());

    // A CA file without a certificate is a usage error naming the file.
    std::fs::write(certs.join("empty.pem"), "not a certificate\n").unwrap();
    std::fs::write(
        &config,
        format!(r#"{{"caFile": "{}"}}"#, certs.join("empty.pem").display()),
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--config").arg(&config).arg("list"));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: invalid CA file {}: no PEM certificate in it\n",
            certs.join("empty.pem").display()
        )
    );
}

/// A repository behind the real nginx with TLS (a CA made here) and basic
/// auth: without credentials or with wrong ones nothing installs; with the
/// config's `username`/`password` it does, and the password shows up
/// nowhere (output, journal).
#[test]
fn nginx_repository_with_tls_and_basic_auth() {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: nginx is not installed (CI installs it)");
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let certs = sandbox.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_certificates(&certs);
    let password = "s3cret-Pa55";
    let hash = Command::new("openssl")
        .args(["passwd", "-apr1", password])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let prefix = sandbox.path().join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    std::fs::write(
        prefix.join("htpasswd"),
        format!("deploy:{}", String::from_utf8_lossy(&hash.stdout)),
    )
    .unwrap();
    let port = free_port();
    std::fs::write(
        prefix.join("nginx.conf"),
        format!(
            r#"user root;
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {prefix}/logs/access.log;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {certs}/srv.pem;
    ssl_certificate_key {certs}/srv.key;
    root {repo};
    auth_basic "copkg";
    auth_basic_user_file {prefix}/htpasswd;
  }}
}}
"#,
            prefix = prefix.display(),
            certs = certs.display(),
            repo = sandbox.repo().display(),
        ),
    )
    .unwrap();
    let mut server = Command::new(nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Stop<'a>(&'a mut Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(&mut server);
    wait_for_port(port);
    let url = format!("https://127.0.0.1:{port}");
    let config = sandbox.path().join("config.json");
    let install = |json: String| {
        std::fs::write(&config, json).unwrap();
        run(sandbox
            .copkg()
            .arg("--config")
            .arg(&config)
            .args(["install", COORD]))
    };
    let ca = ca.display();
    // No credentials, then wrong ones: refused, nothing installed.
    for credentials in ["", r#", "username": "deploy", "password": "wrong""#] {
        let out = install(format!(
            r#"{{"caFile": "{ca}", "packageBaseUrl": "{url}"{credentials}}}"#
        ));
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("401"), "{}", out.stderr);
        assert!(!sandbox.install_dir().exists());
    }
    let out = install(format!(
        r#"{{"caFile": "{ca}", "packageBaseUrl": "{url}", "username": "deploy", "password": "{password}"}}"#
    ));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sandbox.install_dir().join("bin/hello").is_file());
    let history = run(sandbox.copkg().args(["--json", "history"]));
    for text in [&out.stdout, &out.stderr, &history.stdout] {
        assert!(!text.contains(password), "the password leaked: {text}");
    }
}
