"""What tests/conftest.py does in-process, for the ``python -m bulksend`` processes the tests start.

Quiet hours are on by default (21:00-08:00 in each recipient's zone), so a test that sends through a
subprocess would pass or not depending on the hour it runs at: a suite run after 21:00 in London found every
UK number "waiting" and sent nothing. ``quiet_hours_off_by_default`` (tests/conftest.py) turns the default off
in the test process and puts this directory first on ``PYTHONPATH``, so that Python runs this file at the
start of every process a test starts: once ``bulksend.schedule`` is loaded there, its default is off too.
Tests of quiet hours set them (config, campaign file, flag) and pin the clock, as in-process.
Only processes started with the test's environment see this; ``tests/test_startup_imports.py`` sets its own
``PYTHONPATH`` and runs without it.
"""

import importlib.abc
import importlib.util
import sys


class _DefaultQuietHoursOff(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "bulksend.schedule":
            return None
        sys.meta_path.remove(self)  # once: the real finder does the loading
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.DEFAULT_QUIET_HOURS = "off"

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _DefaultQuietHoursOff())
