#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: copkg contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""copkg.ops.facts: installed packages and services as Ansible facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: facts
short_description: Installed copkg packages and services as facts
version_added: "0.1.0"
description:
  - Reads what copkg has installed (C(copkg --json list)) and the services it knows (C(copkg --json status))
    on the managed host and sets them as facts. Changes nothing.
extends_documentation_fragment:
  - copkg.ops.common
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
author:
  - copkg contributors
"""

EXAMPLES = r"""
- name: Read copkg's packages and services
  copkg.ops.facts:

- name: Show which package each service runs
  ansible.builtin.debug:
    msg: "{{ item.key }} runs {{ item.value.package }} ({{ item.value.state }})"
  loop: "{{ ansible_facts.copkg_services | dict2items }}"

- name: Fail where webapp 1.0.0 is still installed
  ansible.builtin.assert:
    that: "'com.example:webapp:1.0.0' not in ansible_facts.copkg_packages"
"""

RETURN = r"""
ansible_facts:
  description: Facts about copkg on the managed host.
  returned: always
  type: complex
  contains:
    copkg_packages:
      description: Installed packages by coordinate, each as C(copkg --json list) prints it.
      returned: always
      type: dict
      sample:
        "com.example:hello:1.0.0":
          coordinate: com.example:hello:1.0.0
          dir: /opt/copkg/software/com/example/hello/1.0.0
          sha256: 9b74c9897bac770ffc029102a200c5de
          verified: true
    copkg_services:
      description: Services by coordinate, each as C(copkg --json status) prints it (state, package, pids, enabled, ...).
      returned: always
      type: dict
      sample:
        1.web.prod.eu1:
          service: 1.web.prod.eu1
          state: running
          package: com.example:webapp:1.0.0
          pids: [4242]
          enabled: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.copkg.ops.plugins.module_utils.copkg import (
    Copkg,
    CopkgError,
    argument_spec,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    copkg = Copkg(module)
    try:
        _, packages = copkg.run(["list"], dry_run=False)
        _, services = copkg.run(["status"], dry_run=False)
    except CopkgError as err:
        err.fail(module, changed=False)
    module.exit_json(
        changed=False,
        ansible_facts=dict(
            copkg_packages=dict((p["coordinate"], p) for p in packages if "coordinate" in p),
            copkg_services=dict((s["service"], s) for s in services if "service" in s),
        ),
    )


if __name__ == "__main__":
    main()
