"""HTTP probes: a concurrent burst of requests, each timed from send to last byte."""

from __future__ import annotations

import asyncio
import time
from typing import Mapping

import httpx

from goldenpath.observations import Burst, HttpCheck, Sample
from goldenpath.probes import resolve
from goldenpath.trail import logger

LOG = logger("probes")


async def burst(url: str, size: int, *, resolve_map: Mapping[str, str], ca_bundle: str | None,
                timeout: float) -> Burst:
    """Send ``size`` concurrent GETs to ``url``: what a crowd of users sees at this moment."""
    started = time.time()
    async with resolve.client(resolve_map, ca_bundle, timeout, connections=size) as client:
        samples = await asyncio.gather(*(_one(client, url) for _ in range(size)))
    result = Burst(url=url, started=started, samples=tuple(samples))
    LOG.info("http burst GET ×%d %s: %s in %.3f s (slowest answer %.3f s)", size, url, result.statuses(),
             time.time() - started, max((s.seconds for s in samples), default=0.0))
    return result


async def _one(client: httpx.AsyncClient, url: str) -> Sample:
    t0 = time.perf_counter()
    try:
        resp = await client.get(url)
        return Sample(status=resp.status_code, seconds=time.perf_counter() - t0, error=None)
    except httpx.TimeoutException:
        return Sample(status=None, seconds=time.perf_counter() - t0, error="timeout")
    except httpx.ConnectError as exc:
        return Sample(status=None, seconds=time.perf_counter() - t0, error=f"connect: {_why(exc)}")
    except httpx.HTTPError as exc:
        return Sample(status=None, seconds=time.perf_counter() - t0, error=f"{type(exc).__name__}: {_why(exc)}")


def _why(exc: Exception) -> str:
    text = str(exc) or repr(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted (" + text.split("certificate verify failed:")[-1].strip(" ()") + ")"
    return text


async def check(url: str, *, resolve_map: Mapping[str, str], ca_bundle: str | None, timeout: float) -> HttpCheck:
    """One GET, with the body's own verdict ({"status": "healthy"}) and cause when it gives one."""
    async with resolve.client(resolve_map, ca_bundle, timeout, connections=1) as client:
        t0 = time.perf_counter()
        try:
            resp = await client.get(url)
        except httpx.HTTPError as exc:
            LOG.info("http GET %s: no answer (%s) after %.3f s", url, type(exc).__name__, time.perf_counter() - t0)
            return HttpCheck(url, None, time.perf_counter() - t0, None, _why(exc) or type(exc).__name__)
        seconds = time.perf_counter() - t0
    try:
        body = resp.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    detail = body.get("cause") or body.get("error")
    LOG.info("http GET %s: %d%s in %.3f s", url, resp.status_code,
             f" ({body.get('status')}{': ' + str(detail) if detail else ''})" if body.get("status") else "", seconds)
    return HttpCheck(url, resp.status_code, seconds, body.get("status"), str(detail) if detail else None)
