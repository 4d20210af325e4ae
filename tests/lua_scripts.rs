//! `copkg run` and `copkg site` through the binary: scripted bulk installs
//! against a real HTTP server, the filesystem, JSON and service helpers, and
//! errors with file and line.

mod common;

use std::path::Path;

use common::*;

fn script(sandbox: &Sandbox, text: &str) -> std::path::PathBuf {
    let path = sandbox.path().join("script.lua");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bulk_install_script_reports_each_result() {
    let sandbox = Sandbox::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/hello");
    for version in ["1.0.0", "2.0.0"] {
        let coordinate = format!("com.example:hello:{version}");
        sandbox.pack(&dir, &coordinate);
    }
    let server = StaticServer::start(&sandbox.repo());
    let path = script(
        &sandbox,
        r#"local results = copkg.install_many(copkg.args, { jobs = 2 })
for _, r in ipairs(results) do
  print(r.coordinate, r.status, r.exit_code or 0)
end
local again = copkg.install(copkg.args[1])
print(again.status)
local listed = {}
for _, p in ipairs(copkg.installed()) do listed[#listed + 1] = p.coordinate end
print(table.concat(listed, " "))
print(copkg.resolve("com.example:hello:2.0.0").state)
print(copkg.uninstall("com.example:hello:2.0.0"), copkg.uninstall("com.example:hello:2.0.0"))
"#,
    );
    let out = run(sandbox
        .copkg()
        .args(["--repo", &server.url, "run"])
        .arg(&path)
        .args([
            "com.example:hello:1.0.0",
            "com.example:hello:2.0.0",
            "com.example:hello:3.0.0",
        ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "com.example:hello:1.0.0\tinstalled\t0\ncom.example:hello:2.0.0\tinstalled\t0\ncom.example:hello:3.0.0\tfailed\t3\n\
         already-installed\ncom.example:hello:1.0.0 com.example:hello:2.0.0\ninstalled\ntrue\tfalse\n"
    );
}

#[test]
fn script_errors_show_file_and_line_and_exit_8() {
    let sandbox = Sandbox::new();
    let path = script(&sandbox, "local x = 1\ncopkg.install('not a coordinate')\n");
    let out = run(sandbox
        .copkg()
        .args(["--repo", "/nonexistent", "run"])
        .arg(&path));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: {}:2: copkg.install: invalid package coordinate `not a coordinate`",
            path.display()
        )),
        "{}",
        out.stderr
    );
    let path = script(&sandbox, "local x = = 1\n");
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!(out.code, 8);
    assert!(
        out.stderr
            .starts_with(&format!("error: {}:1:", path.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn a_script_ends_with_the_code_of_the_copkg_error_that_ended_it() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let bad = sandbox.path().join("bad-repo/com/example/hello/1.0.0");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("hello-1.0.0-copkg.tar.gz"), good_archive()).unwrap();
    std::fs::write(
        bad.join("hello-1.0.0-copkg.tar.gz.sha256"),
        format!("{}\n", "0".repeat(64)),
    )
    .unwrap();
    let bad_repo = sandbox.path().join("bad-repo");
    let cases: [(&str, &Path, i32); 6] = [
        // Let through: the code of what failed.
        (
            "copkg.install('com.example:nope:1.0.0')",
            &sandbox.repo(),
            3,
        ),
        ("copkg.install('com.example:hello:1.0.0')", &bad_repo, 4),
        ("copkg.stop('1.web.prod.local')", &sandbox.repo(), 11),
        // Caught and raised again, with a prefix: the same code.
        (
            "local ok, err = pcall(copkg.install, 'com.example:nope:1.0.0')\nerror('rollout stopped: ' .. err)",
            &sandbox.repo(),
            3,
        ),
        // Caught and replaced, or any other Lua error: a script failure.
        (
            "local ok = pcall(copkg.install, 'com.example:nope:1.0.0')\nerror('gave up')",
            &sandbox.repo(),
            8,
        ),
        ("local t = nil\nprint(t.x)", &sandbox.repo(), 8),
    ];
    for (code, repo, want) in cases {
        let path = script(&sandbox, code);
        let out = run(sandbox
            .copkg()
            .arg("--repo")
            .arg(repo)
            .arg("run")
            .arg(&path));
        assert_eq!(out.code, want, "{code}: {out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("error: {}:", path.display())),
            "{code}: {}",
            out.stderr
        );
    }
}

#[test]
fn try_variants_return_nil_and_the_message() {
    let sandbox = Sandbox::new();
    let path = script(
        &sandbox,
        r#"local r, err = copkg.try_read_file("/nonexistent/file")
print(r, err)
local v, err2 = copkg.try_json_decode("{bad")
print(v, err2 ~= nil)
local ok = copkg.try_json_decode('{"a": 1}')
print(ok.a)
"#,
    );
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "nil\tcopkg.read_file: cannot open /nonexistent/file: No such file or directory (os error 2)\nnil\ttrue\n1\n"
    );
}

#[test]
fn filesystem_and_json_helpers() {
    let sandbox = Sandbox::new();
    let work = sandbox.path().join("work");
    let path = script(
        &sandbox,
        &format!(
            r#"local dir = "{}"
copkg.mkdir_p(dir .. "/logs/old")
copkg.write_file(dir .. "/logs/a.log", string.rep("x", 1000))
copkg.write_file(dir .. "/logs/b.log", "b")
copkg.write_file(dir .. "/logs/c.txt", "c")
for _, p in ipairs(copkg.glob(dir .. "/logs/*.log")) do print((p:gsub(dir, ""))) end
for _, e in ipairs(copkg.list(dir .. "/logs")) do print(e.name, e.type, e.size, e.mtime > 0) end
local gz = copkg.gzip(dir .. "/logs/a.log")
print((gz:gsub(dir, "")), copkg.exists(dir .. "/logs/a.log"), copkg.stat(gz).size < 1000)
print(#copkg.sha256(dir .. "/logs/b.log"))
copkg.rename(dir .. "/logs/b.log", dir .. "/logs/old/b.log")
print(copkg.remove(dir .. "/logs/old"), copkg.remove(dir .. "/logs/old"))
print(copkg.json_encode(copkg.json_decode('{{"list":[1,2],"n":null,"s":"t"}}')))
"#,
            work.display()
        ),
    );
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "/logs/a.log\n/logs/b.log\n\
         a.log\tfile\t1000\ttrue\nb.log\tfile\t1\ttrue\nc.txt\tfile\t1\ttrue\nold\tdir\t4096\ttrue\n\
         /logs/a.log.gz\tfalse\ttrue\n64\ntrue\tfalse\n{\"list\":[1,2],\"s\":\"t\"}\n"
    );
    let mut decoder =
        flate2::read::GzDecoder::new(std::fs::File::open(work.join("logs/a.log.gz")).unwrap());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut decoder, &mut text).unwrap();
    assert_eq!(text, "x".repeat(1000));
}

#[test]
fn site_command_reports_overrides_or_the_error() {
    let sandbox = Sandbox::new();
    let site = sandbox.path().join("site.lua");
    std::fs::write(&site, "return {\n  runtime_path = require('copkg.policy').runtime_path_hierarchical,\n  before_start = function(ctx) end,\n}\n").unwrap();
    let out = run(sandbox.copkg().arg("--site").arg(&site).arg("site"));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "site script: {}\ninstall_path\tdefault\nrepository_paths\tdefault\nruntime_path\tsite\nbinary_path\tdefault\n\
             before_start\tsite\nafter_start\tdefault\nbefore_stop\tdefault\nafter_stop\tdefault\nbefore_cleanup\tdefault\n\
             before_upgrade\tdefault\nafter_upgrade\tdefault\nreload_signal\tdefault\nservice_account\tdefault\nservice_settings\tdefault\nready\tdefault\nclean_logs\tdefault\n",
            site.display()
        )
    );
    std::fs::write(
        &site,
        "return {\n  runtime_path = function(svc)\n    return svc..\n  end\n}\n",
    )
    .unwrap();
    let out = run(sandbox.copkg().arg("--site").arg(&site).arg("site"));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: site script refused: {}:4:",
            site.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn service_helpers_from_a_script() {
    let sandbox = Sandbox::new();
    let path = script(
        &sandbox,
        r#"local dir = copkg.prepare_runtime("1.helper.test.local")
print(dir == copkg.runtime_dir("1.helper.test.local"), copkg.is_file(dir .. "/run") , copkg.exists(dir .. "/log"))
local p = copkg.spawn({ program = "/bin/sleep", args = { "30" }, cwd = dir, stdout = dir .. "/console/out", stderr = dir .. "/console/err" })
print(copkg.alive(p.pid), copkg.alive(p.pid, p.start_time), copkg.alive(p.pid, p.start_time + 1))
print(copkg.kill(p.pid, p.start_time + 1, "KILL"), copkg.alive(p.pid))
print(copkg.kill(p.pid, p.start_time, "KILL"))
print(copkg.status("1.helper.test.local").state)
"#,
    );
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "true\tfalse\ttrue\ntrue\ttrue\tfalse\nfalse\ttrue\ntrue\nstopped\n"
    );
}

#[test]
fn rollout_script_installs_starts_checks_and_stops_services() {
    let sandbox = Sandbox::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/webapp");
    let out = run(sandbox
        .copkg()
        .arg("pack")
        .arg(&dir)
        .args(["--coordinate", "com.example:webapp:1.0.0", "--out"])
        .arg(sandbox.repo()));
    assert_eq!(out.code, 0);
    let ports = [free_port(), free_port()];
    let path = script(
        &sandbox,
        r#"local ports = { tonumber(copkg.args[1]), tonumber(copkg.args[2]) }
for i, port in ipairs(ports) do
  local s = copkg.start("com.example:webapp:1.0.0", i .. ".web.prod.trd", { "--port=" .. port }, { install = true })
  local st = copkg.status(s.service)
  print(s.service, #s.pids, st.state, st.user, st.memory > 0, st.enabled, st.restarts)
end
local again = copkg.start("com.example:webapp:1.0.0", "1.web.prod.trd", { "--port=" .. ports[1] })
print(again.changed, #again.pids)
local other, err = copkg.try_start("com.example:webapp:1.0.0", "1.web.prod.trd", { "--port=1" })
print(other, (err:gsub("%(pid %d+%)", "(pid N)")))
local restarted = copkg.restart("2.web.prod.trd")
print(restarted.changed, restarted.pids[1] ~= nil)
for i = 1, 2 do
  print(copkg.stop(i .. ".web.prod.trd").changed, copkg.status(i .. ".web.prod.trd").state)
end
print(copkg.stop("1.web.prod.trd").changed)
"#,
    );
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("run")
        .arg(&path)
        .args([ports[0].to_string(), ports[1].to_string()]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "1.web.prod.trd\t1\trunning\troot\ttrue\tfalse\t0\n2.web.prod.trd\t1\trunning\troot\ttrue\tfalse\t0\nfalse\t1\n\
             nil\tcopkg.start: 1.web.prod.trd already runs com.example:webapp:1.0.0 with arguments [\"--port={}\"] (pid N); use `copkg restart` for new arguments or `copkg upgrade` for another package\n\
             true\ttrue\ntrue\tstopped\ntrue\tstopped\nfalse\n",
            ports[0]
        )
    );
}

#[test]
fn fetch_and_extract_verify_and_refuse_what_install_refuses() {
    let sandbox = Sandbox::new();
    sandbox.publish_verified(&good_archive());
    let work = sandbox.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let evil = work.join("evil.tar.gz");
    std::fs::write(
        &evil,
        Tar::new().symlink("passwd", "/etc/passwd").end().gz(),
    )
    .unwrap();
    let path = script(
        &sandbox,
        &format!(
            r#"local work = "{0}"
local f = copkg.fetch("{COORD}", work .. "/pkg.tar.gz")
print(f.verified, f.sha256 == copkg.sha256(work .. "/pkg.tar.gz"))
local x = copkg.extract(work .. "/pkg.tar.gz", work .. "/unpacked")
print(x.entries, copkg.is_file(work .. "/unpacked/bin/hello"))
print(copkg.try_extract(work .. "/pkg.tar.gz", work .. "/unpacked"))
local ok, err = copkg.try_extract(work .. "/evil.tar.gz", work .. "/evil")
print(ok, err:match("links to the absolute path") ~= nil, copkg.exists(work .. "/evil"))
"#,
            work.display()
        ),
    );
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("run")
        .arg(&path));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "true\ttrue\n6\ttrue\nnil\tcopkg.extract: {0}/unpacked already exists\nnil\ttrue\tfalse\n",
            work.display()
        )
    );
    let leftovers: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "temp dirs left: {leftovers:?}");

    // A digest mismatch is refused and nothing is left at the path.
    sandbox.publish(&good_archive(), Some(&"0".repeat(64)));
    let path = script(
        &sandbox,
        &format!(
            "print(copkg.try_fetch('{COORD}', '{}/other.tar.gz'))\n",
            work.display()
        ),
    );
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("run")
        .arg(&path));
    assert!(
        out.stdout
            .starts_with("nil\tcopkg.fetch: checksum mismatch"),
        "{out:?}"
    );
    assert!(!work.join("other.tar.gz").exists());
}

#[test]
fn fetch_and_extract_take_the_original_copkgs_zip_too() {
    let sandbox = Sandbox::new();
    sandbox.publish_zip_verified(&good_zip());
    let work = sandbox.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("evil.zip"),
        Zip::new().symlink("passwd", "/etc/passwd").bytes(),
    )
    .unwrap();
    let path = script(
        &sandbox,
        &format!(
            r#"local work = "{0}"
local r = copkg.resolve("{COORD}")
print(#r.zips, r.zips[1] == r.archives[1]:gsub("%.tar%.gz$", ".zip"))
local f = copkg.fetch("{COORD}", work .. "/pkg.zip")
print(f.format, f.verified, f.sha256 == copkg.sha256(work .. "/pkg.zip"))
local x = copkg.extract(work .. "/pkg.zip", work .. "/unpacked")
print(x.entries, x.sha256 == f.sha256, copkg.is_file(work .. "/unpacked/bin/hello"))
local ok, err = copkg.try_extract(work .. "/evil.zip", work .. "/evil")
print(ok, err:match("links to the absolute path") ~= nil, copkg.exists(work .. "/evil"))
"#,
            work.display()
        ),
    );
    let out = run(sandbox
        .copkg()
        .arg("--repo")
        .arg(sandbox.repo())
        .arg("run")
        .arg(&path));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "1\ttrue\nzip\ttrue\ttrue\n10\ttrue\ttrue\nnil\ttrue\tfalse\n"
    );
}

#[test]
fn example_rollout_script_runs_twice() {
    let sandbox = Sandbox::new();
    for name in ["hello", "webapp", "ticker"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packages-example")
            .join(name);
        let coordinate = format!("com.example:{name}:1.0.0");
        sandbox.pack(&dir, &coordinate);
    }
    let rollout = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/rollout.lua");
    let port = free_port().to_string();
    let rollout_run = || {
        run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .arg("run")
            .arg(&rollout)
            .arg(&port))
    };
    let out = rollout_run();
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..3],
        [
            "com.example:hello:1.0.0    installed",
            "com.example:webapp:1.0.0   installed",
            "com.example:ticker:1.0.0   installed"
        ]
    );
    assert!(
        lines[3].starts_with("started 1.web.demo.local (pid ")
            && lines[4].starts_with("started 1.ticker.demo.local (pid "),
        "{lines:?}"
    );
    let out = rollout_run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.ends_with(
            "already-installed\n1.web.demo.local already runs\n1.ticker.demo.local already runs\n"
        ),
        "{}",
        out.stdout
    );
    for service in ["1.web.demo.local", "1.ticker.demo.local"] {
        assert_eq!(run(sandbox.copkg().args(["stop", service])).code, 0);
    }
}

/// Runs `copkg` with a site script and a config in the sandbox.
fn with_site_and_config(sandbox: &Sandbox, site: &str, config: &str) -> std::process::Command {
    let site_path = sandbox.path().join("site.lua");
    std::fs::write(&site_path, site).unwrap();
    let config_path = sandbox.path().join("config.json");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = sandbox.copkg();
    cmd.arg("--site")
        .arg(&site_path)
        .arg("--config")
        .arg(&config_path);
    cmd
}

#[test]
fn g8_hooks_that_loop_block_or_allocate_are_bounded_with_a_clear_error() {
    let sandbox = Sandbox::new();
    let cases = [
        (
            "while true do end",
            r#"{"scriptTimeoutSecs": 0.5}"#,
            "hook `install_path` exceeded its time limit of 0.5 s (scriptTimeoutSecs)",
        ),
        (
            "os.execute('sleep 30')",
            r#"{"scriptTimeoutSecs": 0.5}"#,
            "hook `install_path` exceeded its time limit of 0.5 s (scriptTimeoutSecs)",
        ),
        (
            "io.popen('sleep 30'):read('a')",
            r#"{"scriptTimeoutSecs": 0.5}"#,
            "hook `install_path` exceeded its time limit of 0.5 s (scriptTimeoutSecs)",
        ),
        (
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end",
            r#"{"luaMemoryBytes": 16777216}"#,
            "hook `install_path` exceeded its memory limit of 16777216 bytes (luaMemoryBytes)",
        ),
        (
            "os.exit(true)",
            "{}",
            "hook `install_path` called os.exit, which hooks and package scripts may not (raise an error instead)",
        ),
    ];
    for (body, config, want) in cases {
        let site = format!("return {{ install_path = function(pkg)\n  {body}\nend }}\n");
        let started = std::time::Instant::now();
        let out = run(with_site_and_config(&sandbox, &site, config)
            .args(["resolve", "com.example:hello:1.0.0"]));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{body}: took {:?}",
            started.elapsed()
        );
        assert_eq!(out.code, 8, "{body}: {out:?}");
        assert!(out.stderr.contains(want), "{body}: {}", out.stderr);
    }
    // A hook within its limits still works, io.popen and os.execute included.
    let site = "return { install_path = function(pkg)\n  local p = io.popen('printf \"a\\\\nb\\\\n\"')\n  local first, second = p:read('l', 'l')\n  assert(p:close())\n  assert(os.execute('true'))\n  return 'apps/' .. first .. second .. '/' .. pkg.version\nend }\n";
    let out = run(
        with_site_and_config(&sandbox, site, r#"{"scriptTimeoutSecs": 5}"#)
            .args(["resolve", "com.example:hello:1.0.0"]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("software/apps/ab/1.0.0"),
        "{}",
        out.stdout
    );
}

#[test]
fn run_scripts_have_no_limit_unless_asked_and_os_exit_is_their_code() {
    let sandbox = Sandbox::new();
    let path = script(
        &sandbox,
        "print('before')\nos.execute('sleep 0.2')\nos.exit(3)\n",
    );
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!((out.code, out.stdout.as_str()), (3, "before\n"), "{out:?}");
    let path = script(&sandbox, "while true do end\n");
    let out = run(sandbox.copkg().args(["run", "--timeout", "0.5"]).arg(&path));
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{} exceeded its time limit of 0.5 s",
            path.display()
        )),
        "{}",
        out.stderr
    );
    let path = script(
        &sandbox,
        "assert(copkg.api_version == 1)\ncopkg.require_api(1)\ncopkg.require_api(99)\n",
    );
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("copkg.require_api: this script needs copkg Lua API 99"),
        "{}",
        out.stderr
    );
}

#[test]
fn scripts_are_read_bounded_and_only_from_regular_files() {
    let sandbox = Sandbox::new();
    let big = sandbox.path().join("big.lua");
    std::fs::write(&big, format!("-- {}\n", "x".repeat(4 << 20))).unwrap();
    let fifo = sandbox.path().join("fifo.lua");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for (path, why) in [
        (&big, "larger than 4194304 bytes"),
        (&fifo, "not a regular file"),
    ] {
        let started = std::time::Instant::now();
        let out = run(sandbox.copkg().arg("run").arg(path));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                8,
                format!(
                    "error: cannot read Lua script {}\n  caused by: {why}\n",
                    path.display()
                )
                .as_str()
            )
        );
        let out = run(sandbox.copkg().arg("--site").arg(path).arg("site"));
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                2,
                format!(
                    "error: site script refused: cannot read Lua script {}: {why}\n",
                    path.display()
                )
                .as_str()
            )
        );
    }
}

#[test]
fn spawn_never_writes_its_output_through_a_link_an_account_planted() {
    let sandbox = Sandbox::new();
    // A dir the account owns, whose console/ it swapped for a link outside.
    let owned = sandbox.path().join("runtime-of-account");
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(&owned).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, owned.join("console")).unwrap();
    nix::unistd::chown(
        &owned,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .unwrap();
    let path = script(
        &sandbox,
        &format!(
            "local ok, err = pcall(copkg.spawn, {{ program = '/bin/true', cwd = '/', stdout = '{0}/console/out.log', stderr = '/dev/null' }})\nassert(not ok)\nprint(err)\n",
            owned.display()
        ),
    );
    let out = run(sandbox.copkg().arg("run").arg(&path));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("console"), "{}", out.stdout);
    assert!(out.stdout.contains("not followed"), "{}", out.stdout);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "root wrote through the link"
    );
}
