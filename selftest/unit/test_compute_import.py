"""The Compute worker's import of the sslCertificates client alone (goldenpath.gcp.compute), in a
fresh interpreter each: what it loads, that the class is the one the whole package gives, and that a
layout it cannot use falls back to importing the whole package."""

from __future__ import annotations

import subprocess
import sys

from selftest.conftest import ROOT

ALONE = """
import sys
from goldenpath.gcp import compute
cls, what = compute._ssl_certificates_only()
print(what)
print(cls.__module__, cls.__name__)
print(" ".join(sorted(m.rsplit(".", 1)[1] for m in sys.modules
                      if m.startswith("google.cloud.compute_v1.services.") and m.count(".") == 4)))
"""

BROKEN = """
import importlib.util, sys, types
from goldenpath.gcp import compute
# A package module without a __path__: its submodules cannot be imported (a layout it cannot use).
importlib.util.module_from_spec = lambda spec: types.ModuleType(spec.name)
cls, what = compute._ssl_certificates_only()
print(what)
from google.cloud import compute_v1
print(cls is compute_v1.SslCertificatesClient, hasattr(compute_v1, "InstancesClient"))
"""


def _python(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_the_worker_imports_the_ssl_certificates_service_alone() -> None:
    what, cls, services = _python(ALONE)
    assert what == "the sslCertificates client of google.cloud.compute_v1 alone"
    assert cls == "google.cloud.compute_v1.services.ssl_certificates.client SslCertificatesClient"
    # Of about a hundred services the package's __init__ would import: the one read, and the global
    # operations its writes would wait on (its client imports them).
    assert services == "global_operations ssl_certificates"


def test_a_layout_it_cannot_use_falls_back_to_the_whole_package() -> None:
    what, same = _python(BROKEN)
    assert what == "google.cloud.compute_v1 whole"
    assert same == "True True"
