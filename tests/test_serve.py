"""`rairl serve` as a real server on a loopback port in a subprocess, and `rairl.remote` against it: auth, bad
payloads, limits, concurrent clients getting in-process scores, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from rairl.commands.serve import Config
from rairl.remote import RemoteError, RemoteReward
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings

KEY = "test-key-123"
PROMPTS = ["Q: 1+2?\n", "Q: 3*4?\n", "Q: 1+2?\n"]
RESPONSES = ["1+2=3\n#### 3", "3*4=12\n#### 12", "1+2=4\n#### 4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def disc_dir(tmp_path_factory, tiny_disc):
    path = tmp_path_factory.mktemp("disc")
    _, tokenizer, disc = tiny_disc(128, head_seed=0, likelihood_from="reference", head_init="running_min")
    RewardModel(disc, tokenizer, RewardSettings(score_form="f")).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def server(disc_dir):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAIRL_API_KEY": KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rairl.cli",
            "serve",
            "--reward_model",
            str(disc_dir),
            "--port",
            str(port),
            "--max_traces",
            "8",
            "--max_tokens_per_trace",
            "100",
            "--max_request_bytes",
            "20000",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read())
    else:
        proc.kill()
        raise RuntimeError("server did not start")
    yield url, proc
    if proc.poll() is None:
        proc.kill()


def post(url: str, path: str, body, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url + path, content=content, headers={**headers, "Content-Type": "application/json"}, timeout=30)


def test_auth_is_required_and_checked(server):
    url, _ = server
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert httpx.get(url + "/info").status_code == 401
    assert httpx.get(url + "/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    info = httpx.get(url + "/info", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert info["score_form"] == "f" and info["limits"]["max_traces"] == 8
    assert post(url, "/score", {"prompts": [], "responses": []}, key=None).status_code == 401


@pytest.mark.parametrize(
    "body, status, says",
    [
        (b"{not json", 422, None),
        ({"prompts": "a", "responses": "b"}, 422, None),  # wrong types
        ({"prompts": [1], "responses": ["b"]}, 422, None),  # a number is not text
        ({"prompts": ["a"], "responses": ["b"], "extra": 1}, 422, None),  # unknown field
        ({"prompts": ["a", "b"], "responses": ["b"]}, 422, "must match"),
        ({"prompts": ["a"] * 9, "responses": ["b"] * 9}, 413, "max_traces"),
        ({"prompts": ["a"], "responses": ["b" * 200]}, 413, "max_tokens_per_trace"),
        ({"prompts": ["a" * 30000], "responses": ["b"]}, 413, "max_request_bytes"),
    ],
)
def test_bad_payloads_get_a_json_4xx(server, body, status, says):
    url, proc = server
    answer = post(url, "/score", body)
    assert answer.status_code == status, answer.text
    if says:
        assert says in json.dumps(answer.json()["detail"])
    assert proc.poll() is None  # the server lives on


def test_get_reward_checks_queries_against_prompts(server):
    url, _ = server
    answer = post(url, "/get_reward", {"query": ["abc"], "prompts": ["xyz"], "labels": [None]})
    assert answer.status_code == 422 and "query[0] does not start with prompts[0]" in answer.json()["detail"]
    empty = post(url, "/get_reward", {"query": [], "prompts": []}).json()
    assert empty["rewards"] == []


def test_concurrent_clients_get_the_in_process_scores(server, disc_dir):
    url, _ = server
    rm = RewardModel.from_pretrained(disc_dir)
    local = rm.score(PROMPTS, RESPONSES)
    client = RemoteReward(url, api_key=KEY)

    def one(i: int):
        k = i % 3
        return client.score(PROMPTS[k:], RESPONSES[k:]), client(PROMPTS[k:], RESPONSES[k:]), k

    with ThreadPoolExecutor(8) as pool:
        for views, rewards, k in pool.map(one, range(16)):
            for b, view in enumerate(views):
                torch.testing.assert_close(
                    torch.tensor([t["reward"] for t in view["tokens"]]), local.tokens[k + b], atol=1e-5, rtol=0
                )
                assert view["steps"][0]["score"] == pytest.approx(local.steps[k + b][0], abs=1e-5)
            assert rewards == pytest.approx(local.traces["mean"][k:], abs=1e-5)
    with pytest.raises(RemoteError, match="HTTP 401"):
        RemoteReward(url, api_key="wrong", retries=0).score(PROMPTS, RESPONSES)


def test_partial_traces_are_scored_without_eos(server, disc_dir):
    """An outside search loop's beams: `"partial": true` scores unfinished traces as the search does (no EOS)."""
    url, _ = server
    rm = RewardModel.from_pretrained(disc_dir)
    beams = ["1+2=3\n", "3*4=12\n"]
    for partial in (True, False):
        body = {"prompts": PROMPTS[:2], "responses": beams, "partial": partial}
        views = post(url, "/score", body).json()["results"]
        local = rm.score(PROMPTS[:2], beams, partial=partial)
        for b, view in enumerate(views):
            assert len(view["tokens"]) == len(local.tokens[b]) == len(beams[b]) + (0 if partial else 1)
            assert [st["score"] for st in view["steps"]] == pytest.approx(local.steps[b], abs=1e-5)
    assert post(url, "/score", {**body, "partial": "yes"}).status_code == 422
    remote = RemoteReward(url, api_key=KEY).score(PROMPTS[:2], beams, partial=True)
    assert [len(v["tokens"]) for v in remote] == [len(b) for b in beams]


def test_async_client_and_retries(server, disc_dir):
    import asyncio

    url, _ = server
    local = RewardModel.from_pretrained(disc_dir).score(PROMPTS, RESPONSES)
    views = asyncio.run(RemoteReward(url, api_key=KEY).ascore(PROMPTS, RESPONSES))
    assert [v["traces"]["mean"] for v in views] == pytest.approx(local.traces["mean"], abs=1e-5)
    start = time.perf_counter()
    with pytest.raises(RemoteError, match="after 3 attempts"):  # nothing listens there: two retries, then give up
        RemoteReward(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.05, timeout=2).score(["a"], ["b"])
    assert time.perf_counter() - start < 10


def test_a_non_loopback_bind_needs_a_key(monkeypatch, disc_dir):
    monkeypatch.delenv("RAIRL_API_KEY", raising=False)
    with pytest.raises(ValueError, match="reachable from other machines: set an API key"):
        Config(reward_model=str(disc_dir), host="0.0.0.0")
    assert Config(reward_model=str(disc_dir), host="0.0.0.0", api_key="k").api_key == "k"


def test_graceful_shutdown(server):
    url, proc = server
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down (requests finished, lifespan closed), then re-raises the signal as its exit status
    assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "reward server stopped after" in proc.stdout.read()
