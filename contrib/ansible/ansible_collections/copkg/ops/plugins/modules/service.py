#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: copkg contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""copkg.ops.service: a copkg service started, stopped, restarted, upgraded,
enabled or removed, by copkg start/stop/restart/upgrade/enable/disable/cleanup."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: service
short_description: Start, stop, restart, upgrade, enable or remove a copkg service
version_added: "0.1.0"
description:
  - Brings a copkg service to the state asked for, running copkg's own commands on the managed host
    (C(copkg status), C(start), C(stop), C(restart), C(upgrade), C(enable), C(disable), C(cleanup)).
  - A running service whose package differs from O(package) is upgraded with C(copkg upgrade);
    the new version is installed, the service moved to it and checked for readiness; if it never becomes ready
    copkg rolls back to the old version (exit code 12) and the task fails with copkg's message.
  - A service that does not exist is already V(stopped) and already V(absent); the task reports no change.
options:
  name:
    description:
      - The service coordinate (C(instance.service.user.cell)).
    type: str
    required: true
    aliases: [service]
  package:
    description:
      - The package coordinate the service runs (C(group:artifact:version), optionally with an C(@sha256:HEX) pin).
      - Needed to start a service that does not exist yet; a stopped service restarts from its recorded package when omitted.
      - On a running service, a different package upgrades it (C(copkg upgrade)) when O(state) is V(started) or V(restarted).
    type: str
  args:
    description:
      - Arguments passed to the service's start script (after C(--)) when it is started or upgraded.
      - On a running service whose recorded arguments differ, the service moves to these arguments through
        C(copkg upgrade) to its package (stopped, started with the new arguments, readiness checked, rolled back to
        the old arguments when it does not become ready).
      - Left as recorded when omitted.
    type: list
    elements: str
  user:
    description:
      - The account the service runs as, C(NAME) or C(NAME:GROUP), when it is started (C(--user)).
    type: str
  ready:
    description:
      - Readiness check for start, restart and upgrade (C(--ready)), one of C(tcp:HOST:PORT), C(http:URL) (any 2xx)
        or C(exec:PROGRAM [ARGS]). The package's own check applies when omitted.
    type: str
  ready_timeout:
    description:
      - How long the service has to become ready, in seconds (C(--ready-timeout)); copkg's default when omitted.
    type: float
  enabled:
    description:
      - Whether the service is enabled (C(copkg enable) / C(copkg disable)), that is started at boot and brought back
        after a crash. Left as it is when omitted.
      - Ignored with O(state=absent), which disables the service before removing it.
    type: bool
  state:
    description:
      - V(started) starts the service unless it runs, and upgrades it when it runs another package.
      - V(stopped) stops it if it runs.
      - V(restarted) restarts it (or upgrades it to O(package)); it changes on every run.
      - V(absent) disables and stops the service and removes its runtime dir (C(copkg cleanup)).
    type: str
    choices: [started, stopped, restarted, absent]
    default: started
  keep_data:
    description:
      - With O(state=absent), keep the service's data/ and etc/ (C(copkg cleanup --keep-data)).
      - V(false) removes the whole runtime dir, data included.
    type: bool
    default: true
extends_documentation_fragment:
  - copkg.ops.common
attributes:
  check_mode:
    support: full
    description:
      - Each copkg command is run with C(--dry-run), which says what the real run would change and changes nothing.
      - Where an earlier step only would have happened (a service that would be started, stopped), the steps after it
        are predicted rather than asked of copkg.
  diff_mode:
    support: none
author:
  - copkg contributors
"""

EXAMPLES = r"""
- name: Run the web service from webapp 1.0.0 on port 8080, enabled at boot
  copkg.ops.service:
    name: 1.web.prod.eu1
    package: com.example:webapp:1.0.0
    args: [--port=8080]
    ready: http:http://127.0.0.1:8080/
    enabled: true

- name: Upgrade it (rolled back by copkg if 1.0.1 never becomes ready; the task then fails)
  copkg.ops.service:
    name: 1.web.prod.eu1
    package: com.example:webapp:1.0.1
    args: [--port=8080]
    ready: http:http://127.0.0.1:8080/
    ready_timeout: 20

- name: Restart it
  copkg.ops.service:
    name: 1.web.prod.eu1
    state: restarted

- name: Remove it, data and all
  copkg.ops.service:
    name: 1.web.prod.eu1
    state: absent
    keep_data: false
"""

RETURN = r"""
service:
  description: The service coordinate.
  returned: always
  type: str
  sample: 1.web.prod.eu1
actions:
  description: The copkg commands that changed (or in check mode would change) something, in order.
  returned: always
  type: list
  elements: str
  sample: [upgrade, enable]
before:
  description: C(copkg --json status) of the service before the task; null when it did not exist.
  returned: always
  type: dict
  sample:
    service: 1.web.prod.eu1
    state: running
    package: com.example:webapp:1.0.0
    pids: [4242]
    enabled: true
after:
  description: C(copkg --json status) of the service after the task; null when it does not exist (any more).
    In check mode, the same as RV(before).
  returned: always
  type: dict
results:
  description: copkg's JSON results, one per command run, in order.
  returned: always
  type: list
  elements: dict
rolled_back:
  description: Whether an upgrade failed and copkg brought the old version back (exit code 12).
  returned: always
  type: bool
  sample: false
rc:
  description: copkg's exit code on failure (12 rolled back, 14 never ready, 15 not back either; see copkg's table).
  returned: failed
  type: int
  sample: 12
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.copkg.ops.plugins.module_utils.copkg import (
    EXIT_NO_SUCH_SERVICE,
    EXIT_NOT_RUNNING,
    EXIT_ROLLED_BACK,
    Copkg,
    CopkgError,
    argument_spec,
    changed_of,
    without_pin,
)


def exists(status):
    """Whether copkg knows the service: a status naming a package. What
    `cleanup --keep-data` leaves (data/ and etc/, no record) shows as a
    stopped service without a package: the service itself is absent."""
    return bool(status and status.get("package"))


def kept_data(status):
    """Whether only what `cleanup --keep-data` kept is left."""
    return status is not None and not exists(status)


class Service:
    """One service on the managed host and the steps that move it."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.copkg = Copkg(module)
        self.actions = []
        self.results = []

    def status(self):
        """The service's status, or None when there is no such service.
        Always a real (read-only) run."""
        _, results = self.copkg.run(
            ["status", self.name],
            dry_run=False,
            accept=(0, EXIT_NOT_RUNNING, EXIT_NO_SUCH_SERVICE),
        )
        for result in results:
            if result.get("service") == self.name:
                return result
        return None

    def step(self, action, args, assume_changed=False):
        """Runs one copkg command; records it as an action when it changed
        something (or, for an older copkg that prints no JSON for it, when
        `assume_changed`)."""
        _, results = self.copkg.run(args)
        self.results.extend(results)
        if results:
            changed = any(changed_of(r) for r in results)
        else:
            changed = assume_changed
        if changed:
            self.actions.append(action)
        return changed

    def predict(self, action):
        """A step check mode cannot ask copkg about, because a step before
        it only would have happened."""
        self.actions.append(action)

    def ready_args(self):
        args = []
        if self.params["ready"]:
            args += ["--ready", self.params["ready"]]
        if self.params["ready_timeout"] is not None:
            args += ["--ready-timeout", str(self.params["ready_timeout"])]
        return args

    def start(self, package):
        args = ["start", "--install"]
        if self.params["user"]:
            args += ["--user", self.params["user"]]
        args += self.ready_args() + [package, self.name]
        if self.params["args"]:
            args += ["--"] + self.params["args"]
        self.step("start", args)

    def upgrade(self, package):
        args = ["upgrade"] + self.ready_args() + [self.name, package]
        if self.params["args"]:
            args += ["--"] + self.params["args"]
        self.step("upgrade", args, assume_changed=True)

    def run_or_upgrade(self, before, restart):
        """state=started (restart False) or restarted (restart True)."""
        package = self.params["package"]
        running = before is not None and before.get("state") == "running"
        if not running:
            package = package or (before or {}).get("package")
            if not package:
                self.module.fail_json(
                    msg="%s has no recorded package: give `package` to start it" % self.name,
                    service=self.name,
                )
            self.start(package)
        elif package and without_pin(package) != without_pin(before.get("package")):
            self.upgrade(package)
        elif self.args_changed(before):
            self.upgrade(package or before.get("package"))
        elif restart:
            self.step("restart", ["restart"] + self.ready_args() + [self.name], assume_changed=True)

    def args_changed(self, before):
        """Whether `args` was given and differs from what the running
        service was started with (a copkg whose status does not say is
        taken at its word: no change)."""
        wanted = self.params["args"]
        recorded = before.get("args")
        return wanted is not None and recorded is not None and list(wanted) != list(recorded)

    def set_enabled(self, before, enabled):
        if enabled is None:
            return
        if not exists(before) and self.module.check_mode:
            # The service would be new: copkg has nothing to ask about yet,
            # and a new service is not enabled.
            if enabled:
                self.predict("enable")
            return
        if enabled:
            self.step("enable", ["enable", self.name])
        else:
            self.step("disable", ["disable", self.name])

    def remove(self, before):
        """state=absent: disable, stop, clean up."""
        if kept_data(before):
            # Already absent; only its data is left, removed when asked.
            if not self.params["keep_data"]:
                self.step("cleanup", ["cleanup", self.name], assume_changed=True)
            return
        if before.get("enabled"):
            self.step("disable", ["disable", self.name])
        running = before.get("state") == "running"
        if running:
            self.step("stop", ["stop", self.name], assume_changed=True)
        cleanup = ["cleanup", self.name]
        if self.params["keep_data"]:
            cleanup.insert(1, "--keep-data")
        if running and self.module.check_mode:
            # copkg refuses to clean up a running service; the real run
            # stops it first.
            self.predict("cleanup")
        else:
            self.step("cleanup", cleanup, assume_changed=True)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True, aliases=["service"]),
            package=dict(type="str"),
            args=dict(type="list", elements="str"),
            user=dict(type="str"),
            ready=dict(type="str"),
            ready_timeout=dict(type="float"),
            enabled=dict(type="bool"),
            state=dict(
                type="str",
                default="started",
                choices=["started", "stopped", "restarted", "absent"],
            ),
            keep_data=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    service = Service(module)
    state = module.params["state"]
    before = None
    rolled_back = False
    try:
        before = service.status()
        if state in ("started", "restarted"):
            service.run_or_upgrade(before, restart=state == "restarted")
            service.set_enabled(before, module.params["enabled"])
        elif state == "stopped":
            if exists(before):
                service.step("stop", ["stop", service.name])
                service.set_enabled(before, module.params["enabled"])
        elif before is not None:
            service.remove(before)
        after = before if module.check_mode else service.status()
    except CopkgError as err:
        rolled_back = err.rc == EXIT_ROLLED_BACK
        err.fail(
            module,
            service=service.name,
            # A rolled-back upgrade leaves the old version running, as before.
            changed=bool(service.actions) and not rolled_back,
            actions=service.actions,
            before=before,
            rolled_back=rolled_back,
        )
    module.exit_json(
        changed=bool(service.actions),
        service=service.name,
        actions=service.actions,
        before=before,
        after=after,
        results=service.results,
        rolled_back=rolled_back,
    )


if __name__ == "__main__":
    main()
