"""The probes' HTTP stack makes no import at each request: httpcore asks sniffio which event loop
runs at every lock it sets up (``import sniffio`` inside a try), and without sniffio installed every
one of those imports failed after searching sys.path again (pyproject.toml says why it is a
dependency)."""

from __future__ import annotations

import asyncio
import sys
from importlib.machinery import ModuleSpec
from typing import Any, Sequence

import httpcore._synchronization as sync


class Counting:
    """A meta path finder that finds nothing and counts the searches that reach it."""

    def __init__(self) -> None:
        self.searches: list[str] = []

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: Any = None) -> ModuleSpec | None:
        self.searches.append(name)
        return None


def test_httpcores_event_loop_question_imports_nothing() -> None:
    finder = Counting()

    async def ask() -> list[str]:
        return [sync.current_async_library() for _ in range(100)]

    sys.meta_path.insert(0, finder)
    try:
        answers = asyncio.run(ask())
    finally:
        sys.meta_path.remove(finder)
    assert set(answers) == {"asyncio"}
    assert finder.searches == []
