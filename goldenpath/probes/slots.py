"""How many timed connections the gate has open at once: at most two bursts' worth.

A probe's clock runs while the gate itself is busy elsewhere: 20 services' bursts sent at once are
400 TLS handshakes on one event loop (and, on the twin, 400 more on the other core), and healthy
endpoints answering in 0.1 s measured 3.3–4.3 s, a FAIL of "< 2 seconds" made by the gate. So every
timed probe (a burst, a health check, a WebSocket batch, the Golden Path) first takes as many slots
as it opens connections, from a budget of ``TIMED_BURSTS`` bursts (2 × ``burst_size``): two bursts
run side by side, small probes share. Its clock starts once it has them. Granted in arrival order,
so a burst is never starved by a stream of small probes. API reads are not timed and take no slot.

Why two, measured on the twin with 20 services (2 cores): one burst at a time, the gate and the
server took turns (each waiting on the other), and Phases 1 and 3 gathered in 2.36 s; two at once,
1.63 s, with the slowest answer of a healthy burst 0.14 s instead of 0.11 (the gate's own load,
far below the 2 s criterion); four at once, 1.53 s and 0.17 s, little more gained for more noise.
On real Google a burst is mostly round trips, which two bursts overlap as well.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator


TIMED_BURSTS = 2  # bursts whose connections may be open at once (the budget, in bursts)


class TimedSlots:
    def __init__(self, budget: int) -> None:
        self.budget = max(1, budget)
        self._free = self.budget
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, connections: int) -> AsyncIterator[None]:
        """``connections`` slots (a probe wider than the budget takes all of it) while the probe runs."""
        want = min(max(1, connections), self.budget)
        if self._waiting or self._free < want:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((want, granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release(want)  # granted just as it was cancelled: give the slots back
                elif (want, granted) in self._waiting:
                    self._waiting.remove((want, granted))
                    self._grant()  # it may have been the one blocking those behind it
                raise
        else:
            self._free -= want
        try:
            yield
        finally:
            self._release(want)

    def _release(self, n: int) -> None:
        self._free += n
        self._grant()

    def _grant(self) -> None:
        # In arrival order: the first waiter that does not fit blocks the ones behind it.
        while self._waiting and self._waiting[0][0] <= self._free:
            want, granted = self._waiting.popleft()
            if granted.cancelled():
                continue
            self._free -= want
            granted.set_result(None)
