"""Cloud Logging's entries.list as it really is, through the real clients against a real twin.

* A page may be empty and still carry a nextPageToken: "the search found no log entries so far but
  it did not have time to search all the possible log entries" (logging.v2.json,
  ListLogEntriesResponse.nextPageToken). The official client (JSON transport) must follow it.
* "Number of entries.list requests — 60 per minute, per Google Cloud project"
  (https://cloud.google.com/logging/quotas#api-limits): the 61st is 429 RESOURCE_EXHAUSTED.
* The gate's adapter (goldenpath.gcp.logging) retries a 429 within timeouts.api_seconds, says so
  when the quota is still exhausted at the deadline, and bounds the calls of one read.
"""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging

from goldenpath import config
from goldenpath.errors import CheckError
from goldenpath.gcp.logging import MAX_PAGES, CloudLogging
from goldenpath.gcp.session import GcpSession
from goldenpath.probes import http
from goldenpath.twinctl import relocate_sim
from selftest.twinproc import TwinProcess, running_twin
from twin import scenario as scenarios

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "twin" / "scenarios"
PROJECT = "netra-staging"
BACKEND = "netra-backend-staging"
TIMEOUT = 10.0
QUOTA_TEXT = ("Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service "
              "'logging.googleapis.com' for consumer 'project_number:")
STDERR = f'logName="projects/{PROJECT}/logs/run.googleapis.com%2Fstderr"'
# The same log named by a regular expression, which no index answers: every entry of the range is
# looked at (twin.logfilter.indexed).
STDERR_SCANNED = 'logName=~"run[.]googleapis[.]com%2Fstderr$"'
LIST = "logging.entries.list"
# Matches the first entry any search looks at: one call per read.
ANY_RUN = 'resource.type="cloud_run_revision"'


class Twin:
    def __init__(self, proc: TwinProcess, control: httpx.Client, root: Path) -> None:
        self.proc, self.control, self.root = proc, control, root
        self.endpoint = f"http://127.0.0.1:{proc.control_port}"
        self.client = cloud_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                           client_options={"api_endpoint": self.endpoint})
        # Entries read come with Loggers, which would ask the GCE metadata server (up to 5 s, offline)
        # where they run unless given a resource (the gate's adapter does the same).
        self.client.logger = functools.partial(self.client.logger, resource=cloud_logging.Resource(  # type: ignore[method-assign]
            type="global", labels={"project_id": PROJECT}))

    def reset(self, scenario: str) -> None:
        resp = self.control.post("/_twin/reset", params={"scenario": scenario})
        assert resp.status_code == 200, resp.text

    def scenario(self, name: str, base: str, extra: str) -> str:
        """A scenario file: a shipped one with TOML appended (a [logging] table, [[faults]])."""
        path = self.root / f"{name}.toml"
        path.write_text((SCENARIOS / f"{base}.toml").read_text().replace(f'name = "{base}"', f'name = "{name}"', 1)
                        + "\n" + extra)
        return str(path)

    def status(self) -> dict[str, Any]:
        return self.control.get("/_twin/status").json()

    def calls(self) -> int:
        return int(self.status()["requests"]["by_method"].get(LIST, 0))

    def raw(self, filter_: str, order: str = "timestamp desc", page_size: int = 50,
            token: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"resourceNames": [f"projects/{PROJECT}"], "filter": filter_, "orderBy": order,
                                "pageSize": page_size}
        if token:
            body["pageToken"] = token
        return self.control.post("/v2/entries:list", json=body)

    def adapter(self, api_seconds: float = 15) -> CloudLogging:
        """The gate's own Logging adapter, on the shipped sim target moved to this twin."""
        text = relocate_sim(ROOT / "targets.toml", self.proc.home, f"127.0.0.1:{self.proc.control_port}",
                            f"127.0.0.1:{self.proc.data_port}", f"127.0.0.1:{self.proc.grpc_port}")
        path = self.root / "targets.toml"
        path.write_text(text)
        target = config.load(path, "sim")
        target = target.model_copy(update={"timeouts": config.Timeouts(api_seconds=api_seconds)})
        return CloudLogging(GcpSession(target))


@pytest.fixture(scope="module")
def twin_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TwinProcess, Path]]:
    root = tmp_path_factory.mktemp("twin-logging")
    with running_twin(root / "home", "incident-1278") as proc:
        yield proc, root


@pytest.fixture
def twin(twin_process: tuple[TwinProcess, Path]) -> Iterator[Twin]:
    proc, root = twin_process
    with httpx.Client(base_url=f"http://127.0.0.1:{proc.control_port}", timeout=TIMEOUT) as control:
        t = Twin(proc, control, root)
        t.reset("incident-1278")  # a fresh world, and with it a fresh read-quota minute
        yield t


def since(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# ---- empty pages with a nextPageToken -------------------------------------------------------------


def test_a_search_that_found_nothing_yet_answers_an_empty_page_with_a_token(twin: Twin) -> None:
    twin.reset("startup-errors")  # the revision's startup errors were logged 100 minutes ago
    first = twin.raw(f"{STDERR_SCANNED} AND timestamp>=\"{since(24 * 60)}\"")
    assert first.status_code == 200, first.text
    body = first.json()
    # The newest slice of the log is the request history: no match in it, and the search goes on.
    assert "entries" not in body and body["nextPageToken"], body
    # The token is opaque and only this search's own: a made-up one is refused.
    assert twin.raw(STDERR_SCANNED, token=body["nextPageToken"][:-2] + "zz").status_code == 400


def test_terms_on_indexed_fields_skip_what_they_exclude(twin: Twin) -> None:
    # Logging indexes logName (among others, https://cloud.google.com/logging/docs/analyze/custom-index):
    # naming the log with "=" finds its entries without looking at the request history in between.
    twin.reset("startup-errors")
    window = f'timestamp>="{since(24 * 60)}"'
    body = twin.raw(f"{STDERR} AND {window}").json()
    assert body.get("entries") and "nextPageToken" not in body, body
    scanned = twin.raw(f"{STDERR_SCANNED} AND {window}").json()
    assert "entries" not in scanned and scanned["nextPageToken"], scanned


def test_the_client_follows_empty_pages_to_the_full_result(twin: Twin) -> None:
    twin.reset("startup-errors")
    errors = f"{STDERR_SCANNED} AND severity!=INFO"  # no index answers either term
    expected = next(r.startup_errors for s in scenarios.load("startup-errors").services for r in s.revisions
                    if r.startup_errors)
    before = twin.calls()
    entries = list(twin.client.list_entries(filter_=errors, order_by=cloud_logging.DESCENDING, page_size=50))
    calls = twin.calls() - before
    # Every error line the scenario says the revision logged when it started, found only after
    # pages that came back empty.
    assert sorted(e.payload for e in entries) == sorted(expected)
    assert calls > 1
    # The same search in one call, from a twin that looks at everything at once, finds the same.
    twin.reset(twin.scenario("wide-search", "startup-errors", "[logging]\nentries_scanned_per_page = 100000\n"))
    before = twin.calls()
    wide = list(twin.client.list_entries(filter_=errors, order_by=cloud_logging.DESCENDING, page_size=50))
    assert twin.calls() - before == 1
    assert [e.payload for e in wide] == [e.payload for e in entries]


def test_a_long_window_over_the_incidents_half_hour_takes_more_than_one_call(twin: Twin) -> None:
    # A Logging that looks at 20 entries per call: the backend's 503s of half an hour take several.
    twin.reset(twin.scenario("slow-search", "incident-1278", "[logging]\nentries_scanned_per_page = 20\n"))
    query = (f'resource.type="cloud_run_revision" AND resource.labels.service_name="{BACKEND}" '
             f'AND httpRequest.status=503 AND timestamp>="{since(60)}"')
    before = twin.calls()
    paged = list(twin.client.list_entries(filter_=query, order_by=cloud_logging.DESCENDING, page_size=1000))
    assert twin.calls() - before > 1
    assert paged and all(e.http_request["status"] == 503 for e in paged)
    # Nothing lost or repeated between the pages: the same as a raw walk through every token.
    ids, token = [], None
    while True:
        page = twin.raw(query, page_size=1000, token=token).json()
        ids += [e["insertId"] for e in page.get("entries", [])]
        if not (token := page.get("nextPageToken")):
            break
    assert [e.insert_id for e in paged] == ids and len(set(ids)) == len(ids)


def test_order_by_is_timestamp_asc_or_desc_only(twin: Twin) -> None:
    resp = twin.raw(STDERR, order="severity desc")
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT", resp.text


# ---- the read quota -----------------------------------------------------------------------------------


def test_the_61st_entries_list_within_a_minute_is_resource_exhausted(twin: Twin) -> None:
    for _ in range(60):
        assert len(list(twin.client.list_entries(filter_=ANY_RUN, max_results=1, page_size=2))) == 1
    assert twin.calls() == 60
    with pytest.raises(gexc.TooManyRequests) as err:
        list(twin.client.list_entries(filter_=ANY_RUN, max_results=1, page_size=2))
    assert QUOTA_TEXT in err.value.message
    assert err.value.reason == "RATE_LIMIT_EXCEEDED"  # the ErrorInfo the client reads from the details
    # Google's REST error shape, as the client saw it.
    resp = twin.raw(STDERR)
    assert resp.status_code == 429
    error = resp.json()["error"]
    assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"].startswith(QUOTA_TEXT) and error["message"].endswith("'.")
    info = next(d for d in error["details"] if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
    assert info["metadata"]["quota_limit"] == "ReadRequestsPerMinutePerProject"
    assert info["metadata"]["quota_limit_value"] == "60"
    # Only entries.list is metered so: the project's log-based metrics still answer.
    assert isinstance(list(twin.client.list_metrics()), list)
    st = twin.status()
    assert st["logging"]["entries_list_last_minute"] == 60  # refused calls do not use the quota
    assert st["requests"]["by_method"][LIST] == 62          # but they are counted, as every request
    # A reset starts the world, and its quota minute, afresh.
    twin.reset("incident-1278")
    assert len(list(twin.client.list_entries(filter_=ANY_RUN, max_results=1, page_size=2))) == 1


# ---- the gate's adapter ------------------------------------------------------------------------------


def test_the_adapter_retries_a_single_429_and_reads_the_log(twin: Twin) -> None:
    twin.reset(twin.scenario("one-429", "healthy", f'''
[[faults]]
method = "{LIST}"
code = 429
status = "RESOURCE_EXHAUSTED"
message = "{QUOTA_TEXT}000000000000'."
times = 1
'''))
    logging = twin.adapter()
    log = logging.connector_errors("staging-connector", (BACKEND,), datetime.now(timezone.utc) - timedelta(minutes=15))
    assert (log.runbook_errors, log.egress_errors) == (0, 0)  # healthy: nobody logs a connectivity error
    st = twin.status()
    assert [(f["method"], f["calls"], f["times"]) for f in st["faults"]] == [(LIST, st["requests"]["by_method"][LIST], 1)]
    assert st["requests"]["by_method"][LIST] >= 2  # the refused call, then the retry and any further pages
    assert [c.outcome for c in logging.session.calls] == ["ok", "ok", "ok"]  # the runbook's query, the services' stderr and stdout


def test_the_adapter_says_the_quota_is_exhausted_when_it_stays_so(twin: Twin) -> None:
    for _ in range(60):
        list(twin.client.list_entries(filter_=ANY_RUN, max_results=1, page_size=2))
    assert twin.calls() == 60
    logging = twin.adapter(api_seconds=1.0)  # the minute cannot pass in one second of retries
    with pytest.raises(CheckError) as err:
        logging.request_log(BACKEND, datetime.now(timezone.utc) - timedelta(minutes=10), 20)
    message = str(err.value)
    assert "answered 429 RESOURCE_EXHAUSTED (Logging read quota, 60 entries.list a minute per project)" in message
    assert QUOTA_TEXT in message and "run again in a minute" in message
    assert "Traceback" not in message


def test_a_read_stops_after_max_pages_and_says_why(twin: Twin) -> None:
    # A Logging that looks at 2 entries per call: the backend's 503s of the last hour take dozens.
    twin.reset(twin.scenario("slow-search", "incident-1278", "[logging]\nentries_scanned_per_page = 2\n"))
    logging = twin.adapter()
    before = twin.calls()
    with pytest.raises(CheckError) as err:
        logging.request_log(BACKEND, datetime.now(timezone.utc) - timedelta(minutes=60), 20)
    assert "had not finished searching" in str(err.value) and f"after {MAX_PAGES} calls" in str(err.value)
    # The two reads of request_log (all requests, and the 503s) stopped at MAX_PAGES calls each at most.
    assert twin.calls() - before <= 2 * MAX_PAGES


def test_a_gate_read_of_the_incident_makes_few_calls(twin: Twin) -> None:
    logging = twin.adapter()
    before = twin.calls()
    log = logging.request_log(BACKEND, datetime.now(timezone.utc) - timedelta(minutes=60), 20)
    assert log.total_capped and log.errors_503 > 0
    assert twin.calls() - before <= 1 + 3  # 20 requests on the first page; the 503s of half an hour in three
    assert json.dumps(twin.status()["logging"]["read_requests_per_minute"]) == "60"


# ---- one read for all services (the quota is per project) ----------------------------------------

AUTH = "auth-service-staging"


def test_the_request_logs_of_all_services_are_one_pair_of_reads_and_agree_with_each_read_alone(
        twin: Twin) -> None:
    logging = twin.adapter()
    now = datetime.now(timezone.utc)
    windows = {BACKEND: now - timedelta(minutes=60), AUTH: now - timedelta(minutes=20)}
    alone = {n: logging.request_log(n, since, 20) for n, since in windows.items()}
    before = twin.calls()  # the same world: its history is regenerated (with new times) only by a reset
    shared = logging.request_logs(windows, 20)
    assert shared == alone
    assert shared[BACKEND].errors_503 > 0 and shared[AUTH].total_capped
    # Two reads (every request, the 503s), each over a few pages: not two per service.
    assert twin.calls() - before <= 1 + 3


def test_a_service_the_shared_read_cannot_decide_is_read_on_its_own(twin: Twin,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    logging = twin.adapter()
    target = logging.session.target
    backend = next(s for s in target.services if s.name == BACKEND)
    assert backend.health_url
    # Twenty requests to the backend now: the newest twenty entries of the request log are all its,
    # so a shared read of 2 × 10 sees none of the auth service's, whose window reaches back an hour.
    asyncio.run(http.burst(backend.health_url, 20, resolve_map=target.resolve, ca_bundle=str(target.ca_path),
                           timeout=TIMEOUT))
    now = datetime.now(timezone.utc)
    windows = {BACKEND: now - timedelta(minutes=60), AUTH: now - timedelta(minutes=60)}
    alone = {n: logging.request_log(n, since, 10) for n, since in windows.items()}
    with caplog.at_level("DEBUG", logger="goldenpath.logging"):
        shared = logging.request_logs(windows, 10)
    assert "the shared read did not decide" in caplog.text
    assert shared == alone


def test_the_startup_errors_of_all_serving_revisions_are_one_read(twin: Twin) -> None:
    logging = twin.adapter()
    revisions = twin.status()["run"]["revisions"]
    serving = {}
    for name in (BACKEND, AUTH):
        newest = max((r for r in revisions if r["service"].endswith(f"/services/{name}")),
                     key=lambda r: r["createTime"])
        serving[name] = (newest["name"].rsplit("/", 1)[-1], datetime.fromisoformat(
            newest["createTime"].replace("Z", "+00:00")))
    alone = {n: logging.startup_errors(n, rev, since) for n, (rev, since) in serving.items()}
    before = twin.calls()
    assert logging.startup_errors_of(serving) == alone
    assert twin.calls() - before <= 3
