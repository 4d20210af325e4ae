"""copkg's benchmark runner: builds its own workloads, measures copkg side by
side with what an ops engineer would script instead, interleaved in one
run (copkg, the alternative, copkg, ...), and writes BENCHMARKS.md with each
ratio of medians against its target.

    python3 benches/run.py --copkg BIN [--work DIR] [--rounds N]
                           [--only NAME,...] [--out BENCHMARKS.md]

Workloads (names for --only): large, small, http, pack, fleet, start,
status, list, downtime. The work dir must be on disk (not tmpfs): copkg
installs durably (syncfs before the rename), as users run it, with
signatures checked (every package is signed and the key pinned) and the
default -j. Run as root (services are started under cgroups, as root's
default is).
"""
import argparse
import datetime
import functools
import http.server
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_package  # noqa: E402

MIB = 1024 * 1024


# --- running and timing ---------------------------------------------------

class Ran:
    """One timed run: wall seconds and peak RSS (KiB) of the process tree's
    largest process."""

    def __init__(self, wall, rss_kib):
        self.wall = wall
        self.rss_kib = rss_kib


def measure(cmd, env=None, cwd=None, stdin=None, rss=False):
    """Runs `cmd` (a list, or a string for bash), returns a Ran. Fails
    loudly: a benchmark of a failed command measures nothing. With `rss`,
    the peak RSS is taken by GNU time (the rusage of a child of this
    Python would count the Python it was forked from)."""
    if isinstance(cmd, str):
        cmd = ["bash", "-o", "pipefail", "-c", cmd]
    rss_file = None
    if rss:
        rss_file = tempfile.NamedTemporaryFile(prefix="rss.", delete=False)
        rss_file.close()
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + cmd
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if stdin:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("benchmark command failed (exit %d): %s\n%s" % (
            proc.returncode, " ".join(cmd), err.decode(errors="replace")))
    peak = usage.ru_maxrss
    if rss_file:
        with open(rss_file.name) as f:
            peak = int(f.read().split()[-1])
        os.unlink(rss_file.name)
    return Ran(wall, peak)


def quiet(cmd, env=None, **kw):
    """Runs an untimed step; its stderr in the error when it fails."""
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if done.returncode != 0:
        raise SystemExit("benchmark step failed (exit %d): %s\n%s" % (
            done.returncode, " ".join(cmd), done.stderr.decode(errors="replace")))
    return done


def sync():
    os.sync()


def median(values):
    return statistics.median(values)


def ms(seconds):
    return "%.1f ms" % (seconds * 1000) if seconds < 10 else "%.2f s" % seconds


def secs(seconds):
    return "%.3f s" % seconds if seconds >= 0.1 else ms(seconds)


class Result:
    """One row of the table."""

    def __init__(self, workload, against, ours, theirs, ratio_text, target, met, note=""):
        self.workload, self.against = workload, against
        self.ours, self.theirs = ours, theirs
        self.ratio_text, self.target, self.met, self.note = ratio_text, target, met, note


# --- what every workload shares ------------------------------------------

class Bench:
    def __init__(self, copkg, work, rounds):
        self.copkg, self.work, self.rounds = copkg, work, rounds
        self.results = []
        self.rss = {}  # what -> (copkg KiB, tar KiB)
        self.notes = []
        self.home = self.path("home")
        os.makedirs(self.home, exist_ok=True)
        self.env = dict(os.environ, HOME=self.home, COPKG_SOFTWARE_ROOT=self.path("software"),
                        COPKG_RUNTIME_ROOT=self.path("runtime"), COPKG_CACHE_DIR=self.path("cache"))
        for key in ("COPKG_CONFIG", "COPKG_REPO", "COPKG_SITE"):
            self.env.pop(key, None)
        # One signing key for every package; its public key pinned for
        # every repository (signatures then required).
        key = self.path("key")
        quiet([copkg, "keygen", "--out", key], env=self.env, stdin=subprocess.DEVNULL)
        self.key = key + ".key"
        with open(key + ".pub") as f:
            public = f.read().splitlines()[1].strip()
        self.config = self.path("config.json")
        with open(self.config, "w") as f:
            json.dump({"publicKeys": [public]}, f)
        self.env["COPKG_CONFIG"] = self.config

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def fresh(self, *dirs):
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)

    def pack(self, tree, coordinate, repo):
        quiet([self.copkg, "-q", "pack", tree, "--coordinate", coordinate, "--out", repo, "--sign", self.key],
              env=self.env)
        group, artifact, version = coordinate.split(":")
        return os.path.join(repo, *group.split("."), artifact, version,
                            "%s-%s-copkg.tar.gz" % (artifact, version))

    def copkg_cmd(self, *args, root=None, cache=None):
        cmd = [self.copkg, "-q"]
        if root:
            cmd += ["--software-root", root]
        if cache:
            cmd += ["--cache-dir", cache]
        return cmd + list(args)

    def side_by_side(self, sides, rounds=None):
        """`sides`: (name, prepare, cmd) — prepare() runs untimed before
        each run, then a sync so no side pays for the other's writeback.
        Returns {name: [Ran]}, the sides alternating within each round."""
        runs = {name: [] for name, _, _ in sides}
        for _ in range(rounds or self.rounds):
            for name, prepare, cmd in sides:
                if prepare:
                    prepare()
                sync()
                runs[name].append(cmd())
        return runs

    def ratio_row(self, workload, against, runs, ours, theirs, target, note=""):
        """Ratio of medians copkg/alternative against `target` (at most)."""
        a = median([r.wall for r in runs[ours]])
        b = median([r.wall for r in runs[theirs]])
        ratio = a / b
        self.results.append(Result(workload, against, secs(a), secs(b), "%.2f×" % ratio,
                                   "≤ %.2f×" % target, ratio <= target, note))
        print("%-44s copkg %s, %s %s: %.2f× (target ≤ %.2f×)" % (
            workload, secs(a), against, secs(b), ratio, target), flush=True)
        return ratio


# --- install and pack -----------------------------------------------------

def large(b):
    tree = b.path("large-tree")
    if not os.path.exists(tree):
        make_package.main(tree, 160)
    archive = b.pack(tree, "com.example:large:1.0.0", b.path("repo"))
    size = os.path.getsize(archive)
    sw, x = b.path("sw-large"), b.path("x-large")
    runs = b.side_by_side([
        ("copkg", lambda: b.fresh(sw),
         lambda: measure(b.copkg_cmd("--repo", b.path("repo"), "install", "com.example:large:1.0.0", root=sw),
                         env=b.env, rss=True)),
        ("tar", lambda: (b.fresh(x), os.makedirs(x)),
         lambda: measure(["tar", "-xzf", archive, "-C", x], rss=True)),
    ])
    b.rss["large package, file repository"] = (max(r.rss_kib for r in runs["copkg"]),
                                               max(r.rss_kib for r in runs["tar"]))
    b.ratio_row("large package (%d MiB unpacked, %d MiB archive), file repository" % (
        du(tree) // MIB, size // MIB), "tar -xzf", runs, "copkg", "tar", 0.30)
    b.fresh(sw, x)
    return archive


class ScratchFs:
    """A fresh ext4 file system in a file on the work dir's disk, mounted
    on a loop device. ext4 skips inodes freed recently (for a minute or
    more) when it allocates new ones, scanning past each: after a large
    delete, creating 41,000 files costs several times what it costs on a
    file system with no such history, whoever creates them. A fresh file
    system measures every run alike."""

    def __init__(self, b):
        self.image = b.path("scratch.img")
        self.mount = b.path("scratch")
        os.makedirs(self.mount, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(8 << 30)
        quiet(["mkfs.ext4", "-q", "-F", "-N", "1000000", "-E", "lazy_itable_init=0,lazy_journal_init=0",
               self.image])
        quiet(["mount", "-o", "loop", self.image, self.mount])

    def path(self, *parts):
        return os.path.join(self.mount, *parts)

    def close(self):
        subprocess.run(["umount", self.mount])
        os.unlink(self.image)


def small(b):
    tree = b.path("small-tree")
    files = 41000
    if not os.path.exists(tree):
        make_small_tree(tree, files)
    fs = ScratchFs(b)
    try:
        small_in(b, fs, tree, files)
    finally:
        fs.close()


def small_in(b, fs, tree, files):
    archive = b.pack(tree, "com.example:small:1.0.0", fs.path("repo"))
    # Every run into a dir of its own on the fresh file system, nothing
    # removed until it is unmounted (see ScratchFs).
    n = [0]

    def target(kind):
        return fs.path("%s-small-%d" % (kind, n[0]))

    def next_round():
        n[0] += 1
        os.makedirs(target("x"))

    runs = b.side_by_side([
        ("copkg", next_round,
         lambda: measure(b.copkg_cmd("--repo", fs.path("repo"), "install", "com.example:small:1.0.0",
                                     root=target("sw")), env=b.env, rss=True)),
        ("tar", None, lambda: measure(["tar", "-xzf", archive, "-C", target("x")], rss=True)),
    ], rounds=max(3, b.rounds // 2))
    b.rss["%d small files" % files] = (max(r.rss_kib for r in runs["copkg"]),
                                       max(r.rss_kib for r in runs["tar"]))
    b.ratio_row("%d small files (%d MiB), file repository, on a fresh ext4" % (files, du(tree) // MIB),
                "tar -xzf", runs, "copkg", "tar", 0.80)


def make_small_tree(out, files):
    """`files` files of 200 B to 4 KiB of text in 400 directories, like a
    node_modules or a Python virtualenv."""
    import random
    rng = random.Random(7)
    alphabet = b"abcdefghijklmnopqrstuvwxyz \n{}();=."
    blob = bytes(rng.choice(alphabet) for _ in range(1 << 16))
    for n in range(files):
        d = os.path.join(out, "lib", "p%d" % (n % 400))
        if n < 400:
            os.makedirs(d, exist_ok=True)
        size = rng.randint(200, 4096)
        at = rng.randint(0, len(blob) - size)
        with open(os.path.join(d, "f%d.js" % n), "wb") as f:
            f.write(blob[at:at + size])


def du(tree):
    total = 0
    for root, _, names in os.walk(tree):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def http_large(b, archive):
    """The large package over HTTP from nginx on 127.0.0.1 (a Python
    server when there is no nginx): copkg (download cache on, fresh each
    run, as users run it) against curl | tar."""
    server = Nginx(b, b.path("repo")) if shutil.which("nginx") else PyServer(b.path("repo"), 0)
    try:
        url = server.url
        rel = os.path.relpath(archive, b.path("repo"))
        sw, x, cache = b.path("sw-http"), b.path("x-http"), b.path("cache-http")
        runs = b.side_by_side([
            ("copkg", lambda: b.fresh(sw, cache),
             lambda: measure(b.copkg_cmd("--repo", url, "install", "com.example:large:1.0.0", root=sw,
                                         cache=cache), env=b.env, rss=True)),
            ("curl", lambda: (b.fresh(x), os.makedirs(x)),
             lambda: measure("curl -sf %s/%s | tar -xz -C %s" % (url, rel, x), rss=True)),
        ])
        b.rss["large package over HTTP"] = (max(r.rss_kib for r in runs["copkg"]),
                                            max(r.rss_kib for r in runs["curl"]))
        b.ratio_row("large package over HTTP (%s), download cache on" % server.name,
                    "curl -sf URL | tar -xz", runs, "copkg", "curl", 0.30)
        b.fresh(sw, x, cache)
    finally:
        server.stop()


def pack(b):
    tree = b.path("large-tree")
    out, tgz = b.path("pack-out"), b.path("pack.tar.gz")
    runs = b.side_by_side([
        ("copkg", lambda: b.fresh(out),
         lambda: measure([b.copkg, "-q", "pack", tree, "--coordinate", "com.example:large:1.0.0",
                          "--out", out, "--sign", b.key], env=b.env)),
        ("tar", lambda: b.fresh(tgz),
         lambda: measure(["tar", "-czf", tgz, "-C", tree, "."])),
    ])
    ours = os.path.getsize(os.path.join(out, "com/example/large/1.0.0/large-1.0.0-copkg.tar.gz"))
    theirs = os.path.getsize(tgz)
    b.ratio_row("pack of the large package (signed)", "tar -czf", runs, "copkg", "tar", 0.30,
                "archive %.1f MiB against tar's %.1f MiB (%.3f×)" % (ours / MIB, theirs / MIB, ours / theirs))
    b.results[-1].met = b.results[-1].met and ours <= theirs
    b.fresh(out, tgz)


def fleet(b):
    """50 small packages from a repository 20 ms away (every request
    answered 20 ms late, a new connection 20 ms later still: its
    handshake), copkg's default -j against a sequential curl | tar loop."""
    count, delay = 50, 0.020
    repo = b.path("fleet-repo")
    coords, urls = [], []
    for n in range(count):
        tree = b.path("fleet-tree", str(n))
        os.makedirs(os.path.join(tree, "bin"), exist_ok=True)
        with open(os.path.join(tree, "bin", "tool"), "w") as f:
            f.write("#!/bin/sh\necho tool %d\n" % n)
        with open(os.path.join(tree, "data.bin"), "wb") as f:
            f.write(os.urandom(64 * 1024))
        coordinate = "com.example.fleet:tool%d:1.0.%d" % (n, n)
        archive = b.pack(tree, coordinate, repo)
        coords.append(coordinate)
        urls.append(os.path.relpath(archive, repo))
    server = DelayServer(b, repo, delay) if b.delay_server else PyServer(repo, delay)
    try:
        sw, x, cache = b.path("sw-fleet"), b.path("x-fleet"), b.path("cache-fleet")
        loop = "; ".join("mkdir -p %s/%d && curl -sf %s/%s | tar -xz -C %s/%d" % (x, n, server.url, u, x, n)
                         for n, u in enumerate(urls))
        runs = b.side_by_side([
            ("copkg", lambda: b.fresh(sw, cache),
             lambda: measure(b.copkg_cmd("--repo", server.url, "install", *coords, root=sw, cache=cache),
                             env=b.env, rss=True)),
            ("curl", lambda: b.fresh(x), lambda: measure("set -e; " + loop, rss=True)),
        ], rounds=max(3, b.rounds // 2))
        a = median([r.wall for r in runs["copkg"]])
        c = median([r.wall for r in runs["curl"]])
        b.rss["50 small packages over HTTP"] = (max(r.rss_kib for r in runs["copkg"]),
                                                max(r.rss_kib for r in runs["curl"]))
        requests = server.count()
        b.results.append(Result("%d small packages (signed), 20 ms latency (%s), default -j" % (count, server.name),
                                "sequential curl | tar loop", secs(a), secs(c), "%.1f× faster" % (c / a),
                                "≥ 8× faster", c / a >= 8,
                                "%d requests in all" % requests))
        print("%-44s copkg %s, curl loop %s: %.1f× faster (target ≥ 8×)" % ("fleet", secs(a), secs(c), c / a),
              flush=True)
        b.fresh(sw, x, cache)
    finally:
        server.stop()


# --- services -------------------------------------------------------------

TRIVIAL_START = ('local ctx = ...\n'
                 'copkg.spawn({ program = "/bin/sleep", args = { "3600" }, cwd = ctx.runtime_dir,\n'
                 '  stdout = ctx.runtime_dir .. "/console/stdout.log",\n'
                 '  stderr = ctx.runtime_dir .. "/console/stderr.log" })\n')


def trivial_package(b):
    tree = b.path("trivial")
    os.makedirs(os.path.join(tree, "script.d"), exist_ok=True)
    with open(os.path.join(tree, "script.d", "start.lua"), "w") as f:
        f.write(TRIVIAL_START)
    coordinate = "com.example:trivial:1.0.0"
    b.pack(tree, coordinate, b.path("repo"))
    quiet([b.copkg, "-q", "--repo", b.path("repo"), "install", coordinate], env=b.env)
    return coordinate


def start(b):
    coordinate = trivial_package(b)
    pidfile = b.path("ssd.pid")
    n = [0]

    def copkg_start():
        n[0] += 1
        return measure([b.copkg, "-q", "start", coordinate, "%d.trivial.bench.local" % n[0]], env=b.env)

    def copkg_stop():
        if n[0]:
            service = "%d.trivial.bench.local" % n[0]
            quiet([b.copkg, "-q", "stop", service], env=b.env)
            quiet([b.copkg, "-q", "cleanup", service], env=b.env)

    def ssd_start():
        if os.path.exists(pidfile):
            quiet(["start-stop-daemon", "--stop", "--pidfile", pidfile, "--retry", "TERM/5/KILL/5", "--quiet"])
            os.unlink(pidfile)
        return measure(["start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile", pidfile,
                        "--exec", "/bin/sleep", "--", "3600"])

    # The same without cgroups (serviceCgroups false: services tracked by
    # their process groups), to show what joining a cgroup costs.
    plain_config = b.path("no-cgroups.json")
    with open(b.config) as f:
        config = json.load(f)
    config["serviceCgroups"] = False
    with open(plain_config, "w") as f:
        json.dump(config, f)
    plain_env = dict(b.env, COPKG_CONFIG=plain_config)
    m = [0]

    def plain_start():
        m[0] += 1
        return measure([b.copkg, "-q", "start", coordinate, "%d.plain.bench.local" % m[0]], env=plain_env)

    def plain_stop():
        if m[0]:
            service = "%d.plain.bench.local" % m[0]
            quiet([b.copkg, "-q", "stop", service], env=plain_env)
            quiet([b.copkg, "-q", "cleanup", service], env=plain_env)

    try:
        runs = b.side_by_side([
            ("copkg", copkg_stop, copkg_start),
            ("plain", plain_stop, plain_start),
            ("ssd", None, ssd_start),
        ], rounds=b.rounds * 6)
    finally:
        copkg_stop()
        plain_stop()
        if os.path.exists(pidfile):
            subprocess.run(["start-stop-daemon", "--stop", "--pidfile", pidfile, "--quiet"])
    b.ratio_row("copkg start, trivial start.lua (in its cgroup, recorded)",
                "start-stop-daemon --start --background --make-pidfile", runs, "copkg", "ssd", 2.0)
    b.ratio_row("copkg start, trivial start.lua, serviceCgroups false",
                "start-stop-daemon --start --background --make-pidfile", runs, "plain", "ssd", 2.0)
    migration = cgroup_migration()
    if migration is not None:
        b.notes.append("Moving one process into a cgroup (a write of its pid to `cgroup.procs`, "
                       "timed by the runner on this kernel): median %s; `copkg start` moves one "
                       "(the start script or start.lua's runner) into the service's cgroup." % ms(migration))


def cgroup_migration(rounds=10):
    """The kernel's time to move a process into a cgroup v2 cgroup (a
    sleeping child, moved by a write of its pid), or None without cgroup
    v2 here. The moves are spaced out, as starts are: a move right after
    another is cheaper (the kernel's RCU sync of the first still holds)."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                mount = fields[4]
                break
    if mount is None:
        return None
    group = os.path.join(mount, "copkg-bench-migration.%d" % os.getpid())
    os.mkdir(group)
    times = []
    try:
        for _ in range(rounds):
            child = subprocess.Popen(["sleep", "30"])
            time.sleep(0.2)
            start = time.perf_counter()
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(child.pid))
            times.append(time.perf_counter() - start)
            child.kill()
            child.wait()
    finally:
        os.rmdir(group)
    return median(times)


def status(b):
    coordinate = trivial_package(b)
    counts = (100, 1000)
    started = 0
    times = {}
    try:
        for count in counts:
            while started < count:
                quiet([b.copkg, "-q", "start", coordinate, "%d.idle.bench.local" % started], env=b.env)
                started += 1
            runs = [measure([b.copkg, "-q", "--json", "status"], env=b.env) for _ in range(b.rounds * 2)]
            times[count] = median([r.wall for r in runs])
    finally:
        stop_all(b, started)
    growth = times[1000] / times[100]
    b.results.append(Result("copkg status --json over 1,000 running services", "—", secs(times[1000]),
                            "", "%.1f× the time of 100 (linear: 10×)" % growth,
                            "≤ 100 ms, linear", times[1000] <= 0.100 and growth <= 10.5,
                            "100 services: %s" % secs(times[100])))
    print("status: 100 services %s, 1000 services %s, growth %.1f×" % (
        secs(times[100]), secs(times[1000]), growth), flush=True)


def stop_all(b, count):
    """Stops the status workload's services, several at a time."""
    procs = []
    for n in range(count):
        procs.append(subprocess.Popen([b.copkg, "-q", "stop", "%d.idle.bench.local" % n], env=b.env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if len(procs) >= 16:
            procs.pop(0).wait()
    for p in procs:
        p.wait()


def list_packages(b):
    count = 1000
    repo = b.path("list-repo")
    tree = b.path("list-tree")
    os.makedirs(os.path.join(tree, "bin"), exist_ok=True)
    with open(os.path.join(tree, "bin", "tool"), "w") as f:
        f.write("#!/bin/sh\necho tool\n")
    coords = ["com.example.many:p%d:1.0.0" % n for n in range(count)]
    for coordinate in coords:
        b.pack(tree, coordinate, repo)
    sw = b.path("sw-list")
    quiet([b.copkg, "-q", "--software-root", sw, "--repo", repo, "install", "-"], env=b.env,
          input="\n".join(coords).encode())
    runs = [measure([b.copkg, "-q", "--software-root", sw, "list"], env=b.env) for _ in range(b.rounds * 4)]
    took = median([r.wall for r in runs])
    b.results.append(Result("copkg list over %d installed packages" % count, "—", secs(took), "", "",
                            "≤ 30 ms", took <= 0.030))
    print("list over %d packages: %s" % (count, secs(took)), flush=True)
    b.fresh(sw)


def downtime(b):
    """The webapp example: restart and upgrade with --ready tcp, against
    stopping and starting its server by hand (kill, wait for it to exit,
    start it, wait until it answers)."""
    webapp = os.path.join(HERE, "..", "packages-example", "webapp")
    repo = b.path("repo")
    for version in ("1.0.0", "2.0.0"):
        b.pack(webapp, "com.example:webapp:%s" % version, repo)
    port = free_port()
    ready = "tcp:127.0.0.1:%d" % port
    service = "1.web.bench.local"
    quiet([b.copkg, "--repo", repo, "start", "--install", "--ready", ready, "com.example:webapp:1.0.0",
           service, "--", "--port=%d" % port], env=b.env)
    restarts, upgrades = [], []
    try:
        for i in range(b.rounds * 2):
            restarts.append(measure([b.copkg, "-q", "restart", "--ready", ready, service], env=b.env).wall)
            target = "com.example:webapp:2.0.0" if i % 2 == 0 else "com.example:webapp:1.0.0"
            out = quiet([b.copkg, "--repo", repo, "--json", "upgrade", "--ready", ready, service, target],
                        env=b.env)
            upgrades.append(json.loads(out.stdout)["downtime_ms"] / 1000)
    finally:
        quiet([b.copkg, "-q", "stop", service], env=b.env)
    # By hand: the same server, killed and started again.
    server = os.path.join(b.path("software"), "com/example/webapp/1.0.0/lib/server.py")
    by_hand = []
    proc = None
    for _ in range(b.rounds * 2):
        start_at = time.perf_counter()
        if proc:
            proc.terminate()
            proc.wait()
        proc = subprocess.Popen([sys.executable, server, "--port", str(port), "--bind", "127.0.0.1",
                                 "--coordinate", service, "--log", os.devnull, "--config",
                                 os.path.join(os.path.dirname(server), "..", "etc", "webapp.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port)
        by_hand.append(time.perf_counter() - start_at)
    proc.terminate()
    proc.wait()
    r, u, h = median(restarts), median(upgrades), median(by_hand)
    b.results.append(Result("restart downtime, webapp example (--ready tcp)", "kill + start + wait by hand",
                            secs(r), secs(h), "%.2f×" % (r / h), "report", None,
                            "wall time of `copkg restart`: stop, start, ready"))
    b.results.append(Result("upgrade downtime, webapp example (--ready tcp)", "kill + start + wait by hand",
                            secs(u), secs(h), "%.2f×" % (u / h), "report", None,
                            "as `upgrade --json` reports it: from the stop to ready"))
    print("downtime: restart %s, upgrade %s, by hand %s" % (secs(r), secs(u), secs(h)), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.002)
    raise SystemExit("nothing answered on port %d" % port)


# --- servers --------------------------------------------------------------

class PyServer:
    """A threaded static server; each request answered `delay` late, and
    the first request on a connection `delay` later still (the handshake
    a real round trip costs). Counts requests."""

    def __init__(self, root, delay):
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.fresh = True

            def do_GET(self):
                outer.requests += 1
                time.sleep(delay * (2 if self.fresh else 1))
                self.fresh = False
                super().do_GET()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            # As nginx's: the default (5) drops the SYNs of parallel
            # clients, which then wait a second to try again.
            request_queue_size = 511

        self.server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.name = "Python http.server"

    def count(self):
        return self.requests

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class DelayServer:
    """examples/delay_server.rs: the same as PyServer, in Rust, one thread
    a connection (a Python server, serialized by its lock, measures
    itself more than the client once clients work in parallel)."""

    def __init__(self, b, root, delay):
        self.log = b.path("delay-server.%d.log" % os.getpid())
        open(self.log, "w").close()
        self.proc = subprocess.Popen([b.delay_server, root, str(int(delay * 1000)), self.log],
                                     stdout=subprocess.PIPE)
        port = int(self.proc.stdout.readline())
        self.url = "http://127.0.0.1:%d" % port
        self.name = "examples/delay_server.rs"

    def count(self):
        with open(self.log) as f:
            return sum(1 for _ in f)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Nginx:
    def __init__(self, b, root):
        self.dir = b.path("nginx")
        os.makedirs(self.dir, exist_ok=True)
        port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; master_process off; worker_processes 1;
pid %(d)s/nginx.pid; error_log %(d)s/error.log;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy; fastcgi_temp_path %(d)s/fcgi;
  uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  server { listen 127.0.0.1:%(port)d; root %(root)s; }
}
""" % {"d": self.dir, "port": port, "root": root})
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_port(port)
        self.url = "http://127.0.0.1:%d" % port
        self.name = "nginx"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# --- the report -----------------------------------------------------------

def machine(work):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // (1024 * 1024)
    fs = subprocess.run(["df", "--output=fstype", work], capture_output=True, text=True).stdout.split()[-1]
    return "%d cores (%s), %d GiB, Linux %s, work dir on %s" % (os.cpu_count(), cpu, mem, platform.release(), fs)


def report(b, out, command, version, elapsed, where):
    lines = ["# copkg benchmarks", "",
             "Written by `%s` on %s in %.0f s; copkg %s." % (
                 command, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 elapsed, version),
             "", "Machine: %s." % where, "",
             "Each workload is built by the runner and measured side by side with the",
             "alternative, interleaved in one run (%d rounds unless the row says otherwise);" % b.rounds,
             "figures are medians and ratios are copkg's median over the alternative's.",
             "copkg installs durably (syncfs before the rename), writes manifests and",
             "checks signatures (every package is signed, the key pinned), with its",
             "default -j (8); the alternatives are not durable.", "",
             "| workload | against | copkg | alternative | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in b.results:
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        cells = (r.workload + (" (%s)" % r.note if r.note else ""), r.against, r.ours, r.theirs or "—",
                 r.ratio_text or "—", r.target, met)
        lines.append("| %s |" % " | ".join(c.replace("|", "\\|") for c in cells))
    if b.rss:
        lines += ["", "Peak RSS (target: ≤ 32 MiB for any install):", "",
                  "| install | copkg | alternative | met |", "|---|---|---|---|"]
        for what, (ours, theirs) in b.rss.items():
            lines.append("| %s | %.1f MiB | %.1f MiB | %s |" % (
                what, ours / 1024, theirs / 1024, "yes" if ours <= 32 * 1024 else "**no**"))
    if b.notes:
        lines += [""] + b.notes
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


WORKLOADS = ["large", "small", "http", "pack", "fleet", "start", "status", "list", "downtime"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--copkg", required=True)
    parser.add_argument("--work")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--command", default="scripts/benchmarks")
    parser.add_argument("--delay-server", help="examples/delay_server.rs, built (else a Python server)")
    opts = parser.parse_args()
    only = opts.only.split(",")
    for name in only:
        if name not in WORKLOADS:
            raise SystemExit("no workload %r (workloads: %s)" % (name, ", ".join(WORKLOADS)))
    work = opts.work or tempfile.mkdtemp(prefix="copkg-benchmarks.", dir="/var/tmp")
    os.chdir(work)
    began = time.perf_counter()
    b = Bench(os.path.abspath(opts.copkg), work, opts.rounds)
    b.delay_server = opts.delay_server and os.path.abspath(opts.delay_server)
    version = quiet([b.copkg, "--version"]).stdout.decode().split()[-1]
    where = machine(work)
    try:
        archive = None
        if "large" in only or "http" in only:
            archive = large(b) if "large" in only else None
        if "small" in only:
            small(b)
        if "http" in only:
            if archive is None:
                tree = b.path("large-tree")
                if not os.path.exists(tree):
                    make_package.main(tree, 160)
                archive = b.pack(tree, "com.example:large:1.0.0", b.path("repo"))
            http_large(b, archive)
        if "pack" in only:
            if not os.path.exists(b.path("large-tree")):
                make_package.main(b.path("large-tree"), 160)
            pack(b)
        if "fleet" in only:
            fleet(b)
        if "start" in only:
            start(b)
        if "status" in only:
            status(b)
        if "list" in only:
            list_packages(b)
        if "downtime" in only:
            downtime(b)
    finally:
        if not opts.work:
            shutil.rmtree(work, ignore_errors=True)
    report(b, opts.out if os.path.isabs(opts.out) else os.path.join(os.environ.get("PWD", "."), opts.out),
           opts.command, version, time.perf_counter() - began, where)


if __name__ == "__main__":
    main()
