#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: copkg contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""copkg.ops.package: packages installed or not, by copkg install/uninstall."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: package
short_description: Install or uninstall copkg packages
version_added: "0.1.0"
description:
  - Makes sure the packages given are installed (C(copkg install)) or not installed (C(copkg uninstall)) on the managed host.
  - A package already in the wanted state is left alone and reported unchanged.
  - copkg installs atomically and verifies each archive against its checksum, its digest pin and its signature,
    as its config asks; a failed check fails the task with copkg's message and exit code.
options:
  coordinates:
    description:
      - Package coordinates, C(group:artifact:version), each optionally pinned to the sha256 digest of its archive
        (C(group:artifact:version@sha256:HEX)).
    type: list
    elements: str
    required: true
    aliases: [name]
  state:
    description:
      - V(present) installs what is missing; V(absent) uninstalls what is installed.
      - copkg refuses to uninstall a version a registered service names (exit code 6); the task then fails.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - copkg.ops.common
attributes:
  check_mode:
    support: full
    description: Runs copkg with C(--dry-run), which reports what would be installed or removed and changes nothing.
  diff_mode:
    support: none
author:
  - copkg contributors
"""

EXAMPLES = r"""
- name: Install two packages, one pinned to its archive's digest
  copkg.ops.package:
    coordinates:
      - com.example:hello:1.0.0
      - com.example:webapp:1.0.1@sha256:4f0c7d3a9e7c1b0e6a1f3f8b7d2c5e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e
    repositories:
      - https://repo.example.com/copkg

- name: Remove a package no service uses any more
  copkg.ops.package:
    coordinates: [com.example:hello:1.0.0]
    state: absent
"""

RETURN = r"""
changed_coordinates:
  description: The coordinates that were (or in check mode would be) installed or uninstalled.
  returned: always
  type: list
  elements: str
  sample: [com.example:hello:1.0.0]
results:
  description: copkg's JSON result for each coordinate, as C(copkg --json install) or C(copkg --json uninstall) prints it.
  returned: always
  type: list
  elements: dict
  sample:
    - coordinate: com.example:hello:1.0.0
      status: installed
      changed: true
      dir: /opt/copkg/software/com/example/hello/1.0.0
      sha256: 9b74c9897bac770ffc029102a200c5de
      verified: true
cmd:
  description: The copkg command line that was run.
  returned: always
  type: list
  elements: str
rc:
  description: copkg's exit code (on failure; see copkg's exit code table).
  returned: failed
  type: int
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.copkg.ops.plugins.module_utils.copkg import (
    Copkg,
    CopkgError,
    argument_spec,
    changed_of,
)

# The statuses of results that changed something, for a copkg whose
# results carry no `changed` field.
_CHANGING = ("installed", "uninstalled")


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            coordinates=dict(type="list", elements="str", required=True, aliases=["name"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    coordinates = [c.strip() for c in module.params["coordinates"] if c and c.strip()]
    if not coordinates:
        module.fail_json(msg="coordinates: give at least one package coordinate")
    copkg = Copkg(module)
    verb = "install" if module.params["state"] == "present" else "uninstall"
    try:
        _, results = copkg.run([verb] + coordinates)
    except CopkgError as err:
        err.fail(module, changed=any(changed_of(r, _CHANGING) for r in err.results))
    changed = [r.get("coordinate") for r in results if changed_of(r, _CHANGING)]
    module.exit_json(
        changed=bool(changed),
        changed_coordinates=changed,
        results=results,
        cmd=copkg.commands[-1],
    )


if __name__ == "__main__":
    main()
