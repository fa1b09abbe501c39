"""goldenpath: the Issue #1278 runbook as an executable acceptance gate and fix.

This package is the library: no pytest imports, except in ``pytest_plugin.py`` (the gate's hooks and
options, which call the library). Google client libraries are imported only inside
``goldenpath.gcp``, lazily, so a phase never pays for an API it does not use.
"""
