"""``GET /api/v2/events``: every run's events, live, resumable, cheap to hold open.

The suite's server sends a heartbeat after 1 s of silence (``heartbeat: 1``), so the
tests see one without waiting 15 s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.cluster import Cluster
from tests.rest.conftest import (
    OPERATE_TOKEN,
    Http,
    RestServer,
    parse_sse,
    rest_section,
    write_config,
)
from tests.rest.test_runs import start


class Follower:
    """Reads ``/api/v2/events`` on a thread, keeping every message."""

    def __init__(self, http: Http, last_event_id: str | None = None) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.response = http.get("/api/v2/events", stream=True, headers=headers)
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.lines: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        def lines():
            for line in self.response.iter_lines(decode_unicode=True):
                self.lines.append(line)
                yield line

        try:
            for message in parse_sse(lines()):
                self.messages.append(message)
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["data"]["workflow_id"] == run_id]

    def wait_for(self, run_id: str, kind: str = "workflow_finished", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(m["data"]["kind"] == kind for m in self.of_run(run_id)):
            assert time.monotonic() < deadline, f"no {kind} of {run_id}: {self.messages[-5:]}"
            time.sleep(0.05)

    def close(self) -> None:
        self.response.close()


def test_events_of_every_run_arrive_in_order(http: Http) -> None:
    follower = Follower(http)
    try:
        time.sleep(0.5)  # the stream is subscribed
        first = start(http, "greet", arguments={"name": "Ada"})
        second = start(http, "broken")
        follower.wait_for(first)
        follower.wait_for(second)
        for run_id in (first, second):
            kinds = [m["data"]["kind"] for m in follower.of_run(run_id)]
            assert kinds[0] == "workflow_started" and kinds[-1] == "workflow_finished"
        failed = next(m for m in follower.of_run(second) if m["data"]["kind"] == "task_failed")
        assert (
            failed["data"]["task"] == "divide" and "division by zero" in failed["data"]["message"]
        )
        ids = [m["id"] for m in follower.messages]
        keys = [tuple(int(part) for part in event_id.split("-")) for event_id in ids]
        assert keys == sorted(keys) and len(set(ids)) == len(ids)
        assert all(m["id"] == m["data"]["id"] for m in follower.messages)
    finally:
        follower.close()


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(http: Http) -> None:
    follower = Follower(http)
    time.sleep(0.5)
    first = start(http, "greet", arguments={"name": "Bo"})
    follower.wait_for(first, "task_started")
    follower.close()
    follower.thread.join(10)
    last = follower.messages[-1]["id"]
    seen = [m["id"] for m in follower.messages]
    # Meanwhile the first run goes on and a second one runs to its end.
    http.wait_for_run(first)
    second = start(http, "greet", arguments={"name": "Cy"})
    http.wait_for_run(second)
    resumed = Follower(http, last_event_id=last)
    try:
        resumed.wait_for(second)
        third = start(http, "greet", arguments={"name": "Di"})
        resumed.wait_for(third)  # the live part follows the replay
        ids = [m["id"] for m in resumed.messages]
        assert not set(ids) & set(seen)
        assert len(set(ids)) == len(ids)
        first_kinds = [m["data"]["kind"] for m in follower.of_run(first) + resumed.of_run(first)]
        assert first_kinds[0] == "workflow_started" and first_kinds[-1] == "workflow_finished"
        assert first_kinds.count("task_started") == first_kinds.count("task_succeeded") == 2
        for run_id in (second, third):
            kinds = [m["data"]["kind"] for m in resumed.of_run(run_id)]
            assert kinds[0] == "workflow_started" and kinds.count("task_succeeded") == 2
    finally:
        resumed.close()


def test_an_idle_stream_sends_heartbeats(http: Http) -> None:
    follower = Follower(http)
    try:
        deadline = time.monotonic() + 30
        while ": heartbeat" not in follower.lines:
            assert time.monotonic() < deadline, follower.lines
            time.sleep(0.1)
    finally:
        follower.close()


def test_a_bad_last_event_id_is_400(http: Http) -> None:
    response = http.get("/api/v2/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]
    one_run = http.get("/api/v2/runs/abc/events", headers={"Last-Event-ID": "-3"})
    assert one_run.status_code == 400


def test_streams_of_clients_that_left_free_their_threads(
    tmp_path: Path, redis_cluster: Cluster
) -> None:
    # Four request threads: if a stream kept its thread after its client left, the
    # fifth stream (or the request after the streams) would never be answered.
    config = write_config(
        redis_cluster, tmp_path / "lightflow.cfg", rest_section(tmp_path, heartbeat=30)
    )
    with RestServer(config, "--threads", "4") as server:
        http = Http(server.url)
        for round_number in range(3):
            streams = [
                requests.get(
                    server.url + path,
                    headers={"Authorization": f"Bearer {OPERATE_TOKEN}"},
                    stream=True,
                    timeout=30,
                )
                for path in ("/api/v2/events", "/api/v2/events", "/api/v2/events")
            ]
            assert [s.status_code for s in streams] == [200, 200, 200], round_number
            for stream in streams:
                stream.close()
            time.sleep(3)  # each notices within about a second
        assert http.get("/api/v2/runs", params={"limit": 1}).status_code == 200
