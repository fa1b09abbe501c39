"""How long to wait before looking again at something that has no server-side wait.

Cloud Run operations have a long-poll (``operations.wait``, see :mod:`goldenpath.gcp.run`); VPC
Access and Cloud SQL operations, and metrics waiting to be published, do not: they are polled. A
poll made ``d`` seconds after the one before it finds a finished operation up to ``d`` seconds late,
so the delay is at most ``max(FLOOR, FRACTION × the time waited so far)``: the wait overshoots the
operation's end by at most 10 % of its duration, or half a second. That is also gentle on the
APIs' request quotas (Cloud SQL Admin: 180 queries a minute per user): two polls a second for the
first five seconds, then ever fewer (about 36 in the first minute, 60 for a ten-minute operation).
"""

from __future__ import annotations

import time
from typing import Iterator

FRACTION = 0.1
FLOOR = 0.5


def delay(waited: float, *, fraction: float = FRACTION, floor: float = FLOOR) -> float:
    """The time to wait before the next look, ``waited`` seconds into the wait."""
    return max(floor, fraction * max(0.0, waited))


def delays(deadline: float | None = None, *, fraction: float = FRACTION, floor: float = FLOOR) -> Iterator[float]:
    """The pauses between the looks of one wait whose first look is made now (an infinite iterator,
    as api_core's ``retry_target`` takes for its ``sleep_generator``: each is asked for when a look
    has ended); each ends at ``deadline`` (time.monotonic()) at the latest, so the last look is made
    at the deadline rather than skipped before it.

    The delay is counted from the start of the look before, not from its end: a look that takes a
    while (a num_backends look is two reads, 0.1 s on the twin; a slow API's answer) would otherwise
    push every next look that much later, and a finished operation would be seen up to the delay
    *plus* a look late. A look longer than the delay is followed by the next one at once."""
    started = time.monotonic()  # here, not in the generator: its body first runs after the first look

    def pauses() -> Iterator[float]:
        look = started
        while True:
            now = time.monotonic()
            pause = max(0.0, look + delay(now - started, fraction=fraction, floor=floor) - now)
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - now))
            look = now + pause
            yield pause

    return pauses()


# How much later than the wait's end api_core's own deadline is set (see retrying).
RETRY_SLACK = 1.0


def retrying(wait: float, *, fraction: float = FRACTION, floor: float = FLOOR) -> tuple[Iterator[float], float]:
    """For api_core's ``retry_target``: its ``sleep_generator`` and ``timeout`` for a wait of
    ``wait`` seconds from now, paced as :func:`delays`, whose last look is made at the end of the
    wait and which stops right after it.

    Not ``delays(now + wait)`` with ``timeout=wait``: retry_target gives up when a pause would end
    past its own deadline, reckoned from a moment a little later than ours and compared with a clock
    read a little later than the pause was; whenever the second lag was the longer, the pause to the
    end of the wait looked past the deadline and the wait ended one pause early (seen here, with a
    phase's steps in threads side by side: a policy write waiting for a new metric gave up 0.4 s
    before the metric was 600 s old, 4 s of the twin's sped-up time). So
    retry_target's deadline is RETRY_SLACK later than the wait's end, every pause before the end ends
    at it at the latest, and the pause after the look made there is longer than the slack, which
    ends the retry."""
    end = time.monotonic() + wait
    inner = delays(end, fraction=fraction, floor=floor)

    def pauses() -> Iterator[float]:
        for pause in inner:
            yield 2 * RETRY_SLACK if time.monotonic() >= end else pause

    return pauses(), wait + RETRY_SLACK
