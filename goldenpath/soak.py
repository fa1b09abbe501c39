"""``--soak``: look at the 503 window again and again, probing meanwhile, until it is clean or the
wait is over. The Success Confirmation's ``clean_window`` fixture calls it; no pytest here."""

from __future__ import annotations

import time
from typing import Callable

from goldenpath.criteria import confirmation as c
from goldenpath.observations import CleanWindow
from goldenpath.verdict import Status

# Real seconds between two looks at the window while soaking, however little it still needs: each
# look reads the request log (a few entries.list calls per probed service), and Logging allows 60
# entries.list a minute per project, shared with everyone reading that project's logs
# (https://cloud.google.com/logging/quotas#api-limits). At most six looks a minute stay well inside.
SOAK_MIN_PAUSE_SECONDS = 10.0


def soak(windows: dict[str, CleanWindow], look: Callable[[], dict[str, CleanWindow]], minutes: float,
         min_requests: int, *, wait: Callable[[float], None], progress: Callable[[str], None],
         clock: Callable[[], float] = time.monotonic) -> dict[str, CleanWindow]:
    """The windows once every one is clean, or one has a 503 after the last change (waiting cannot
    mend that), or ``minutes`` of the target's time have passed. ``windows``: the first look;
    ``look``: the next ones; ``wait(seconds)``: pass the time (probing, so the window gets traffic);
    ``progress``: one line for the operator per waiting service and look."""
    scale = next(iter(windows.values())).clock_scale if windows else 1.0
    deadline = clock() + minutes * 60 / scale
    while True:
        if any(w.failures for w in windows.values()):
            return windows  # a source could not be read: the item could not check; waiting is not the cure
        verdicts = {n: c.zero_503(w, min_requests) for n, w in windows.items()}
        waiting = {n: v for n, v in verdicts.items() if v.status is Status.INCONCLUSIVE}
        # A 503 after the last change is a failure that waiting cannot mend; a pass needs no wait.
        if not waiting or any(v.status is Status.FAIL for v in verdicts.values()):
            return windows
        # Until the oldest 503 leaves the window, at the window's pace; never past the deadline.
        need = max(windows[n].window_seconds - v.evidence["clean_seconds"] for n, v in waiting.items()) / scale
        left = deadline - clock()
        if left <= 0:
            return windows
        pause = min(max(need, SOAK_MIN_PAUSE_SECONDS), left)
        for n, v in waiting.items():
            progress(f"soak: {n}: {v.value}; next look in {pause:.0f} s (gives up in {left:.0f} s)")
        wait(pause)
        windows = look()
