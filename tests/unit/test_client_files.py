"""The client's building blocks without a server: the atomic-write helper
(``teacher_service.client.files``) and the one retry rule of the HTTP layer
(``teacher_service.client.http``), against a local fake transport."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from teacher_service.client import (
    ApiError,
    InvalidRequestError,
    NotFoundError,
    ServerUnavailableError,
    TeacherClient,
)
from teacher_service.client.files import atomic_write
from teacher_service.client.http import (
    Backoff,
    HttpLayer,
    RetryableError,
    RetryStopped,
    retry_call,
)

FAST = Backoff(0.001, 0.005)


# ---------------------------------------------------------------------------- atomic_write
class _CrashError(Exception):
    """Stands for a crash in the middle of writing."""


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    dest = tmp_path / "ckpt.pt"
    dest.write_bytes(b"old")
    with atomic_write(dest) as f:
        f.write(b"new ")
        f.write(b"content")
        assert dest.read_bytes() == b"old"  # readers still see the old file mid-write
    assert dest.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    with atomic_write(tmp_path / "notes.txt", mode="w") as f:
        f.write("héllo")
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "héllo"


def test_atomic_write_failure_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "ckpt.pt"
    dest.write_bytes(b"previous checkpoint")
    with pytest.raises(_CrashError):
        with atomic_write(dest) as f:
            f.write(b"half of the new one")
            raise _CrashError
    assert dest.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file behind
    # Also when there was no previous file: nothing appears.
    with pytest.raises(_CrashError):
        with atomic_write(tmp_path / "fresh.bin") as f:
            f.write(b"partial")
            raise _CrashError
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_atomic_write_failing_rename_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    dest = tmp_path / "export.jsonl"
    dest.write_bytes(b"old")

    def no_replace(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("teacher_service.client.files.os.replace", no_replace)
    with pytest.raises(OSError, match="disk gone"):
        with atomic_write(dest) as f:
            f.write(b"new")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


def test_atomic_write_rejects_read_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", mode="rb"):
            pass
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ retries
def _scripted(statuses: list[int]) -> tuple[HttpLayer, list[str]]:
    """An HTTP layer whose server answers ``statuses`` in turn (then 200s); 0 drops the
    connection. Returns the layer and the list of paths it was asked for."""
    calls: list[str] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            calls.append(request.url.path)
            status = statuses[len(calls) - 1] if len(calls) <= len(statuses) else 200
        if status == 0:
            raise httpx.ConnectError("simulated: refused", request=request)
        return httpx.Response(status, json={"detail": f"scripted {status}", "ok": status < 400})

    layer = HttpLayer(
        "http://test", token=None, timeout=5.0, backoff=FAST, transport=httpx.MockTransport(handler)
    )
    return layer, calls


def test_retries_503_and_network_errors_then_succeeds() -> None:
    layer, calls = _scripted([503, 0, 502])
    seen: list[str] = []
    resp = layer.send("GET", "/x", idempotent=False, max_retries=5, on_retry=seen.append)
    assert resp.status_code == 200 and resp.json()["ok"] is True
    assert len(calls) == 4
    assert seen[0] == "HTTP 503: scripted 503" and "ConnectError" in seen[1] and len(seen) == 3


def test_500_is_retried_only_for_idempotent_calls() -> None:
    layer, calls = _scripted([500])
    assert layer.send("PUT", "/x", idempotent=True, max_retries=1).status_code == 200
    assert len(calls) == 2
    layer, calls = _scripted([500])
    with pytest.raises(ApiError, match="scripted 500") as info:
        layer.send("POST", "/x", idempotent=False, max_retries=3)
    assert len(calls) == 1 and info.value.status_code == 500 and info.value.attempts == 1


@pytest.mark.parametrize("status, error", [(422, InvalidRequestError), (404, NotFoundError)])
def test_4xx_is_never_retried(status: int, error: type[Exception]) -> None:
    layer, calls = _scripted([status, status])
    with pytest.raises(error, match=f"scripted {status}") as info:
        layer.send("PUT", "/x", idempotent=True, max_retries=5)
    assert len(calls) == 1 and info.value.attempts == 1  # type: ignore[attr-defined]
    # After a transient failure, the 4xx still ends the call at once, counting both attempts.
    layer, calls = _scripted([503, status])
    with pytest.raises(error) as info:
        layer.send("PUT", "/x", idempotent=True, max_retries=5)
    assert len(calls) == 2 and info.value.attempts == 2  # type: ignore[attr-defined]


def test_gives_up_after_max_retries_with_the_attempt_count() -> None:
    layer, calls = _scripted([503] * 10)
    with pytest.raises(ServerUnavailableError, match="failed after 4 attempts") as info:
        layer.send("GET", "/x", idempotent=True, max_retries=3)
    assert info.value.attempts == 4 and info.value.last_status == 503 and len(calls) == 4
    layer, _ = _scripted([0])
    with pytest.raises(ServerUnavailableError) as info:
        layer.send("GET", "/x", idempotent=True, max_retries=0)
    assert info.value.last_status is None and isinstance(info.value.__cause__, httpx.ConnectError)


def test_endless_retries_stop_when_the_stop_event_is_set() -> None:
    layer, calls = _scripted([503] * 10_000)
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(RetryStopped):
        layer.send("POST", "/x", idempotent=True, max_retries=None, stop=stop)
    assert time.monotonic() - t0 < 5 and len(calls) > 3
    n = len(calls)
    time.sleep(0.05)
    assert len(calls) == n  # nothing sent after stopping
    with pytest.raises(RetryStopped):  # a stopped call makes no attempt at all
        layer.send("POST", "/x", idempotent=True, max_retries=None, stop=stop)
    assert len(calls) == n


def test_a_long_wait_is_cut_short_by_the_stop_event() -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()

    def always_fails(_: int) -> None:
        raise RetryableError("down")

    t0 = time.monotonic()
    with pytest.raises(RetryStopped):
        retry_call(always_fails, what="x", backoff=Backoff(60.0, 60.0), max_retries=None, stop=stop)
    assert time.monotonic() - t0 < 5


def test_final_error_replaces_server_unavailable_and_attempts_are_numbered() -> None:
    numbers: list[int] = []

    def attempt(n: int) -> str:
        numbers.append(n)
        raise RetryableError("bad bytes", final=ValueError(f"still bad after {n}"))

    with pytest.raises(ValueError, match="still bad after 3"):
        retry_call(attempt, what="x", backoff=FAST, max_retries=2)
    assert numbers == [1, 2, 3]
    assert retry_call(lambda n: n, what="x", backoff=FAST, max_retries=0) == 1


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(0.1, 1.0)
    for retry, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (50, 1.0)]:
        delays = [b.delay(retry) for _ in range(200)]
        assert all(0.5 * base <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jittered


# ------------------------------------------------------------------------ downloads
def _server(answers: list[Callable[[httpx.Request], httpx.Response]]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)(request) if answers else httpx.Response(200, content=b"late")

    return httpx.MockTransport(handler)


class _CutStream(httpx.SyncByteStream):
    """A body that breaks off after its first chunk (the server died mid-stream)."""

    def __iter__(self):  # type: ignore[override]
        yield b'{"type": "experiment"}\n'
        raise httpx.ReadError("simulated: stream cut short")


def test_export_download_restarts_after_a_cut_and_writes_atomically(tmp_path: Path) -> None:
    dest = tmp_path / "e.jsonl"
    dest.write_bytes(b"previous export")
    full = b'{"type": "experiment"}\n{"type": "task"}\n'
    answers = [
        lambda r: httpx.Response(200, stream=_CutStream()),
        lambda r: httpx.Response(503, json={"detail": "busy"}),
        lambda r: httpx.Response(200, content=full),
    ]
    with TeacherClient("http://test", transport=_server(answers), backoff=0.001) as c:
        assert c.export("e", dest) == dest
    assert dest.read_bytes() == full and answers == []
    assert [p.name for p in tmp_path.iterdir()] == ["e.jsonl"]


def test_export_download_that_never_completes_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "e.jsonl"
    dest.write_bytes(b"previous export")
    answers = [lambda r: httpx.Response(200, stream=_CutStream())] * 3
    with TeacherClient("http://test", transport=_server(answers), retries=2, backoff=0.001) as c:
        with pytest.raises(ServerUnavailableError, match="failed after 3 attempts") as info:
            c.export("e", dest)
    assert info.value.attempts == 3 and answers == []
    assert dest.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["e.jsonl"]


def test_agent_download_retries_a_damaged_copy_then_writes_it(tmp_path: Path) -> None:
    import hashlib

    good = b"weights"
    sha = hashlib.sha256(good).hexdigest()
    answers = [
        lambda r: httpx.Response(200, content=b"garbled", headers={"X-Content-SHA256": sha}),
        lambda r: httpx.Response(503, json={"detail": "busy"}),
        lambda r: httpx.Response(200, content=good, headers={"X-Content-SHA256": sha}),
    ]
    dest = tmp_path / "a.pt"
    with TeacherClient("http://test", transport=_server(answers), backoff=0.001) as c:
        assert c.get_agent("exp", "a", dest) == good
    assert dest.read_bytes() == good and answers == []
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
