# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes every task result, one JSON object a line, to the file named by
COPKG_ANSIBLE_RECORD: what the integration test (fourruns.py) reads."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: record
type: aggregate
short_description: task results as JSON lines, for copkg.ops's integration test
description:
  - Appends each task result (host, task, changed, failed, skipped, unreachable and the module's result)
    to the file named by E(COPKG_ANSIBLE_RECORD).
requirements:
  - enable in configuration
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, **flags):
        path = os.environ.get("COPKG_ANSIBLE_RECORD")
        if not path:
            return
        outcome = dict(result._result)
        line = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "changed": bool(outcome.get("changed", False)),
            "failed": bool(flags.get("failed", False)),
            "skipped": bool(flags.get("skipped", False)),
            "unreachable": bool(flags.get("unreachable", False)),
            "result": outcome,
        }
        with open(path, "a") as out:
            out.write(json.dumps(line, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)
