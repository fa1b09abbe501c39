"""The twin's gRPC face: the APIs whose Python clients speak gRPC only (Cloud SQL Admin, Monitoring).

Placeholder wiring until the gRPC services land: serves nothing and returns when the control plane
stops, so `python -m twin serve` keeps working.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def serve_grpc(twin: Any, host: str, port: int, control: Any) -> None:
    while not control.should_exit:
        await asyncio.sleep(0.2)
