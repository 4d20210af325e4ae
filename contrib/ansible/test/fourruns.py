#!/usr/bin/env python3
"""Runs each copkg.ops module against the test's hosts in four runs, as
Ansible's own integration tests do: check mode, real, check again, real
again; the second pair must change nothing (state: restarted changes every
time). Then the rolling-upgrade example, with host 2's new version never
ready: host 1 upgraded, host 2 rolled back and failed, the play stopped
there, host 3 untouched. Prints a table (host, module, run, changed, ok)
and "N passed, N failed"; exits 1 when anything was not as expected.

Called by contrib/ansible/test/run, which makes the hosts and the inventory
(per host: copkg_config, copkg_software_root, copkg_runtime_root,
copkg_repositories; for all: copkg_binary)."""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "1.web.ansible.test"
NOBODY = "9.nothing.ansible.test"
HELLO = "com.example:hello:1.0.0"
WEB_1 = "com.example:webapp:1.0.0"
WEB_2 = "com.example:webapp:1.0.1"
WEB_3 = "com.example:webapp:1.0.2"
PORT = 8080
READY = "http:http://127.0.0.1:%d/" % PORT

# Expected `changed` in the four runs: check, real, check, real.
ONCE = (True, True, False, False)
ALWAYS = (True, True, True, True)
NEVER = (False, False, False, False)
RUNS = ("check", "real", "check", "real")
# A package no repository has: a dry run asks the repositories as the
# install would, so check mode fails as the real run does, with copkg's
# exit code 3 (not found) and message.
NOT_FOUND = (3, 3, 3, 3)

# Every module task gets the host's copkg and roots from the inventory.
COMMON = {
    "binary": "{{ copkg_binary }}",
    "config": "{{ copkg_config }}",
    "software_root": "{{ copkg_software_root }}",
    "runtime_root": "{{ copkg_runtime_root }}",
    "repositories": "{{ copkg_repositories }}",
}


def scenarios(hello_pin):
    """(title, module, options, expected changed per run, assertions after
    a real run)."""
    web = {"name": SERVICE, "args": ["--port=%d" % PORT], "ready": READY}
    return [
        ("package present", "package",
         {"coordinates": [hello_pin, WEB_1]}, ONCE,
         ["result.changed_coordinates | length in [0, 2]"]),
        ("service started", "service",
         dict(web, package=WEB_1, enabled=True), ONCE,
         ["result.after.state == 'running'",
          "result.after.package == '%s'" % WEB_1,
          "result.after.enabled"]),
        ("facts", "facts", {}, NEVER,
         ["ansible_facts.copkg_services['%s'].state == 'running'" % SERVICE,
          "'%s' in ansible_facts.copkg_packages" % HELLO]),
        ("service started, new package", "service",
         dict(web, package=WEB_2, enabled=True), ONCE,
         ["result.after.package == '%s'" % WEB_2]),
        ("service started, new arguments", "service",
         dict(web, package=WEB_2, args=web["args"] + ["--bind=127.0.0.1"]), ONCE,
         ["result.after.args == ['--port=%d', '--bind=127.0.0.1']" % PORT,
          "result.after.package == '%s'" % WEB_2]),
        ("service restarted", "service",
         {"name": SERVICE, "state": "restarted", "ready": READY}, ALWAYS,
         ["result.after.state == 'running'"]),
        ("service stopped", "service",
         {"name": SERVICE, "state": "stopped"}, ONCE,
         ["result.after.state == 'stopped'"]),
        # Kept data/ and etc/ show as a runtime dir without a package; a
        # second run must not remove them.
        ("service absent", "service",
         {"name": SERVICE, "state": "absent"}, ONCE,
         ["result.after is not none", "not result.after.package"]),
        ("service absent, no data", "service",
         {"name": SERVICE, "state": "absent", "keep_data": False}, ONCE,
         ["result.after is none"]),
        ("no such service stopped", "service",
         {"name": NOBODY, "state": "stopped"}, NEVER, []),
        ("no such service absent", "service",
         {"name": NOBODY, "state": "absent"}, NEVER, []),
        ("package not in the repository", "package",
         {"coordinates": ["com.example:nothing:1.0.0"]}, NOT_FOUND, []),
        ("package absent", "package",
         {"coordinates": [HELLO, WEB_1, WEB_2], "state": "absent"}, ONCE, []),
    ]


class Runner:
    def __init__(self, opts):
        self.opts = opts
        self.hosts = ["h%d" % i for i in range(1, opts.hosts + 1)]
        self.rows = []
        self.failures = []
        self.count = 0

    def playbook(self, title, module, options, asserts):
        task = {"name": "copkg", "copkg.ops." + module: dict(COMMON, **options), "register": "result"}
        tasks = [task]
        if asserts:
            tasks.append({"name": "assert", "ansible.builtin.assert": {"that": asserts, "quiet": True}})
        play = [{"name": title, "hosts": "web", "gather_facts": False, "tasks": tasks}]
        self.count += 1
        path = os.path.join(self.opts.work, "play-%02d.yml" % self.count)
        with open(path, "w") as out:
            json.dump(play, out, indent=1)
        return path

    def ansible(self, playbook, check=False, extra=()):
        """Runs ansible-playbook; its exit code and the task results."""
        self.count += 1
        record = os.path.join(self.opts.work, "results-%02d-%s.jsonl" % (
            self.count, os.path.basename(playbook).rsplit(".", 1)[0]))
        env = dict(os.environ)
        env.update(
            COPKG_ANSIBLE_RECORD=record,
            ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
            ANSIBLE_CALLBACKS_ENABLED="record",
        )
        cmd = [os.path.join(self.opts.venv, "bin", "ansible-playbook"), "-i", self.opts.inventory, playbook]
        if check:
            cmd.append("--check")
        cmd += list(extra)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        results = []
        if os.path.exists(record):
            with open(record) as lines:
                results = [json.loads(line) for line in lines if line.strip()]
        return proc.returncode, proc.stdout, results

    def row(self, host, module, run, changed, ok, why=""):
        shown = "-" if changed is None else changed if isinstance(changed, str) else str(changed).lower()
        self.rows.append((host, module, run, shown, "ok" if ok else "FAIL"))
        if not ok:
            self.failures.append("%s %s %s: %s" % (host, module, run, why))

    def four_runs(self, cases):
        """One playbook: per case, the module in check mode, real, check
        mode again, real again (task-level check_mode, as Ansible's own
        integration tests do), each followed by the case's assertions
        after a real run. Errors are ignored so that every task runs and
        is judged."""
        tasks = []
        skip_check = os.environ.get("COPKG_ANSIBLE_SKIP_CHECK") == "1"
        for n, (title, module, options, expected, asserts) in enumerate(cases):
            for run, mode in enumerate(RUNS, 1):
                if mode == "check" and skip_check:
                    continue
                name = "%s | %d %s" % (title, run, mode)
                tasks.append({
                    "name": name, "copkg.ops." + module: dict(COMMON, **options),
                    "check_mode": mode == "check", "register": "result", "ignore_errors": True,
                })
                if asserts and mode == "real":
                    tasks.append({
                        "name": name + " | assert", "ansible.builtin.assert": {"that": asserts, "quiet": True},
                        "ignore_errors": True,
                    })
        play = [{"name": "copkg.ops, four runs", "hosts": "web", "gather_facts": False, "tasks": tasks}]
        self.count += 1
        path = os.path.join(self.opts.work, "play-%02d.yml" % self.count)
        with open(path, "w") as out:
            json.dump(play, out, indent=1)
        rc, output, results = self.ansible(path)
        by_task = {}
        for r in results:
            by_task[(r["host"], r["task"])] = r
        for title, module, options, expected, asserts in cases:
            for run, (mode, want) in enumerate(zip(RUNS, expected), 1):
                if mode == "check" and skip_check:
                    continue
                name = "%s | %d %s" % (title, run, mode)
                for host in self.hosts:
                    task = by_task.get((host, name))
                    if task is None:
                        self.row(host, title, "%d %s" % (run, mode), None, False,
                                 "no result (ansible exit %d)\n%s" % (rc, output[-3000:]))
                        continue
                    problems = []
                    if isinstance(want, int) and not isinstance(want, bool):
                        # Fails with copkg's exit code and message, changes nothing.
                        outcome = task["result"]
                        if not task["failed"] or outcome.get("rc") != want or task["changed"]:
                            problems.append("expected a failure with exit code %d, got failed %s, rc %s, changed %s" % (
                                want, task["failed"], outcome.get("rc"), task["changed"]))
                        if not str(outcome.get("msg", "")).startswith("error"):
                            problems.append("msg is not copkg's message: %r" % outcome.get("msg"))
                        self.row(host, "%s (%s)" % (title, module), "%d %s" % (run, mode),
                                 "failed rc=%s" % outcome.get("rc"), not problems, "; ".join(problems))
                        continue
                    if task["failed"] or task["unreachable"]:
                        problems.append("failed: %s" % task["result"].get("msg"))
                    if task["changed"] != want:
                        problems.append("changed %s, expected %s (%s)" % (
                            task["changed"], want,
                            task["result"].get("actions", task["result"].get("changed_coordinates"))))
                    if asserts and mode == "real":
                        check = by_task.get((host, name + " | assert"))
                        if check is None or check["failed"]:
                            problems.append("assertion: %s" % (check or {}).get("result", {}).get("msg", "not run"))
                    self.row(host, "%s (%s)" % (title, module), "%d %s" % (run, mode), task["changed"],
                             not problems, "; ".join(problems))

    def rolling_upgrade(self):
        title = "rolling-upgrade.yml"
        # Every host runs 1.0.1 first.
        path = self.playbook("rolling: every host on 1.0.1", "service", {
            "name": SERVICE, "package": WEB_2, "args": ["--port=%d" % PORT], "ready": READY,
        }, [])
        rc, output, results = self.ansible(path)
        if rc != 0:
            self.row("all", title, "setup", None, False, "could not start 1.0.1 everywhere:\n" + output[-3000:])
            return
        example = os.path.join(self.opts.examples, "rolling-upgrade.yml")
        rc, output, results = self.ansible(example, extra=[
            "-e", "copkg_service=%s" % SERVICE, "-e", "copkg_package=%s" % WEB_3,
            "-e", "copkg_ready=%s" % READY, "-e", "copkg_ready_timeout=5",
        ])
        upgrades = dict((r["host"], r) for r in results if r["task"].startswith("Upgrade"))
        facts = self.playbook("rolling: facts", "facts", {}, [])
        _, _, after = self.ansible(facts)
        running = {}
        for r in after:
            if r["task"] == "copkg" and not r["failed"]:
                service = r["result"]["ansible_facts"]["copkg_services"].get(SERVICE, {})
                running[r["host"]] = (service.get("state"), service.get("package"))
        self.row("all", title, "play", None, rc != 0, "the play succeeded; host 2 should have failed it (exit %d)" % rc)
        for i, host in enumerate(self.hosts, 1):
            r = upgrades.get(host)
            if i == 1:
                want, now = "upgraded", ("running", WEB_3)
                ok = r is not None and not r["failed"] and r["changed"]
            elif i == 2:
                want, now = "rolled back (exit 12)", ("running", WEB_2)
                ok = (r is not None and r["failed"] and r["result"].get("rc") == 12
                      and r["result"].get("rolled_back") is True)
            else:
                want, now = "untouched", ("running", WEB_2)
                ok = r is None
            why = []
            if not ok:
                why.append("expected %s, got %s" % (want, "nothing" if r is None else json.dumps(
                    dict((k, r["result"].get(k)) for k in ("changed", "failed", "rc", "msg", "rolled_back")))))
            if running.get(host) != now:
                why.append("runs %s, expected %s" % (running.get(host), now))
            self.row(host, title, "real: " + want, None if r is None else r["changed"], not why, "; ".join(why))
        if 2 in range(1, len(self.hosts) + 1) and upgrades.get("h2"):
            print("host 2's failure, as the task reported it:\n  %s" % upgrades["h2"]["result"].get("msg", "")[:400])
        # Leave nothing running.
        self.ansible(self.playbook("rolling: remove", "service", {
            "name": SERVICE, "state": "absent", "keep_data": False}, []))

    def table(self):
        header = ("HOST", "MODULE", "RUN", "CHANGED", "OK")
        widths = [max(len(str(r[i])) for r in self.rows + [header]) for i in range(len(header))]
        for r in [header] + self.rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", required=True)
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--examples", required=True)
    opts = parser.parse_args()

    with open(os.path.join(opts.work, "h1", "repo", "com", "example", "hello", "1.0.0",
                           "hello-1.0.0-copkg.tar.gz"), "rb") as archive:
        hello_pin = "%s@sha256:%s" % (HELLO, hashlib.sha256(archive.read()).hexdigest())

    runner = Runner(opts)
    started = time.monotonic()
    print("== each module in four runs: check, real, check, real", flush=True)
    runner.four_runs(scenarios(hello_pin))
    print("== rolling upgrade (examples/rolling-upgrade.yml)", flush=True)
    runner.rolling_upgrade()
    print()
    runner.table()
    print()
    for failure in runner.failures:
        print("FAILED: " + failure)
    print("ansible: %d hosts, %.0f s" % (opts.hosts, time.monotonic() - started))
    failed = len(runner.failures)
    print("%d passed, %d failed" % (len(runner.rows) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
