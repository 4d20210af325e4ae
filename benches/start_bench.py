"""Times `copkg start` of a trivial start.lua service against
`start-stop-daemon --start --background --make-pidfile` of the same program,
alternately in one run, and prints the medians and their ratio.

    python3 benches/start_bench.py COPKG WORKDIR [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import time


def timed(cmd, env):
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    copkg, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    pkg = os.path.join(work, "trivial")
    os.makedirs(os.path.join(pkg, "script.d"), exist_ok=True)
    with open(os.path.join(pkg, "script.d", "start.lua"), "w") as f:
        f.write('local ctx = ...\n'
                'copkg.spawn({ program = "/bin/sleep", args = { "3600" }, cwd = ctx.runtime_dir,\n'
                '  stdout = ctx.runtime_dir .. "/console/stdout.log",\n'
                '  stderr = ctx.runtime_dir .. "/console/stderr.log" })\n')
    env = dict(os.environ, HOME=os.path.join(work, "home"),
               COPKG_SOFTWARE_ROOT=os.path.join(work, "software"),
               COPKG_RUNTIME_ROOT=os.path.join(work, "runtime"))
    os.makedirs(env["HOME"], exist_ok=True)
    coordinate = "com.example:trivial:1.0.0"
    subprocess.run([copkg, "-q", "pack", pkg, "--coordinate", coordinate, "--out",
                    os.path.join(work, "repo")], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([copkg, "-q", "--repo", os.path.join(work, "repo"), "install", coordinate],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    service = "1.trivial.bench.local"
    pidfile = os.path.join(work, "ssd.pid")
    copkg_times, ssd_times = [], []
    for _ in range(rounds):
        copkg_times.append(timed([copkg, "start", coordinate, service], env))
        subprocess.run([copkg, "stop", service], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([copkg, "cleanup", service], env=env, check=True, stdout=subprocess.DEVNULL)
        ssd_times.append(timed(["start-stop-daemon", "--start", "--background", "--make-pidfile",
                                "--pidfile", pidfile, "--exec", "/bin/sleep", "--", "3600"], env))
        subprocess.run(["start-stop-daemon", "--stop", "--pidfile", pidfile, "--retry", "TERM/5/KILL/5",
                        "--quiet"], check=True)
        os.unlink(pidfile)
    c, s = statistics.median(copkg_times), statistics.median(ssd_times)
    print(f"copkg start (start.lua, copkg.spawn): median {c * 1000:.2f} ms over {rounds} runs")
    print(f"start-stop-daemon --start --background --make-pidfile: median {s * 1000:.2f} ms")
    print(f"ratio copkg/start-stop-daemon: {c / s:.2f}")


if __name__ == "__main__":
    main()
