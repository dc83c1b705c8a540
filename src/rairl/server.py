"""The learned reward over HTTP: an app that OpenRLHF, verl and TRL (through `rairl.remote`) can call.

Endpoints (JSON):
    POST /get_reward   OpenRLHF's shape: {"query": [prompt + response], "prompts": [prompt], "labels": [...]}
                       -> {"rewards": [trace score], "scores": [same], "extra_logs": {...}}; the response is what
                       follows its prompt in the query; the trace aggregation is chosen at start-up. extra_logs hold
                       the reward's learned part (what it says beyond the likelihood it adds back, DESIGN §2.6), and
                       with labels each trace's verdict and the request's AUC of reward and learned part
    POST /score        {"prompts": [...], "responses": [...], "partial": false} -> for each trace: token rewards
                       with character offsets, step scores, every aggregation; `"partial": true` scores unfinished
                       traces (an outside search loop's beams: no EOS appended)
    GET  /health       {"status": "ok"} (no key needed)
    GET  /info         model, granularity, score form, aggregation, limits

Concurrent requests are batched: one worker thread owns the model and scores whatever has queued, up to a token
budget or until the oldest request has waited `max_wait_ms`, in one `RewardModel.score` call (length-sorted,
prompts shared). A request never waits behind more than the batch in progress and its own.

One bad request never fails another: each is checked on its own before it joins a batch (`Checks`: text that is
not valid Unicode is a 400; too many traces, a trace over `max_tokens_per_trace`, or a response longer than the
model's context is a 413 naming the limit), off the event loop, so /health answers while a large body is
tokenised. Should a batch still fail, its requests are scored again one by one and only the failing one fails.

Security: a bearer API key (compared in constant time) guards every endpoint but /health when one is set, and the
interactive docs (/docs, /redoc, /openapi.json) are then off; a body is counted as it streams in and refused with a
413 the moment it passes `max_request_bytes`. Nothing in a request is loaded or executed: it is text to score.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr

from rairl.chat import render_prompts
from rairl.evaluation.residual import label_figures
from rairl.options import check_number
from rairl.reward_model import RewardModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 8 * 2**20
    max_traces: int = 512
    max_tokens_per_trace: int = 4096
    batch_tokens: int = 32768  # dynamic batching: most tokens scored in one call
    max_wait_ms: float = 5.0  # dynamic batching: how long the first request of a batch waits for company

    def __post_init__(self) -> None:
        check_number("--max_request_bytes", self.max_request_bytes, integer=True, low=1, rule="must be >= 1")
        check_number("--max_traces", self.max_traces, integer=True, low=1, rule="must be >= 1")
        check_number("--max_tokens_per_trace", self.max_tokens_per_trace, integer=True, low=2, rule="must be >= 2")
        check_number("--batch_tokens", self.batch_tokens, integer=True, low=1, rule="must be >= 1")
        check_number("--max_wait_ms", self.max_wait_ms, low=0, high=60_000, rule="must lie in [0, 60000]")


class RewardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: list[StrictStr]
    prompts: list[StrictStr]
    labels: list[Any] | None = None


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[StrictStr]
    responses: list[StrictStr]
    partial: StrictBool = False


@dataclass
class _Job:
    prompts: list[str]
    responses: list[str]
    tokens: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)
    partial: bool = False


class Batcher:
    """One worker thread that owns the reward model and scores queued jobs together."""

    def __init__(self, model: RewardModel, limits: Limits):
        self.model, self.limits = model, limits
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="rairl-scorer", daemon=True)
        self.batches = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)

    async def score(self, prompts: list[str], responses: list[str], tokens: int, partial: bool = False):
        loop = asyncio.get_running_loop()
        job = _Job(prompts, responses, tokens, loop, loop.create_future(), partial)
        self.jobs.put(job)
        return await job.future

    def _work(self) -> None:
        carry: _Job | None = None  # a job that did not fit the last batch's token budget opens the next one
        while True:
            first = carry if carry is not None else self.jobs.get()
            carry, stop = None, first is None
            if stop:
                return
            batch, tokens = [first], first.tokens
            deadline = time.monotonic() + self.limits.max_wait_ms / 1000
            while tokens < self.limits.batch_tokens:
                try:
                    nxt = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if tokens + nxt.tokens > self.limits.batch_tokens:
                    carry = nxt
                    break
                batch.append(nxt)
                tokens += nxt.tokens
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Job]) -> None:
        """Score the batch in one call per kind (finished traces get EOS appended, partial ones do not)."""
        for partial in sorted({job.partial for job in batch}):
            self._score([job for job in batch if job.partial == partial], partial)
        self.batches += 1

    def _score(self, jobs: list[_Job], partial: bool) -> None:
        """`jobs` in one `RewardModel.score` call; should it fail, each job alone, so that only a failing one fails."""
        prompts = [p for job in jobs for p in job.prompts]
        responses = [r for job in jobs for r in job.responses]
        try:
            scores = self._parts(prompts, responses, partial) if prompts else None
        except Exception as err:  # noqa: BLE001 - reported to the waiting request(s), the worker lives on
            if len(jobs) > 1:
                logger.warning("a batch of %d requests failed (%s); scoring each alone", len(jobs), err)
                for job in jobs:
                    self._score([job], partial)
                return
            logger.exception("scoring failed")
            jobs[0].loop.call_soon_threadsafe(_settle, jobs[0].future, err)
            return
        at = 0
        for job in jobs:
            n = len(job.prompts)
            job.loop.call_soon_threadsafe(_settle, job.future, (scores, at, n))
            at += n

    def _parts(self, prompts: list[str], responses: list[str], partial: bool) -> dict[str, Any]:
        """Finished traces: the reward's views and its learned part's, from one forward pass; partial ones (a search's
        beams): the reward's views."""
        if partial:
            return {"value": self.model.score(prompts, responses, partial=True)}
        return self.model.score_parts(prompts, responses)


def _settle(future: asyncio.Future, result) -> None:
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


class BodyLimit:
    """ASGI middleware: a request body larger than `limit` bytes is refused with 413 before it is all read: at once
    when its Content-Length says so, else the moment the chunks received pass it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # FastAPI passes an HTTPException raised while it reads the body on as it is
                raise HTTPException(413, _too_large_text(self.limit))
            return message

        await self.app(scope, counted, send)


def _too_large_text(limit: int) -> str:
    return f"request body over the limit of {limit} bytes (max_request_bytes)"


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": _too_large_text(limit)}, 413)


def _printable(value: Any) -> Any:
    """A string as UTF-8 can carry it (a lone surrogate becomes its escape); anything else as it is."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


def check_text(name: str, texts: Sequence[str]) -> None:
    """Each of `texts` must be valid Unicode (JSON's `"\\ud800"` is a lone surrogate: no tokenizer takes it): 400."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise HTTPException(
                400,
                f"{name}[{i}]: not valid Unicode text (a lone surrogate \\u{ord(text[err.start]):04x} at character "
                f"{err.start}); send UTF-8 text",
            ) from None


class Checks:
    """What a request is checked against on its own, before it joins a batch: the traces per request, the tokens
    per trace, and the model's context (the response with its EOS must fit, with a position left for the prompt,
    which is cut from the left when long). Run off the event loop: tokenising a large body takes a while."""

    def __init__(self, model: RewardModel, limits: Limits):
        self.tokenizer, self.limits = model.tokenizer, limits
        self.context = model.max_length or getattr(model.discriminator.config, "max_position_embeddings", None)
        # the most characters one token stands for (byte-level and SentencePiece pieces are no shorter as strings
        # than as text): a trace with more than max_tokens_per_trace × this many characters is over, untokenised
        self.chars_per_token = max(map(len, self.tokenizer.get_vocab()), default=1)

    def tokens(self, prompts: list[str], responses: list[str], partial: bool) -> int:
        """The tokens these traces add to a batch; an HTTPException 413 naming the limit a trace is over."""
        limit = self.limits.max_tokens_per_trace
        if len(prompts) > self.limits.max_traces:
            raise HTTPException(413, f"{len(prompts)} traces, over the limit of {self.limits.max_traces} (max_traces)")
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if len(p) + len(r) > limit * self.chars_per_token:
                raise HTTPException(413, f"trace {i} has {len(p) + len(r)} characters, more than {limit} tokens "
                                         f"can hold, over the limit of {limit} (max_tokens_per_trace)")  # fmt: skip
        if not prompts:
            return 0
        p_ids = self.tokenizer(render_prompts(self.tokenizer, prompts), add_special_tokens=False)["input_ids"]
        r_ids = self.tokenizer(list(responses), add_special_tokens=False)["input_ids"]
        eos = 0 if partial else 1
        total = 0
        for i, (p, r) in enumerate(zip(p_ids, r_ids)):
            n = len(p) + len(r) + eos
            if n > limit:
                raise HTTPException(413, f"trace {i} has {n} tokens, over the limit of {limit} (max_tokens_per_trace)")
            if self.context is not None and len(r) + eos >= self.context:
                raise HTTPException(
                    413,
                    f"trace {i}: its response has {len(r) + eos} tokens{' (EOS included)' if eos else ''}, over the "
                    f"model's context of {self.context} positions less one for the prompt; shorten the response",
                )
            total += min(n, self.context or n)
        return total


def split_queries(queries: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """The response of each OpenRLHF query: the text after its prompt (the query must start with it)."""
    if len(queries) != len(prompts):
        raise HTTPException(422, f"query has {len(queries)} items and prompts {len(prompts)}: they must match")
    bad = [i for i, (q, p) in enumerate(zip(queries, prompts)) if not q.startswith(p)]
    if bad:
        raise HTTPException(422, f"query[{bad[0]}] does not start with prompts[{bad[0]}]")
    return [q[len(p) :] for q, p in zip(queries, prompts)]


def build_app(
    model: RewardModel,
    *,
    aggregate: str = "mean",
    api_key: str | None = None,
    limits: Limits = Limits(),
    model_name: str = "",
    verify: Callable[[str, Any], bool | None] | None = None,
) -> FastAPI:
    """The FastAPI app serving `model` (see the module docstring); the scoring worker runs for the app's life.
    `verify(response, label)`: the task's answer check, for /get_reward's figures when a request carries labels."""
    batcher = Batcher(model, limits)

    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        batcher.stop()
        logger.info("reward server stopped after %d batches", batcher.batches)

    docs = {} if api_key is None else {"docs_url": None, "redoc_url": None, "openapi_url": None}  # no key: none
    app = FastAPI(title="rairl reward server", lifespan=lifespan, **docs)
    app.add_middleware(BodyLimit, limit=limits.max_request_bytes)
    app.state.batcher = batcher
    checks = Checks(model, limits)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming where and what, without FastAPI's echo of the input: it may be huge, hold NaN (not JSON) or
        a lone surrogate (not UTF-8), and then the answer itself would fail as a 500."""
        detail = [
            {
                "loc": [_printable(x) for x in e.get("loc", ())],
                "msg": _printable(e.get("msg", "")),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, 422)

    def authorised(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send Authorization: Bearer KEY)")

    async def scored(prompts: list[str], responses: list[str], partial: bool = False):
        tokens = await asyncio.to_thread(checks.tokens, prompts, responses, partial)
        try:
            return await batcher.score(prompts, responses, tokens, partial)
        except ValueError as err:  # input the checks let through but the model refuses (alone: see Batcher._score)
            raise HTTPException(422, f"cannot score this request: {err}") from None
        except Exception:  # noqa: BLE001 - logged by the worker
            raise HTTPException(500, "scoring failed; the server log has the details") from None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info", dependencies=[Depends(authorised)])
    async def info() -> dict[str, Any]:
        return {
            "model": model_name,
            "granularity": model.settings.granularity,
            "score_form": model.settings.score_form,
            "aggregation": aggregate,
            "limits": asdict(limits),
        }

    @app.post("/get_reward", dependencies=[Depends(authorised)])
    async def get_reward(body: RewardRequest) -> dict[str, Any]:
        check_text("query", body.query)
        check_text("prompts", body.prompts)
        responses = split_queries(body.query, body.prompts)
        parts, at, n = await scored(body.prompts, responses)
        rewards = parts["value"].traces[aggregate][at : at + n] if n else []
        learned = parts["learned"].traces[aggregate][at : at + n] if n else []
        logs: dict[str, Any] = {f"learned_reward_{aggregate}": rewards, f"learned_part_{aggregate}": learned}
        if verify is not None and body.labels is not None and len(body.labels) == n:
            logs.update(label_figures(rewards, learned, [verify(r, label) for r, label in zip(responses, body.labels)]))
        return {"rewards": rewards, "scores": rewards, "extra_logs": logs}

    @app.post("/score", dependencies=[Depends(authorised)])
    async def score(body: ScoreRequest) -> dict[str, Any]:
        if len(body.prompts) != len(body.responses):
            raise HTTPException(
                422, f"{len(body.prompts)} prompts for {len(body.responses)} responses: they must match"
            )
        check_text("prompts", body.prompts)
        check_text("responses", body.responses)
        parts, at, n = await scored(body.prompts, body.responses, body.partial)
        if n == 0:
            return {"results": []}
        scores, out = parts["value"], []
        for b in range(at, at + n):
            out.append(
                {
                    "tokens": [
                        {"start": s, "end": e, "reward": float(v)}
                        for (s, e), v in zip(scores.token_spans[b], scores.tokens[b].tolist())
                    ],
                    "steps": [
                        {"start": s, "end": e, "score": v} for (s, e), v in zip(scores.step_spans[b], scores.steps[b])
                    ],
                    "traces": {name: values[b] for name, values in scores.traces.items()},
                }
            )
        return {"results": out}

    return app
