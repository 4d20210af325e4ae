"""Times the service lifecycle, side by side in one run:

* `copkg start` of a trivial start.lua service: this copkg tracking the
  service in a cgroup, this copkg without cgroups (`serviceCgroups: false`,
  the fallback), and, when given, an older copkg without process tracking;
  medians and their ratios;
* downtime of `copkg restart --ready tcp:…` of the webapp example (the
  wall time of the restart: from the stop to the new process answering);
* downtime of `copkg upgrade --ready tcp:…` between two versions of the
  webapp example (as the upgrade reports it: from the stop to ready).

    python3 benches/lifecycle_bench.py COPKG WORKDIR [ROUNDS] [OLD_COPKG]
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def timed(cmd, env):
    start = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - start


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    copkg, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    old = sys.argv[4] if len(sys.argv) > 4 else None
    env = dict(os.environ, HOME=os.path.join(work, "home"),
               COPKG_SOFTWARE_ROOT=os.path.join(work, "software"),
               COPKG_RUNTIME_ROOT=os.path.join(work, "runtime"))
    os.makedirs(env["HOME"], exist_ok=True)
    repo = os.path.join(work, "repo")
    nocg = os.path.join(work, "nocgroups.json")
    with open(nocg, "w") as f:
        f.write('{"serviceCgroups": false}')

    # A trivial start.lua service.
    pkg = os.path.join(work, "trivial")
    os.makedirs(os.path.join(pkg, "script.d"), exist_ok=True)
    with open(os.path.join(pkg, "script.d", "start.lua"), "w") as f:
        f.write('local ctx = ...\n'
                'copkg.spawn({ program = "/bin/sleep", args = { "3600" }, cwd = ctx.runtime_dir,\n'
                '  stdout = ctx.runtime_dir .. "/console/stdout.log",\n'
                '  stderr = ctx.runtime_dir .. "/console/stderr.log" })\n')
    trivial = "com.example:trivial:1.0.0"
    run([copkg, "-q", "pack", pkg, "--coordinate", trivial, "--out", repo], env)
    run([copkg, "-q", "--repo", repo, "install", trivial], env)
    # (name, binary, global options, start options, environment)
    variants = [("cgroup", copkg, [], ["--user", "root"], env),
                ("fallback", copkg, ["--config", nocg], ["--user", "root"], env)]
    if old:
        old_env = dict(env, COPKG_RUNTIME_ROOT=os.path.join(work, "old-runtime"),
                       COPKG_SOFTWARE_ROOT=os.path.join(work, "old-software"))
        run([old, "-q", "--repo", repo, "install", trivial], old_env)
        variants.append(("before", old, [], [], old_env))
    times = {name: [] for name, *_ in variants}
    for i in range(rounds):
        for name, binary, options, start_options, e in variants:
            service = f"{i + 1}.{name}.bench.local"
            times[name].append(timed([binary] + options + ["start"] + start_options + [trivial, service], e))
            run([binary] + options + ["stop", service], e)
            run([binary] + options + ["cleanup", service], e)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, m in medians.items():
        print(f"copkg start ({name}): median {m * 1000:.2f} ms over {rounds} runs")
    print(f"ratio cgroup/fallback: {medians['cgroup'] / medians['fallback']:.2f}")
    if old:
        print(f"ratio cgroup/before: {medians['cgroup'] / medians['before']:.2f}")
        print(f"ratio fallback/before: {medians['fallback'] / medians['before']:.2f}")

    # The webapp example: restart and upgrade downtime.
    webapp = os.path.join(HERE, "..", "packages-example", "webapp")
    for version in ("1.0.0", "2.0.0"):
        run([copkg, "-q", "pack", webapp, "--coordinate", f"com.example:webapp:{version}", "--out", repo], env)
    port = free_port()
    ready = f"tcp:127.0.0.1:{port}"
    service = "1.web.bench.local"
    run([copkg, "--repo", repo, "start", "--user", "root", "--install", "--ready", ready,
         "com.example:webapp:1.0.0", service, "--", f"--port={port}"], env)
    restarts = [timed([copkg, "restart", "--ready", ready, service], env) for _ in range(rounds)]
    downtimes = []
    for i in range(rounds):
        target = "com.example:webapp:2.0.0" if i % 2 == 0 else "com.example:webapp:1.0.0"
        out = run([copkg, "--repo", repo, "--json", "upgrade", "--ready", ready, service, target], env)
        downtimes.append(json.loads(out.stdout)["downtime_ms"] / 1000)
    run([copkg, "stop", service], env)
    print(f"restart of the webapp example (--ready {ready.split(':')[0]}): median {statistics.median(restarts) * 1000:.1f} ms"
          f" (min {min(restarts) * 1000:.1f}, max {max(restarts) * 1000:.1f}) over {rounds}")
    print(f"upgrade downtime of the webapp example (1.0.0 <-> 2.0.0): median {statistics.median(downtimes) * 1000:.1f} ms"
          f" (min {min(downtimes) * 1000:.1f}, max {max(downtimes) * 1000:.1f}) over {rounds}")


if __name__ == "__main__":
    main()
