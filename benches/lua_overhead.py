"""Measures what the Lua layer costs copkg commands, alternating the runs:

* `copkg install X` of an installed package (policy evaluated in Lua)
  against `copkg list` (same process start and store read, no Lua at all);
* `copkg status SERVICE` (runtime_path hook in Lua) against `copkg status`
  with no names (finds runtime dirs without Lua);
* each Lua path again with a site script that overrides hooks.

    python3 benches/lua_overhead.py COPKG WORKDIR [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import time


def main():
    copkg, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    env = dict(os.environ, HOME=os.path.join(work, "home"),
               COPKG_SOFTWARE_ROOT=os.path.join(work, "software"),
               COPKG_RUNTIME_ROOT=os.path.join(work, "runtime"),
               COPKG_REPO=os.path.join(work, "repo"))
    os.makedirs(env["HOME"], exist_ok=True)
    pkg = os.path.join(work, "pkg")
    os.makedirs(os.path.join(pkg, "script.d"), exist_ok=True)
    with open(os.path.join(pkg, "script.d", "start.lua"), "w") as f:
        f.write('local ctx = ...\ncopkg.spawn({ program = "/bin/sleep", args = { "3600" }, cwd = ctx.runtime_dir,\n'
                '  stdout = "/dev/null", stderr = "/dev/null" })\n')
    site = os.path.join(work, "site.lua")
    with open(site, "w") as f:
        f.write('local default = require("copkg.policy")\nreturn {\n'
                '  install_path = function(pkg) return default.install_path(pkg) end,\n'
                '  runtime_path = function(svc) return default.runtime_path(svc) end,\n'
                '  before_start = function(ctx) end,\n}\n')
    coordinate, service = "com.example:app:1.0.0", "1.app.bench.local"
    quiet = dict(env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([copkg, "-q", "pack", pkg, "--coordinate", coordinate, "--out", env["COPKG_REPO"]], **quiet)
    subprocess.run([copkg, "-q", "install", coordinate], **quiet)
    subprocess.run([copkg, "-q", "start", coordinate, service], **quiet)

    cases = {
        "list (no Lua)": [copkg, "list"],
        "install, installed (Lua policy)": [copkg, "install", coordinate],
        "install, installed (Lua policy + site script)": [copkg, "--site", site, "install", coordinate],
        "status, all (no Lua)": [copkg, "status"],
        "status SERVICE (Lua policy)": [copkg, "status", service],
        "status SERVICE (Lua policy + site script)": [copkg, "--site", site, "status", service],
    }
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, cmd in cases.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    subprocess.run([copkg, "-q", "stop", service], **quiet)
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    for name, ms in medians.items():
        print(f"{name:48s} {ms:6.2f} ms")
    for base, names in [("list (no Lua)", ["install, installed (Lua policy)",
                                           "install, installed (Lua policy + site script)"]),
                        ("status, all (no Lua)", ["status SERVICE (Lua policy)",
                                                  "status SERVICE (Lua policy + site script)"])]:
        for name in names:
            print(f"{name} vs {base}: +{medians[name] - medians[base]:.2f} ms, "
                  f"ratio {medians[name] / medians[base]:.2f}")


if __name__ == "__main__":
    main()
