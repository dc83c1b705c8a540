"""A client of `rairl serve`: the learned reward on another process or machine, as a reward function for TRL.

    from rairl.remote import RemoteReward
    reward = RemoteReward("http://127.0.0.1:8000", api_key=os.environ.get("RAIRL_API_KEY"))
    trainer = trl.GRPOTrainer(..., reward_funcs=[reward])          # (prompts, completions) -> list[float]; text or chat
    views = reward.score(prompts, responses)                        # token, step and trace scores
    views = await reward.ascore(prompts, responses)                 # the same, without blocking an event loop

Requests time out after `timeout` seconds; connection errors, timeouts and 5xx / 429 answers are retried
`retries` times with exponential back-off; any other 4xx raises at once with the server's message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from rairl.chat import plain_text

RETRY_STATUS = {429, 500, 502, 503, 504}


class RemoteError(RuntimeError):
    """The server refused a request (4xx) or kept failing after every retry."""


class RemoteReward:
    def __init__(
        self, url: str, *, api_key: str | None = None, timeout: float = 60.0, retries: int = 3, backoff: float = 0.5
    ):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.__name__ = "remote_learned_reward"  # TRL names a reward function's log columns by it

    # ------------------------------------------------------------------ TRL reward function
    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float]:
        prompts, completions = [plain_text(p) for p in prompts], [plain_text(c) for c in completions]
        body = {"query": [p + c for p, c in zip(prompts, completions)], "prompts": list(prompts)}
        return self._post("/get_reward", body)["rewards"]

    # ------------------------------------------------------------------ all three views
    def score(self, prompts: list[str], responses: list[str], partial: bool = False) -> list[dict[str, Any]]:
        """Token, step and trace views of each trace (`partial`: unfinished traces, scored without EOS)."""
        body = {"prompts": list(prompts), "responses": list(responses), "partial": partial}
        return self._post("/score", body)["results"]

    async def ascore(self, prompts: list[str], responses: list[str], partial: bool = False) -> list[dict[str, Any]]:
        body = {"prompts": list(prompts), "responses": list(responses), "partial": partial}
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:
            for attempt in range(self.retries + 1):
                try:
                    answer = await client.post(self.url + "/score", json=body)
                except (httpx.TransportError, httpx.TimeoutException) as err:
                    if attempt == self.retries:
                        raise RemoteError(f"{self.url}/score: {err!r} after {attempt + 1} attempts") from err
                else:
                    if not self._retry(answer, attempt):
                        return self._result(answer)["results"]
                await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def info(self) -> dict[str, Any]:
        return self._result(httpx.get(self.url + "/info", headers=self.headers, timeout=self.timeout))

    # ------------------------------------------------------------------ plumbing
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
            for attempt in range(self.retries + 1):
                try:
                    answer = client.post(self.url + path, json=body)
                except (httpx.TransportError, httpx.TimeoutException) as err:
                    if attempt == self.retries:
                        raise RemoteError(f"{self.url}{path}: {err!r} after {attempt + 1} attempts") from err
                else:
                    if not self._retry(answer, attempt):
                        return self._result(answer)
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _retry(self, answer: httpx.Response, attempt: int) -> bool:
        return answer.status_code in RETRY_STATUS and attempt < self.retries

    @staticmethod
    def _result(answer: httpx.Response) -> dict[str, Any]:
        if answer.status_code != 200:
            try:
                detail = answer.json().get("detail")
            except ValueError:
                detail = answer.text[:500]
            raise RemoteError(f"{answer.request.url}: HTTP {answer.status_code}: {detail}")
        return answer.json()
