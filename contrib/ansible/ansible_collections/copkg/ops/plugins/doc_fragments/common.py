# -*- coding: utf-8 -*-
# Copyright: copkg contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every copkg module takes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  binary:
    description:
      - The copkg program to run on the managed host.
      - A name is looked up on E(PATH); a path is used as it is.
    type: str
    default: copkg
  config:
    description:
      - Config file copkg reads instead of C(/etc/copkg/config.json) and C(~/.copkg/config.json) (C(--config)).
    type: path
  site:
    description:
      - Site script (Lua) overriding copkg's built-in policy (C(--site)).
    type: path
  software_root:
    description:
      - Where packages are installed (C(--software-root)); copkg's config or default when omitted.
    type: path
  runtime_root:
    description:
      - Where service runtime dirs and copkg's service state live (C(--runtime-root)).
    type: path
  repositories:
    description:
      - Repository bases (V(http://), V(https://), V(file://) or a path), tried in order; each becomes one C(--repo).
      - When given, they replace the repositories of copkg's config.
    type: list
    elements: str
    default: []
notes:
  - The module runs copkg with C(--json) and reads one JSON result a line; in check mode it adds C(--dry-run),
    so copkg itself says what the real run would change. A package to be installed is looked for in the repositories
    (and the download cache) as the install would, so check mode fails, as the real run would, on a package no
    repository has or one without a signature its repository requires.
  - copkg's own environment variables (E(COPKG_CONFIG), E(COPKG_REPO), ...) are not passed on to copkg;
    the module's options say everything.
  - When copkg fails, the task fails with copkg's message (its stderr) as RV(ignore:msg) and its exit code as RV(ignore:rc).
requirements:
  - copkg on the managed host, run as a user that may write its software and runtime roots.
"""
