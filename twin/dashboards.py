"""Cloud Monitoring dashboards v1 as world logic (no HTTP here; :mod:`twin.server` decodes requests).

A dashboard needs a display name and exactly one layout, its mosaic tiles must fit the columns,
an update must carry the current ``etag`` ("Update Dashboard should specify a non empty etag"), and
a stale one is ABORTED (someone else changed it: read it again).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from google.cloud import monitoring_dashboard_v1

from twin.store import ApiError, Store, check_project, invalid, list_body, lookup, parse_body, records, roundtrip

if TYPE_CHECKING:
    from twin.scenario import Scenario

# ---- Monitoring v1: dashboards ---------------------------------------------------------------------

LAYOUTS = ("gridLayout", "mosaicLayout", "rowLayout", "columnLayout")
# MosaicLayout.columns "must be between 1 and 48" (monitoring.v1 discovery document). The API
# documents no default; dashboards defined without it (with 6-wide tiles) are common, so an unset
# value reads as the 12 columns the older documentation allowed at most.
MOSAIC_COLUMNS = (1, 48)
MOSAIC_DEFAULT_COLUMNS = 12


def parse_dashboard(text: bytes) -> dict[str, Any]:
    return parse_body(monitoring_dashboard_v1.Dashboard, text)


def _dashboard_etag(name: str, body: dict[str, Any]) -> str:
    # New at every write, even one that changes nothing: an etag names a version, not a content.
    seed = f"{name}/{time.time_ns()}/{json.dumps(body, sort_keys=True)}"
    return hashlib.sha1(seed.encode()).hexdigest()[:32]


def _validate_dashboard(body: dict[str, Any]) -> None:
    if not body.get("displayName"):
        raise ApiError(400, "INVALID_ARGUMENT", "Field dashboard.display_name is required.")
    layouts = [k for k in LAYOUTS if k in body]
    if len(layouts) != 1:  # two are refused by the message type already (one oneof)
        raise ApiError(400, "INVALID_ARGUMENT",
                       "A dashboard needs a layout: one of gridLayout, mosaicLayout, rowLayout or columnLayout.")
    mosaic = body.get("mosaicLayout")
    if mosaic is None:
        return
    columns = int(mosaic.get("columns", 0)) or MOSAIC_DEFAULT_COLUMNS
    if not MOSAIC_COLUMNS[0] <= columns <= MOSAIC_COLUMNS[1]:
        raise invalid("dashboard.mosaic_layout.columns", columns,
                       f"the number of columns must be between {MOSAIC_COLUMNS[0]} and {MOSAIC_COLUMNS[1]}.")
    for i, tile in enumerate(mosaic.get("tiles", [])):
        at = f"dashboard.mosaic_layout.tiles[{i}]"
        x, y = int(tile.get("xPos", 0)), int(tile.get("yPos", 0))
        width, height = int(tile.get("width", 0)), int(tile.get("height", 0))
        if x < 0 or y < 0:
            raise invalid(f"{at}.{'x_pos' if x < 0 else 'y_pos'}", min(x, y), "a tile position cannot be negative.")
        if width < 1 or height < 1:
            raise invalid(f"{at}.{'width' if width < 1 else 'height'}", min(width, height),
                           "tiles must have a minimum width and height of 1.")
        if x + width > columns:
            raise invalid(at, f"x_pos {x}, width {width}",
                           f"tiles must be contained within the {columns} columns of the mosaic.")


def _dashboard_record(world: Store, project: str, dashboard_id: str) -> dict[str, Any]:
    return lookup(world, project, "dashboards", dashboard_id, "dashboards",
                  f"Dashboard projects/{project}/dashboards/{dashboard_id} does not exist.")


def list_dashboards(world: Store, project: str, page_size: int, page_token: str | None) -> dict[str, Any]:
    check_project(world, project, "dashboards")
    items = [rec["resource"] for rec in records(world, "dashboards").values()]
    return list_body("dashboards", items, page_size, page_token, 1000)  # "If unspecified, a default of 1000 is used."


def get_dashboard(world: Store, project: str, dashboard_id: str) -> dict[str, Any]:
    return dict(_dashboard_record(world, project, dashboard_id)["resource"])


def create_dashboard(world: Store, project: str, body: dict[str, Any], validate_only: bool) -> dict[str, Any]:
    check_project(world, project, "dashboards")
    prefix = f"projects/{project}/dashboards/"
    if body.get("name"):
        dashboard_id = body["name"].removeprefix(prefix)
        if not body["name"].startswith(prefix) or not dashboard_id or "/" in dashboard_id:
            raise invalid("dashboard.name", body["name"], f"a dashboard name must be {prefix}DASHBOARD_ID.")
        if dashboard_id in records(world, "dashboards"):
            raise ApiError(409, "ALREADY_EXISTS", f"Dashboard {body['name']} already exists.")
    else:
        dashboard_id = str(uuid.uuid4())
    _validate_dashboard(body)
    name = prefix + dashboard_id
    # "The field [etag] should not be passed during dashboard creation": the server sets its own.
    resource = {**body, "name": name}
    resource["etag"] = _dashboard_etag(name, resource)
    resource = roundtrip(monitoring_dashboard_v1.Dashboard, resource)
    if not validate_only:
        records(world, "dashboards")[dashboard_id] = {"resource": resource}
        world.dirty = True
    return resource


def patch_dashboard(world: Store, project: str, dashboard_id: str, body: dict[str, Any], validate_only: bool
                    ) -> dict[str, Any]:
    """``dashboards.patch``: "Replaces an existing custom dashboard with a new definition"."""
    rec = _dashboard_record(world, project, dashboard_id)
    current = rec["resource"]
    if body.get("name") and body["name"] != current["name"]:
        raise invalid("dashboard.name", body["name"], "the dashboard's name does not match the request path.")
    if body.get("etag") and body["etag"] != current["etag"]:
        raise ApiError(409, "ABORTED",
                       f"The dashboard {current['name']} was modified since it was read (etag {body['etag']} is "
                       f"stale, current {current['etag']}). Read it again and retry.")
    _validate_dashboard(body)
    resource = {**body, "name": current["name"]}
    resource["etag"] = _dashboard_etag(current["name"], resource)
    resource = roundtrip(monitoring_dashboard_v1.Dashboard, resource)
    if not validate_only:
        rec["resource"] = resource
        world.dirty = True
    return resource


def delete_dashboard(world: Store, project: str, dashboard_id: str) -> dict[str, Any]:
    _dashboard_record(world, project, dashboard_id)
    del world.state["dashboards"][dashboard_id]
    world.dirty = True
    return {}



def seed(world: Store, sc: Scenario) -> None:
    """At reset: the scenario's dashboards (a capture's, as read; none in a hand-written scenario)."""
    world.state["dashboards"] = {
        d["name"].rsplit("/", 1)[-1]: {"resource": roundtrip(monitoring_dashboard_v1.Dashboard, d)}
        for d in sc.dashboards
    }


def dashboards(world: Store) -> list[dict[str, Any]]:
    return [r["resource"] for r in world.state.get("dashboards", {}).values()]
