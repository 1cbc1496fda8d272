"""Agent checkpoints (``PUT``/``GET /v1/experiments/{id}/agents/{agent_id}``, api/agents.py):
byte-exact round trips over real HTTP, versions, ETag/304, listing, every rejection leaving
the stored checkpoint untouched, the body limit, the token, SIGKILL + restart on SQLite and
PostgreSQL, and the client's ``put_agent`` / ``get_agent`` / ``list_agents``."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from teacher_service.client import (
    ChecksumError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    TeacherClient,
    UnauthorizedError,
)
from tests.conftest import BOX2

TOKEN = "s3cret"


# ------------------------------------------------------------------------- helpers
def blob(n: int = 300_000, seed: int = 0) -> bytes:
    """``n >= 256`` random bytes holding every byte value (a checkpoint is opaque to us)."""
    rng = np.random.default_rng(seed)
    data = rng.permutation(
        np.concatenate([np.arange(256), rng.integers(0, 256, size=n - 256)]).astype(np.uint8)
    ).tobytes()
    assert len(data) == n and len(set(data)) == 256
    return data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create(c: httpx.Client, name: str) -> str:
    r = c.post("/v1/experiments", json={"name": name, "space": BOX2, "teacher": {"kind": "random"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def put(c: httpx.Client, exp: str, agent: str, data: bytes, **headers: str) -> httpx.Response:
    h = {"Content-Type": "application/octet-stream", **headers}
    return c.put(f"/v1/experiments/{exp}/agents/{agent}", content=data, headers=h)


def get(c: httpx.Client, exp: str, agent: str, **headers: str) -> httpx.Response:
    return c.get(f"/v1/experiments/{exp}/agents/{agent}", headers=headers)


def assert_stored(c: httpx.Client, exp: str, agent: str, data: bytes, version: int) -> None:
    """The agent's latest checkpoint is exactly ``data`` at ``version``."""
    r = get(c, exp, agent)
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["etag"] == f'"{sha(data)}"'
    assert r.headers["x-content-sha256"] == sha(data)
    assert r.headers["x-agent-version"] == str(version)


# ------------------------------------------------------------------------- HTTP
def test_round_trip_is_byte_exact_and_versions_count_uploads(server) -> None:
    one, two = blob(seed=1), blob(seed=2)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        exp_id = create(c, "paired-a")
        r = put(c, exp_id, "protagonist", one)
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["agent_id"] == "protagonist"
        assert (info["version"], info["size"], info["sha256"]) == (1, len(one), sha(one))
        assert info["updated_at"] > 0
        # By id and by name: the same bytes.
        assert_stored(c, exp_id, "protagonist", one, 1)
        assert_stored(c, "paired-a", "protagonist", one, 1)

        # Each PUT bumps the version; GET returns the latest (a PUT by name, same agent).
        r = put(c, "paired-a", "protagonist", two)
        assert r.status_code == 200, r.text
        assert (r.json()["version"], r.json()["sha256"]) == (2, sha(two))
        assert_stored(c, exp_id, "protagonist", two, 2)
        r = put(c, exp_id, "protagonist", one)
        assert r.json()["version"] == 3
        assert_stored(c, "paired-a", "protagonist", one, 3)


def test_same_agent_id_in_two_experiments_is_kept_apart(server) -> None:
    a_bytes, b_bytes = blob(1000, seed=3), blob(2000, seed=4)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "exp-a")
        create(c, "exp-b")
        assert put(c, "exp-a", "antagonist", a_bytes).json()["version"] == 1
        r = get(c, "exp-b", "antagonist")
        assert r.status_code == 404
        assert put(c, "exp-b", "antagonist", b_bytes).json()["version"] == 1
        # the same bytes again (a retried PUT) change nothing: same version, same time
        first = c.get("/v1/experiments/exp-b/agents").json()["data"][0]
        again = put(c, "exp-b", "antagonist", b_bytes).json()
        assert again == first and again["version"] == 1
        assert put(c, "exp-b", "antagonist", a_bytes).json()["version"] == 2
        assert_stored(c, "exp-a", "antagonist", a_bytes, 1)
        assert_stored(c, "exp-b", "antagonist", a_bytes, 2)


def test_concurrent_puts_each_get_their_own_version(server) -> None:
    n = 16
    datas = [blob(5000, seed=100 + i) for i in range(n)]
    versions: list[int] = []
    lock = threading.Lock()

    def upload(data: bytes) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as w:
            r = put(w, "race", "agent-0", data)
            assert r.status_code == 200, r.text
            with lock:
                versions.append(r.json()["version"])

    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "race")
        threads = [threading.Thread(target=upload, args=(d,)) for d in datas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(versions) == list(range(1, n + 1))
        r = get(c, "race", "agent-0")
        assert r.headers["x-agent-version"] == str(n)
        assert r.content in datas  # whichever upload committed last, whole and intact
        assert r.headers["x-content-sha256"] == sha(r.content)


def test_etag_and_if_none_match(server) -> None:
    one, two = blob(4096, seed=5), blob(4096, seed=6)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "etag")
        put(c, "etag", "poet.0", one)
        etag = get(c, "etag", "poet.0").headers["etag"]
        assert etag == f'"{sha(one)}"'
        for header in (etag, f"W/{etag}", f'"{"0" * 64}", {etag}', "*"):
            r = get(c, "etag", "poet.0", **{"If-None-Match": header})
            assert r.status_code == 304, header
            assert r.content == b""
            assert r.headers["etag"] == etag
            assert r.headers["x-agent-version"] == "1"
        # A stale tag after a new upload: the new bytes.
        put(c, "etag", "poet.0", two)
        r = get(c, "etag", "poet.0", **{"If-None-Match": etag})
        assert r.status_code == 200
        assert r.content == two
        assert r.headers["x-agent-version"] == "2"
        # Unknown agent with a conditional GET is still a 404.
        assert get(c, "etag", "nobody", **{"If-None-Match": "*"}).status_code == 404


def test_list_shows_metadata_of_every_agent(server) -> None:
    stored = {"protagonist": blob(300, seed=7), "antagonist": blob(900, seed=8), "b-2": b"\x00\xff"}
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "listed")
        create(c, "empty")
        for agent, data in stored.items():
            put(c, "listed", agent, data)
        stored["antagonist"] = blob(700, seed=9)
        put(c, "listed", "antagonist", stored["antagonist"])  # version 2, new bytes
        r = c.get("/v1/experiments/listed/agents")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == 3
        rows = {a["agent_id"]: a for a in body["data"]}
        assert [a["agent_id"] for a in body["data"]] == sorted(stored)
        for agent, data in stored.items():
            assert rows[agent]["size"] == len(data)
            assert rows[agent]["sha256"] == sha(data)
            assert rows[agent]["version"] == (2 if agent == "antagonist" else 1)
            assert "data" not in rows[agent]
        assert c.get("/v1/experiments/empty/agents").json() == {"data": [], "count": 0}


def test_unknown_experiment_or_agent_is_404(server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "known")
        r = get(c, "known", "ghost")
        assert r.status_code == 404
        detail = r.json()["detail"]
        assert "ghost" in detail and "known" in detail
        for r in (
            get(c, "nope", "ghost"),
            put(c, "nope", "ghost", b"abc"),
            c.get("/v1/experiments/nope/agents"),
        ):
            assert r.status_code == 404
            assert "nope" in r.json()["detail"]
        # The failed PUT stored nothing anywhere.
        assert c.get("/v1/experiments/known/agents").json()["count"] == 0


@pytest.mark.parametrize(
    ("agent", "body", "headers", "needle"),
    [
        ("..%2Fx", b"new", {}, "agent id"),
        ("a%20b", b"new", {}, "agent id"),
        ("x" * 200, b"new", {}, "128"),
        (".hidden", b"new", {}, "agent id"),
        ("-dash", b"new", {}, "agent id"),
        ("keep", b"", {}, "empty body"),
        ("keep", b"new", {"X-Content-SHA256": "0" * 64}, "X-Content-SHA256"),
        ("keep", b"new", {"X-Content-SHA256": "not-hex"}, "64 hexadecimal"),
    ],
    ids=["dotdot-slash", "space", "too-long", "leading-dot", "leading-dash", "empty", "sha", "hex"],
)
def test_rejected_put_is_422_and_keeps_the_stored_version(
    server, agent: str, body: bytes, headers: dict[str, str], needle: str
) -> None:
    old = blob(2048, seed=9)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "strict")
        assert put(c, "strict", "keep", old).json()["version"] == 1
        r = put(c, "strict", agent, body, **headers)
        assert r.status_code == 422, r.text
        assert needle in r.json()["detail"]
        assert_stored(c, "strict", "keep", old, 1)
        rows = c.get("/v1/experiments/strict/agents").json()["data"]
        assert [(a["agent_id"], a["version"]) for a in rows] == [("keep", 1)]
        if agent != "keep":  # a GET of an invalid id is refused the same way
            assert get(c, "strict", agent).status_code == 422


def test_matching_checksum_header_is_accepted(server) -> None:
    data = blob(10_000, seed=10)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "checked")
        r = put(c, "checked", "a", data, **{"X-Content-SHA256": sha(data).upper()})
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == sha(data)
        assert_stored(c, "checked", "a", data, 1)


def test_body_above_the_limit_is_413_and_keeps_the_stored_version(
    server_factory, tmp_path: Path, monkeypatch
) -> None:
    limit = 64 * 1024
    monkeypatch.setenv("AUTOCURRICULUM_MAX_BODY_BYTES", str(limit))
    srv = server_factory(f"sqlite:///{tmp_path / 'small.db'}")
    at_limit, too_big = blob(limit, seed=11), blob(limit + 1, seed=12)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        create(c, "limited")
        assert put(c, "limited", "a", at_limit).json()["version"] == 1
        r = put(c, "limited", "a", too_big)  # announced by Content-Length
        assert r.status_code == 413
        assert str(limit) in r.json()["detail"]
        # Streamed without a Content-Length (chunked): cut off while reading.
        chunks = [too_big[i : i + 8192] for i in range(0, len(too_big), 8192)]
        r = c.put("/v1/experiments/limited/agents/a", content=iter(chunks))
        assert r.status_code == 413
        assert_stored(c, "limited", "a", at_limit, 1)
    with TeacherClient(srv.url, retries=0) as client:
        with pytest.raises(PayloadTooLargeError):
            client.put_agent("limited", "a", too_big)
        assert client.get_agent("limited", "a") == at_limit


def test_token_is_required(server_factory, tmp_path: Path) -> None:
    srv = server_factory(f"sqlite:///{tmp_path / 'tok.db'}", token=TOKEN)
    data = blob(1000, seed=13)
    good = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=srv.url, timeout=60, headers=good) as c:
        create(c, "secret")
        assert put(c, "secret", "a", data).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with httpx.Client(base_url=srv.url, timeout=60, headers=headers) as c:
            assert put(c, "secret", "a", b"evil").status_code == 401
            assert get(c, "secret", "a").status_code == 401
            assert c.get("/v1/experiments/secret/agents").status_code == 401
    with httpx.Client(base_url=srv.url, timeout=60, headers=good) as c:
        assert_stored(c, "secret", "a", data, 1)
    with TeacherClient(srv.url, token="wrong", retries=0) as client:
        with pytest.raises(UnauthorizedError):
            client.get_agent("secret", "a")


def test_agents_survive_sigkill_and_restart(server_factory, db_url: str) -> None:
    srv = server_factory(db_url)
    pro, ant = blob(seed=14), blob(50_000, seed=15)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        create(c, "durable")
        put(c, "durable", "protagonist", blob(seed=16))
        assert put(c, "durable", "protagonist", pro).json()["version"] == 2
        assert put(c, "durable", "antagonist", ant).json()["version"] == 1
    srv.kill()  # right after the answers: acknowledged means committed
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        assert_stored(c, "durable", "protagonist", pro, 2)
        assert_stored(c, "durable", "antagonist", ant, 1)
        assert put(c, "durable", "protagonist", ant).json()["version"] == 3
        assert_stored(c, "durable", "protagonist", ant, 3)
        rows = c.get("/v1/experiments/durable/agents").json()["data"]
        assert [(a["agent_id"], a["version"], a["size"]) for a in rows] == [
            ("antagonist", 1, len(ant)),
            ("protagonist", 3, len(ant)),
        ]


# ------------------------------------------------------------------------- client
def test_client_put_get_list(server, tmp_path: Path) -> None:
    data, on_disk = blob(seed=17), blob(120_000, seed=18)
    src = tmp_path / "antagonist.pt"
    src.write_bytes(on_disk)
    with TeacherClient(server.url) as client:
        client.create_experiment("cli", BOX2, {"kind": "random"})
        info = client.put_agent("cli", "protagonist", data)
        assert (info.agent_id, info.version, info.size, info.sha256) == (
            "protagonist",
            1,
            len(data),
            sha(data),
        )
        assert client.put_agent("cli", "antagonist", src).version == 1
        assert client.put_agent("cli", "antagonist", str(src)).version == 1  # same bytes
        on_disk = blob(120_000, seed=19)
        src.write_bytes(on_disk)
        assert client.put_agent("cli", "antagonist", str(src)).version == 2

        assert client.get_agent("cli", "protagonist") == data
        dest = tmp_path / "out" / "antagonist.pt"
        dest.parent.mkdir()
        assert client.get_agent("cli", "antagonist", dest) == on_disk
        assert dest.read_bytes() == on_disk
        assert sorted(p.name for p in dest.parent.iterdir()) == ["antagonist.pt"]  # no .part

        listed = client.list_agents("cli")
        assert [(a.agent_id, a.version, a.size, a.sha256) for a in listed] == [
            ("antagonist", 2, len(on_disk), sha(on_disk)),
            ("protagonist", 1, len(data), sha(data)),
        ]

        with pytest.raises(NotFoundError, match="ghost"):
            client.get_agent("cli", "ghost", tmp_path / "ghost.pt")
        assert not (tmp_path / "ghost.pt").exists()
        with pytest.raises(NotFoundError):
            client.list_agents("nope")
        with pytest.raises(NotFoundError):
            client.put_agent("nope", "a", b"x")
        with pytest.raises(InvalidRequestError, match="agent id"):
            client.put_agent("cli", "../x", b"x")
        with pytest.raises(InvalidRequestError, match="empty body"):
            client.put_agent("cli", "protagonist", b"")
        assert client.get_agent("cli", "protagonist") == data  # untouched by the rejections


def test_client_refuses_a_download_that_does_not_match_its_checksum(tmp_path: Path) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(
            200, content=b"damaged", headers={"X-Content-SHA256": sha(b"original")}
        )

    dest = tmp_path / "a.pt"
    with TeacherClient("http://test", transport=httpx.MockTransport(handler), retries=2) as client:
        with pytest.raises(ChecksumError, match="SHA-256"):
            client.get_agent("exp", "a", dest)
    assert calls == ["/v1/experiments/exp/agents/a"] * 3
    assert not dest.exists()
    assert not (tmp_path / "a.pt.part").exists()


def test_client_put_sends_the_checksum_and_is_retried(tmp_path: Path) -> None:
    seen: list[tuple[bytes, str]] = []
    data = blob(1000, seed=19)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.content, request.headers["X-Content-SHA256"]))
        if len(seen) == 1:
            return httpx.Response(503, json={"detail": "storage failed"})
        info = {"agent_id": "a", "version": 1, "size": 1000, "sha256": sha(data), "updated_at": 1}
        return httpx.Response(200, json=info)

    with TeacherClient(
        "http://test", transport=httpx.MockTransport(handler), backoff=0.001
    ) as client:
        assert client.put_agent("exp", "a", data).version == 1
    assert seen == [(data, sha(data))] * 2
