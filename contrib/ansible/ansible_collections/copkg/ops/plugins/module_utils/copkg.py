# -*- coding: utf-8 -*-
# Copyright: copkg contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the copkg modules share: the options every module takes, the copkg
command line built from them, and running it with --json (and --dry-run in
check mode), one JSON object a line on stdout, copkg's message on stderr."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

# Exit codes of copkg (SPEC.md section 8, docs/exit-codes.md).
EXIT_NOT_RUNNING = 7
EXIT_NO_SUCH_SERVICE = 11
EXIT_ROLLED_BACK = 12
EXIT_NEVER_READY = 14
EXIT_NOT_BACK = 15

# The options every module takes (documented in doc_fragments/common.py).
COMMON_ARGUMENT_SPEC = dict(
    binary=dict(type="str", default="copkg"),
    config=dict(type="path"),
    site=dict(type="path"),
    software_root=dict(type="path"),
    runtime_root=dict(type="path"),
    repositories=dict(type="list", elements="str", default=[]),
)

# copkg reads these when their flag is absent; the modules say everything
# on the command line, so that a task means the same on every host.
_ENVIRONMENT = (
    "COPKG_CONFIG",
    "COPKG_SITE",
    "COPKG_SOFTWARE_ROOT",
    "COPKG_RUNTIME_ROOT",
    "COPKG_REPO",
)


def argument_spec(**specific):
    """The common options plus a module's own."""
    spec = dict(COMMON_ARGUMENT_SPEC)
    spec.update(specific)
    return spec


class CopkgError(Exception):
    """copkg exited non-zero: its exit code, its message (stderr), what it
    printed on stdout (parsed where it was JSON) and the command."""

    def __init__(self, rc, stderr, stdout, results, cmd):
        message = _message(stderr) or "copkg exited with %d" % rc
        super(CopkgError, self).__init__(message)
        self.rc = rc
        self.message = message
        self.stderr = stderr
        self.stdout = stdout
        self.results = results
        self.cmd = cmd

    def fail(self, module, **extra):
        """Fails the task with copkg's message and exit code."""
        module.fail_json(
            msg=self.message,
            rc=self.rc,
            stderr=self.stderr,
            stdout=self.stdout,
            results=self.results,
            cmd=self.cmd,
            **extra
        )


def _message(stderr):
    """copkg's error, as it printed it: the whole cause chain, one line per
    cause, joined. Progress lines before it are dropped."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("error"):
            return " ".join(lines[index:])
    return " ".join(lines[-3:])


class Copkg:
    """copkg on the managed host, configured by the module's common options."""

    def __init__(self, module):
        self.module = module
        params = module.params
        binary = params["binary"]
        if os.path.sep in binary:
            self.binary = binary
        else:
            self.binary = module.get_bin_path(binary, required=True)
        self.global_args = []
        for option, flag in (
            ("config", "--config"),
            ("site", "--site"),
            ("software_root", "--software-root"),
            ("runtime_root", "--runtime-root"),
        ):
            if params.get(option):
                self.global_args += [flag, params[option]]
        for repository in params.get("repositories") or []:
            self.global_args += ["--repo", repository]
        self.commands = []

    def command(self, args, dry_run=None):
        """The command line for copkg ARGS, with --json, and --dry-run in
        check mode (unless dry_run says otherwise)."""
        if dry_run is None:
            dry_run = self.module.check_mode
        cmd = [self.binary, "--json"] + list(self.global_args)
        if dry_run:
            cmd.append("--dry-run")
        return cmd + list(args)

    def run(self, args, dry_run=None, accept=(0,)):
        """Runs copkg ARGS; returns (exit code, JSON results). An exit code
        not in `accept` raises CopkgError."""
        cmd = self.command(args, dry_run)
        for name in _ENVIRONMENT:
            os.environ.pop(name, None)
        rc, stdout, stderr = self.module.run_command(cmd, check_rc=False)
        self.commands.append(cmd)
        results = parse_json_lines(stdout)
        if rc not in accept:
            raise CopkgError(rc, stderr, stdout, results, cmd)
        return rc, results


def parse_json_lines(text):
    """The JSON objects copkg printed, one a line; other lines are skipped."""
    results = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            results.append(json.loads(line))
        except ValueError:
            continue
    return results


def changed_of(result, changing_statuses=()):
    """Whether one copkg result changed something: its `changed`, or where an
    older copkg printed none, whether its `status` is a changing one."""
    if "changed" in result:
        return bool(result["changed"])
    return result.get("status") in changing_statuses


def without_pin(coordinate):
    """A package coordinate without its @sha256 digest pin."""
    return (coordinate or "").split("@", 1)[0]
