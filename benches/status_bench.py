"""Times `copkg status` over N registered services (each a running
process started by a trivial start.lua), for growing N, with each copkg
binary given, interleaved in one run: the medians, and how each grows from
the smallest N to the largest (linear growth is the ratio of the Ns).

    python3 benches/status_bench.py WORKDIR COUNTS ROUNDS CGROUPS COPKG [COPKG...]

COUNTS is comma-separated (100,300,1000); CGROUPS is `true` or `false`
(the serviceCgroups config key: without cgroups, copkg finds a service's
processes by its recorded process groups in /proc).
"""
import json
import os
import statistics
import subprocess
import sys
import time


def run(cmd, env):
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def timed(cmd, env):
    start = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - start


def main():
    work, counts, rounds, cgroups = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    binaries = sys.argv[5:]
    counts = [int(c) for c in counts.split(",")]
    copkg = binaries[0]
    pkg = os.path.join(work, "idle")
    os.makedirs(os.path.join(pkg, "script.d"), exist_ok=True)
    with open(os.path.join(pkg, "script.d", "start.lua"), "w") as f:
        f.write('local ctx = ...\n'
                'copkg.spawn({ program = "/bin/sleep", args = { "3600" }, cwd = ctx.runtime_dir,\n'
                '  stdout = ctx.runtime_dir .. "/console/stdout.log",\n'
                '  stderr = ctx.runtime_dir .. "/console/stderr.log" })\n')
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump({"serviceCgroups": cgroups == "true"}, f)
    env = dict(os.environ, HOME=os.path.join(work, "home"),
               COPKG_CONFIG=config,
               COPKG_SOFTWARE_ROOT=os.path.join(work, "software"),
               COPKG_RUNTIME_ROOT=os.path.join(work, "runtime"))
    os.makedirs(env["HOME"], exist_ok=True)
    coordinate = "com.example:idle:1.0.0"
    run([copkg, "-q", "pack", pkg, "--coordinate", coordinate, "--out",
         os.path.join(work, "repo")], env)
    run([copkg, "-q", "--repo", os.path.join(work, "repo"), "install", coordinate], env)
    started = 0
    medians = {b: {} for b in binaries}
    try:
        for count in counts:
            while started < count:
                run([copkg, "-q", "start", "--user", "root", coordinate,
                     f"{started}.idle.bench.local"], env)
                started += 1
            times = {b: [] for b in binaries}
            for _ in range(rounds):
                for binary in binaries:
                    times[binary].append(timed([binary, "-q", "--json", "status"], env))
            for binary in binaries:
                medians[binary][count] = statistics.median(times[binary])
                print(f"{count} services, {binary}: median {medians[binary][count] * 1000:.1f} ms",
                      flush=True)
    finally:
        for n in range(started):
            subprocess.run([copkg, "-q", "stop", f"{n}.idle.bench.local"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    low, high = counts[0], counts[-1]
    for binary in binaries:
        growth = medians[binary][high] / medians[binary][low]
        print(f"{binary}: {high} services take {growth:.1f}x the time of {low} "
              f"(linear: {high / low:.1f}x)")
    if len(binaries) > 1:
        base = binaries[-1]
        for binary in binaries[:-1]:
            print(f"{binary} / {base} at {high} services: "
                  f"{medians[binary][high] / medians[base][high]:.2f}")


if __name__ == "__main__":
    main()
