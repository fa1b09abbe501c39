"""The twin's debounced persistence (twin.store.Store.save_due), on explicit times: a world changed
and then left alone is saved, one under steady traffic is saved at most MAX_UNSAVED_SECONDS late,
and a saved one is not saved again."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import store
from twin.store import Store


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, list[float]]:
    clock = [100.0]
    monkeypatch.setattr(store.time, "monotonic", lambda: clock[0])
    return Store(tmp_path), clock


def test_a_world_left_alone_after_a_change_is_due(world: tuple[Store, list[float]]) -> None:
    w, clock = world
    assert not w.save_due(clock[0])           # nothing changed
    w.dirty = True
    assert not w.save_due(clock[0] + 0.1)     # changed 0.1 s ago: more may follow
    assert w.save_due(clock[0] + Store.QUIET_SECONDS)
    w.save()
    assert not w.dirty and not w.save_due(clock[0] + 10)


def test_steady_traffic_is_saved_at_most_max_unsaved_seconds_late(world: tuple[Store, list[float]]) -> None:
    w, clock = world
    start = clock[0]
    w.dirty = True
    due_at = None
    while clock[0] < start + 2 * Store.MAX_UNSAVED_SECONDS:
        clock[0] += 0.05                      # a request every 50 ms: never quiet
        w.dirty = True
        if w.save_due(clock[0]):
            due_at = clock[0]
            break
    assert due_at == pytest.approx(start + Store.MAX_UNSAVED_SECONDS, abs=0.051)
