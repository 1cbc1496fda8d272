"""The client's one HTTP layer: requests, downloads, and the retry rule they all share.

Retry rule (:func:`retry_call`): an attempt that fails transiently is retried after a capped,
jittered exponential backoff; anything else is raised at once. Transient means no answer at
all (connection refused or reset, timeouts, a stream cut short), 502/503/504, and 500 for
idempotent calls; a 4xx is never retried, since sending the same request again cannot fix it.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from teacher_service.client.errors import ServerUnavailableError, api_error, response_detail
from teacher_service.client.files import atomic_write

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses retried for every call: the server (or a proxy in front of it) is not answering.
RETRY_ALWAYS = frozenset({502, 503, 504})


class RetryableError(Exception):
    """One attempt failed in a way that a later attempt may not.

    Raised by the attempt functions given to :func:`retry_call`.

    Args:
        why: what went wrong, for logs and the final error.
        status: the HTTP status of the answer, if there was one.
        final: what to raise instead of :class:`ServerUnavailableError` when this was the
            last attempt (e.g. a ``ChecksumError``).
    """

    def __init__(
        self, why: str, *, status: int | None = None, final: Exception | None = None
    ) -> None:
        super().__init__(why)
        self.why = why
        self.status = status
        self.final = final


class RetryStopped(Exception):  # noqa: N818 -- a signal to stop, not a failure
    """The stop event was set, so the retried call was abandoned."""


class Backoff:
    """Capped exponential backoff with jitter; thread-safe.

    Args:
        initial: delay before the first retry, in seconds; it doubles with every retry.
        cap: the longest delay, in seconds.
    """

    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = random.Random()
        self._lock = threading.Lock()

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based).

        The capped exponential delay times a uniform factor in [0.5, 1), so that clients
        which failed together do not retry in lockstep.
        """
        base = min(self.cap, self.initial * 2 ** min(retry - 1, 30))
        with self._lock:
            u = self._rng.random()
        return base * (0.5 + 0.5 * u)


def retry_call(
    attempt: Callable[[int], T],
    *,
    what: str,
    backoff: Backoff,
    max_retries: int | None,
    stop: threading.Event | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """Call ``attempt`` until it returns, retrying each :class:`RetryableError` it raises.

    Args:
        attempt: makes one attempt; gets the attempt's number (1-based) and returns the
            result, raises :class:`RetryableError` to be retried, or raises anything else
            to end the call with that error.
        what: names the call in logs and errors, e.g. ``"GET http://host/v1/teachers"``.
        backoff: the delays between attempts.
        max_retries: retries after the first attempt; ``None`` retries until ``stop`` is set.
        stop: when set (before an attempt or while waiting for one), the call is abandoned.
        on_retry: called with the failure's description before each retry.

    Returns:
        What the successful attempt returned.

    Raises:
        ServerUnavailableError: ``max_retries`` retries all failed (or the last failure's
            ``final`` error, if it has one).
        RetryStopped: ``stop`` was set.
    """
    retries = 0
    while True:
        if stop is not None and stop.is_set():
            raise RetryStopped(what)
        try:
            result = attempt(retries + 1)
        except RetryableError as exc:
            failure = exc
        else:
            if retries:
                log.info("%s succeeded after %d retries", what, retries)
            return result
        retries += 1
        if max_retries is not None and retries > max_retries:
            if failure.final is not None:
                raise failure.final from failure.__cause__
            raise ServerUnavailableError(
                f"{what} failed after {retries} attempts; last: {failure.why}",
                attempts=retries,
                last_status=failure.status,
            ) from failure.__cause__
        delay = backoff.delay(retries)
        # Endless retries (background threads waiting out an outage) log every tenth only.
        if max_retries is not None or retries == 1 or retries % 10 == 0:
            limit = f"/{max_retries}" if max_retries is not None else ""
            log.warning(
                "%s failed (%s); retry %d%s in %.2fs", what, failure.why, retries, limit, delay
            )
        if on_retry is not None:
            on_retry(failure.why)
        if stop is None:
            time.sleep(delay)
        elif stop.wait(delay):
            raise RetryStopped(what)


@contextmanager
def _network_errors_retried() -> Iterator[None]:
    """Turn a failure to get a (complete) answer into a :class:`RetryableError`."""
    try:
        yield
    except httpx.TransportError as exc:  # includes timeouts and a stream cut short
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise RetryableError(why) from exc


def _check_status(resp: httpx.Response, attempt: int, *, idempotent: bool) -> None:
    """Pass a success; raise :class:`RetryableError` for a transient status, else ApiError."""
    status = resp.status_code
    if status < 400:
        return
    if status in RETRY_ALWAYS or (idempotent and status == 500):
        raise RetryableError(f"HTTP {status}: {response_detail(resp)}", status=status)
    raise api_error(resp, attempt)


def experiment_path(key: str, suffix: str = "") -> str:
    """The URL path of an experiment (id or name) plus ``suffix``, e.g. ``"/tasks"``."""
    return f"/v1/experiments/{quote(key, safe='')}{suffix}"


class HttpLayer:
    """An ``httpx`` connection pool to one server, and every way the client calls it.

    Thread-safe.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000`` (no trailing slash).
        token: bearer token, if the server requires one.
        timeout: seconds per HTTP attempt (connect, read, write, pool).
        backoff: the delays between retries.
        transport: an ``httpx`` transport to use instead of the network (tests, mocks).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        backoff: Backoff,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.backoff = backoff
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def retry(
        self,
        attempt: Callable[[int], T],
        what: str,
        *,
        max_retries: int | None,
        stop: threading.Event | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> T:
        """:func:`retry_call` with this layer's backoff."""
        return retry_call(
            attempt,
            what=what,
            backoff=self.backoff,
            max_retries=max_retries,
            stop=stop,
            on_retry=on_retry,
        )

    def request_once(
        self,
        method: str,
        path: str,
        attempt: int,
        *,
        idempotent: bool,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One attempt of a request (``attempt`` is its number, for the error it may raise).

        Raises:
            RetryableError: a transient failure.
            ApiError: (a subclass of) for a status that is not retried.
        """
        with _network_errors_retried():
            resp = self._client.request(method, path, json=json, content=content, headers=headers)
        _check_status(resp, attempt, idempotent=idempotent)
        return resp

    def send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        max_retries: int | None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> httpx.Response:
        """A request, retried as :func:`retry_call` says.

        Args:
            method: the HTTP method.
            path: the URL path (below ``base_url``).
            idempotent: whether a 500 may be retried (the call may have taken effect).
            max_retries: as for :func:`retry_call`.
            json: a JSON body.
            content: a raw body, instead of ``json``.
            headers: sent besides the layer's own.
            stop: as for :func:`retry_call`.
            on_retry: as for :func:`retry_call`.

        Raises:
            ApiError: (a subclass of) for a status that is not retried.
            ServerUnavailableError: ``max_retries`` retries all failed.
            RetryStopped: ``stop`` was set.
        """
        return self.retry(
            lambda n: self.request_once(
                method, path, n, idempotent=idempotent, json=json, content=content, headers=headers
            ),
            f"{method} {self.base_url}{path}",
            max_retries=max_retries,
            stop=stop,
            on_retry=on_retry,
        )

    def download(
        self,
        path: str,
        dest: str | os.PathLike[str],
        *,
        params: Mapping[str, str],
        max_retries: int,
    ) -> Path:
        """Stream ``GET path`` into the file ``dest``, atomically (:func:`atomic_write`).

        A transient failure, even mid-stream, restarts the download; ``dest`` appears only
        once a download is complete.

        Raises:
            ApiError: (a subclass of) for a status that is not retried.
            ServerUnavailableError: ``max_retries`` retries all failed.
        """

        def attempt(n: int) -> Path:
            with (
                _network_errors_retried(),
                self._client.stream("GET", path, params=params, headers={"Accept": "*/*"}) as resp,
            ):
                if resp.status_code >= 400:
                    resp.read()  # the error detail is in the body
                    _check_status(resp, n, idempotent=True)
                with atomic_write(dest) as f:
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
            return Path(dest)

        return self.retry(attempt, f"GET {self.base_url}{path}", max_retries=max_retries)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
