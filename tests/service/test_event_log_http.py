"""An event of unknown kind in the log, seen through the HTTP API: every reader answers the
same clear error (the rule itself is tested in tests/unit/test_event_log.py)."""

from __future__ import annotations

import httpx

from teacher_service.storage import Store
from tests.conftest import BOX2


def test_over_http_every_reader_answers_a_clear_500(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        body = {"name": "newer", "space": BOX2, "teacher": {"kind": "random"}, "seed": 0}
        r = c.post("/v1/experiments", json={**body, "lease_seconds": 3600})
        assert r.status_code == 201, r.text
        exp = r.json()["id"]
        assert c.post(f"/v1/experiments/{exp}/tasks", json={"n": 2}).status_code == 200
        side = Store(server.db)
        try:
            side.append_event(exp, 2, "promote", b"{}").result()
        finally:
            side.close()

        want = f"experiment {exp}: event 2 has unknown kind 'promote'"

        def unreadable(r: httpx.Response) -> bool:
            return r.status_code == 500 and want in r.json()["detail"]

        # The dashboard reads the log itself: one frame, and the stream before it starts.
        assert unreadable(c.get(f"/v1/experiments/{exp}/dashboard"))
        assert unreadable(c.get(f"/v1/experiments/{exp}/events", params={"limit": 1}))
        # The runtime's next write collides with the event (503); it then rebuilds from the
        # log and stops at the event, on every later call (the export plans through it).
        assert c.post(f"/v1/experiments/{exp}/tasks", json={"n": 1}).status_code == 503
        for _ in range(2):
            assert unreadable(c.post(f"/v1/experiments/{exp}/tasks", json={"n": 1}))
        for fmt in ("jsonl", "parquet"):
            r = c.get(f"/v1/experiments/{exp}/export", params={"format": fmt})
            assert unreadable(r) or (fmt == "parquet" and r.status_code == 406), r.text
    log = server.log_path.read_text()
    assert "event log unreadable" in log and "Traceback" not in log
