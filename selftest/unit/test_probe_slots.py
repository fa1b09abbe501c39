"""goldenpath.probes.slots: timed probes share a budget of connections, granted in arrival order."""

from __future__ import annotations

import asyncio

from goldenpath.probes.slots import TimedSlots


def test_a_burst_runs_alone_and_small_probes_share() -> None:
    async def scenario() -> list[str]:
        slots = TimedSlots(20)
        events: list[str] = []
        burst_may_end = asyncio.Event()

        async def probe(name: str, width: int, hold: asyncio.Event | None = None) -> None:
            async with slots.hold(width):
                events.append(f"{name} start")
                if hold is not None:
                    await hold.wait()
                else:
                    await asyncio.sleep(0)
                events.append(f"{name} end")

        first = asyncio.create_task(probe("burst", 20, burst_may_end))
        await asyncio.sleep(0)
        small = [asyncio.create_task(probe(f"check{i}", 1)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert events == ["burst start"]  # nothing else starts its clock beside a burst
        burst_may_end.set()
        await asyncio.gather(first, *small)
        return events

    events = asyncio.run(scenario())
    assert events[:2] == ["burst start", "burst end"]
    # the three checks (1 connection each) ran side by side once the burst was done
    assert [e for e in events[2:] if e.endswith("start")] == ["check0 start", "check1 start", "check2 start"]
    assert events.index("check2 start") < events.index("check0 end")


class Probes:
    """Probes that record the order they got their slots in, and hold them until ``gate`` is set."""

    def __init__(self, budget: int) -> None:
        self.slots = TimedSlots(budget)
        self.order: list[str] = []
        self.gate = asyncio.Event()

    async def probe(self, name: str, width: int) -> None:
        async with self.slots.hold(width):
            self.order.append(name)
            await self.gate.wait()


def test_arrival_order_keeps_a_burst_from_starving() -> None:
    async def scenario() -> list[str]:
        p = Probes(20)
        probe, order, gate = p.probe, p.order, p.gate
        holder = asyncio.create_task(probe("check-a", 1))
        await asyncio.sleep(0)
        burst = asyncio.create_task(probe("burst", 20))
        await asyncio.sleep(0)
        late = asyncio.create_task(probe("check-b", 1))  # fits in the free 19, but arrived after the burst
        await asyncio.sleep(0.01)
        assert order == ["check-a"]
        gate.set()
        await asyncio.gather(holder, burst, late)
        return order

    assert asyncio.run(scenario()) == ["check-a", "burst", "check-b"]


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    async def scenario() -> list[str]:
        p = Probes(2)
        probe, order, gate = p.probe, p.order, p.gate
        holder = asyncio.create_task(probe("a", 2))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(probe("b", 2))
        after = asyncio.create_task(probe("c", 1))
        await asyncio.sleep(0.01)
        waiting.cancel()
        gate.set()
        await asyncio.gather(holder, after)
        assert waiting.cancelled()
        return order

    assert asyncio.run(scenario()) == ["a", "c"]


def test_the_observer_runs_two_bursts_side_by_side_and_the_third_waits() -> None:
    """The gate's budget (goldenpath.observe.Observer.timed): two bursts' connections at once."""
    from goldenpath.observe import Observer
    from selftest.unit.phase4_world import target

    observer = Observer(target())
    width = observer.target.thresholds.burst_size

    async def scenario() -> list[str]:
        order: list[str] = []
        gate = asyncio.Event()

        async def burst(name: str) -> None:
            async with observer.timed(width):
                order.append(f"{name} start")
                await gate.wait()
                order.append(f"{name} end")

        tasks = [asyncio.create_task(burst(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0.01)
        assert order == ["a start", "b start"]  # the third burst's clock has not started
        gate.set()
        await asyncio.gather(*tasks)
        return order

    try:
        order = asyncio.run(scenario())
    finally:
        observer.close()
    assert order.index("c start") > order.index("a end")
