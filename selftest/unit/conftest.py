"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest

from goldenpath.definitions import Definitions, load
from selftest.unit.phase4_world import target


@pytest.fixture(scope="module")
def defs() -> Definitions:
    return load(target())
