"""The Golden Path as a user walks it: log in, open the WebSocket with the token, get the AI answer.

The credentials come from the environment and the token lives only in local variables: neither is
ever put in a result, a message or an exception text, so they cannot reach a report.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Mapping

import httpx

from goldenpath.observations import GoldenPathResult
from goldenpath.probes import resolve
from goldenpath.probes.websocket import cause, open_ws
from goldenpath.trail import hide, logger

LOG = logger("probes")


async def walk(*, login_url: str, ws_url: str, user: str, password: str, message: str, final_event: str,
               deadline: float, resolve_map: Mapping[str, str], ca_bundle: str | None,
               timeout: float) -> GoldenPathResult:
    t0 = time.perf_counter()
    legs: dict[str, float] = {}
    events: list[str] = []

    secrets: list[str] = [password, user]
    hide(password)  # the trail masks it too, wherever it might turn up

    def failed(leg: str, why: str) -> GoldenPathResult:
        # A service may echo what it was sent: never let the credentials or the token through. Mask
        # first, cut after, so a cut cannot leave the start of a secret behind.
        for secret in secrets:
            why = why.replace(secret, "***") if secret else why
        return GoldenPathResult(False, leg, why[:300], legs, tuple(events))

    try:
        result = await _walk(login_url, ws_url, user, password, message, final_event, deadline, resolve_map,
                             ca_bundle, timeout, t0, legs, events, secrets, failed)
    except Exception as exc:  # a surprise must not carry the credentials into a traceback
        result = failed("response" if "websocket_open" in legs else "websocket" if "login" in legs else "login",
                        f"unexpected {type(exc).__name__}")
    # legs and the (already masked) reason only: never the user, the password or the token
    LOG.info("golden path %s → %s: %s in %.3f s (legs: %s)", login_url, ws_url,
             "ok" if result.ok else f"failed at {result.failed_leg}: {result.cause}", time.perf_counter() - t0,
             ", ".join(f"{k} {v:.3f} s" for k, v in legs.items()) or "none")
    return result


async def _walk(login_url: str, ws_url: str, user: str, password: str, message: str, final_event: str,
                deadline: float, resolve_map: Mapping[str, str], ca_bundle: str | None, timeout: float, t0: float,
                legs: dict[str, float], events: list[str], secrets: list[str], failed: Any) -> GoldenPathResult:
    async with resolve.client(resolve_map, ca_bundle, timeout, connections=1) as client:
        try:
            resp = await client.post(login_url, json={"email": user, "password": password})
        except httpx.HTTPError as exc:
            return failed("login", f"no answer from {login_url}: {type(exc).__name__}")
    legs["login"] = time.perf_counter() - t0
    if resp.status_code != 200:
        return failed("login", f"{login_url} answered {resp.status_code}: {_error_text(resp)}")
    try:
        token = resp.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not token:
        return failed("login", f"{login_url} answered 200 without an access_token in a JSON body")
    secrets.append(str(token))
    hide(str(token))

    try:
        async with open_ws(ws_url, resolve_map=resolve_map, ca_bundle=ca_bundle, timeout=timeout,
                           headers={"Authorization": f"Bearer {token}"}) as ws:
            legs["websocket_open"] = time.perf_counter() - t0
            await ws.send(json.dumps({"type": "user_message", "payload": {"content": message}}))
            remaining = deadline - (time.perf_counter() - t0)
            async with asyncio.timeout(max(remaining, 0.001)):
                while True:
                    event = json.loads(await ws.recv())
                    kind = str(event.get("type"))
                    events.append(kind)
                    legs.setdefault("first_event", time.perf_counter() - t0)
                    if kind == "error":
                        return failed("response", f"the agent answered with an error: {event.get('error')}")
                    if kind == final_event:
                        legs["final_response"] = time.perf_counter() - t0
                        text = str((event.get("payload") or {}).get("response", ""))
                        if not text:
                            return failed("response", f"{final_event} arrived without a response")
                        return GoldenPathResult(True, None, None, legs, tuple(events), len(text))
    except TimeoutError:
        leg = "response" if "websocket_open" in legs else "websocket"
        return failed(leg, f"no {final_event} within the {deadline:g} s deadline (events so far: "
                           f"{', '.join(events) or 'none'})")
    except Exception as exc:  # a refused upgrade or a closed socket is a finding, named by its cause
        return failed("response" if "websocket_open" in legs else "websocket", cause(exc))


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("error") or body.get("message") or body)
    except (json.JSONDecodeError, ValueError, AttributeError):
        return resp.text
