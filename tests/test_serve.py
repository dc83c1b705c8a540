"""`rairl serve` as a real server on a loopback port in a subprocess, and `rairl.remote` against it: auth, bad
payloads, limits, concurrent clients getting in-process scores, a bad request refused while good ones beside it are
answered, a large body refused as it streams while /health answers, no key in the log, graceful shutdown."""

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
import numpy as np
import pytest

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
            "300",  # over the model's context (128 positions): both limits can be met
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
        ({"prompts": ["a"], "responses": ["b" * 400]}, 413, "over the limit of 300 (max_tokens_per_trace)"),
        ({"prompts": ["a"], "responses": ["b" * 2000]}, 413, "more than 300 tokens can hold"),  # not even tokenised
        (
            {"prompts": ["a"], "responses": ["b" * 200]},
            413,
            "its response has 201 tokens (EOS included), over the model's context of 128 positions",
        ),
        ({"prompts": ["a" * 30000], "responses": ["b"]}, 413, "max_request_bytes"),
        (
            '{"prompts": ["a"], "responses": ["b\\ud800"]}',
            400,
            "responses[0]: not valid Unicode text (a lone surrogate",
        ),
        ('{"query": ["\\udc00"], "prompts": [""]}', 400, "query[0]: not valid Unicode"),
        ({"prompts": [[[[]]]], "responses": ["b"]}, 422, None),
        # FastAPI's own 422 would echo the input, and NaN or a lone surrogate cannot be written back: a 500
        ('{"prompts": [NaN], "responses": ["b"]}', 422, "Input should be a valid string"),
        ('{"prompts": "a\\udc00b", "responses": ["b"]}', 422, "Input should be a valid list"),
        ('{"prompts": ["a"], "responses": ["b"], "\\ud800": 1}', 422, None),
    ],
)
def test_bad_payloads_get_a_json_4xx(server, body, status, says):
    url, proc = server
    answer = post(url, "/get_reward" if "query" in str(body) else "/score", body)
    assert answer.status_code == status, answer.text
    if says:
        assert says in json.dumps(answer.json()["detail"])
    assert '"input":' not in answer.text  # the request is never echoed back
    assert proc.poll() is None  # the server lives on


def test_the_docs_need_the_key_so_are_off(server):
    url, _ = server
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(url + path).status_code == 404
        assert httpx.get(url + path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 404


def test_a_bad_request_is_refused_while_the_good_ones_beside_it_are_answered(server, disc_dir):
    """Requests are batched: an over-context trace checked only when its batch is scored would fail every request
    in that batch. Each is checked on its own first, so good requests sent with it get their scores."""
    url, _ = server
    local = RewardModel.from_pretrained(disc_dir).score(PROMPTS, RESPONSES).traces["mean"]
    good = {"prompts": PROMPTS, "responses": RESPONSES}
    bad = {"prompts": ["a"], "responses": ["b" * 200]}  # 201 tokens with EOS: over the 128-position context
    for _ in range(3):
        with ThreadPoolExecutor(7) as pool:
            answers = list(pool.map(lambda body: post(url, "/score", body), [good] * 3 + [bad] + [good] * 3))
        assert [a.status_code for a in answers] == [200] * 3 + [413] + [200] * 3
        for a in answers[:3] + answers[4:]:
            assert [r["traces"]["mean"] for r in a.json()["results"]] == pytest.approx(local, abs=1e-5)


def test_a_large_body_is_refused_as_it_streams_and_health_answers_meanwhile(server):
    url, _ = server
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def chunks():  # no Content-Length: the server counts the chunks as they come
        yield b'{"prompts": ["'
        for _ in range(1000):
            yield b"a" * 10_000

    start = time.perf_counter()
    answer = httpx.post(url + "/score", content=chunks(), headers=headers, timeout=30)
    assert answer.status_code == 413 and "max_request_bytes" in answer.json()["detail"]
    assert time.perf_counter() - start < 5

    def big():  # under max_request_bytes, but one trace far over max_tokens_per_trace
        return post(url, "/score", {"prompts": ["a"], "responses": ["b" * 19_000]})

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(big)
        start = time.perf_counter()
        assert httpx.get(url + "/health", timeout=5).status_code == 200
        assert time.perf_counter() - start < 2
        assert pending.result().status_code == 413


def test_get_reward_checks_queries_against_prompts(server):
    url, _ = server
    answer = post(url, "/get_reward", {"query": ["abc"], "prompts": ["xyz"], "labels": [None]})
    assert answer.status_code == 422 and "query[0] does not start with prompts[0]" in answer.json()["detail"]
    empty = post(url, "/get_reward", {"query": [], "prompts": []}).json()
    assert empty["rewards"] == []
    assert post(url, "/score", {"prompts": [], "responses": []}).json() == {"results": []}


def test_get_reward_logs_the_learned_part_and_with_labels_the_verdicts_and_aucs(server, disc_dir):
    url, _ = server
    queries = [p + r for p, r in zip(PROMPTS, RESPONSES)]
    body = post(url, "/get_reward", {"query": queries, "prompts": PROMPTS, "labels": ["3", "12", "3"]}).json()
    parts = RewardModel.from_pretrained(disc_dir).score_parts(PROMPTS, RESPONSES)
    logs = body["extra_logs"]
    assert body["rewards"] == pytest.approx(parts["value"].traces["mean"], abs=1e-5)
    assert logs["learned_part_mean"] == pytest.approx(parts["learned"].traces["mean"], abs=1e-5)
    assert logs["correct"] == [True, True, False]  # the task's answer check against each label
    for key, x in (("auc/reward", body["rewards"]), ("auc/learned", logs["learned_part_mean"])):
        expected = (float(x[0] > x[2]) + float(x[1] > x[2])) / 2  # two right traces against one wrong (no ties here)
        assert logs[key] == pytest.approx(expected)
    assert "correct" not in post(url, "/get_reward", {"query": queries, "prompts": PROMPTS}).json()["extra_logs"]


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
                np.testing.assert_allclose(
                    [t["reward"] for t in view["tokens"]], local.tokens[k + b], atol=1e-5, rtol=0
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


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(port=70000), r"--port must lie in \[1, 65535\], got 70000"),
        (dict(port=-1), r"--port must lie in \[1, 65535\], got -1"),
        (dict(max_traces=0), "--max_traces must be >= 1"),
        (dict(max_tokens_per_trace=1), "--max_tokens_per_trace must be >= 2"),
        (dict(max_wait_ms=float("nan")), "--max_wait_ms must be a finite number"),
        (dict(device="tpu9"), "--device 'tpu9': not a device rairl runs on"),
    ],
)
def test_bad_options_are_refused_at_start(disc_dir, changes, message):
    with pytest.raises(ValueError, match=message):
        Config(reward_model=str(disc_dir), **changes)


def test_a_failing_batch_is_scored_again_one_request_at_a_time():
    """Whatever the checks miss, a request that fails the model fails only itself: its batch is scored again one
    request at a time."""
    import asyncio

    from rairl.server import Batcher, Limits

    class Model:
        def score_parts(self, prompts, responses):
            if "boom" in responses:
                raise ValueError("boom")
            return {"value": Views(responses)}

    class Views:
        def __init__(self, responses):
            self.responses = responses

    async def main():
        batcher = Batcher(Model(), Limits(max_wait_ms=200))
        batcher.start()
        try:
            jobs = [batcher.score(["p"], [r], 1) for r in ("a", "boom", "b")]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            batcher.stop()

    a, boom, b = asyncio.run(main())
    assert isinstance(boom, ValueError)
    assert a[0]["value"].responses[a[1]] == "a" and b[0]["value"].responses[b[1]] == "b"


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
    log = proc.stdout.read()
    assert "reward server stopped after" in log
    assert '"api_key": "***"' in log and KEY not in log  # the config line masks the key


def test_a_prm_folder_is_served_and_answers_get_reward(tmp_path):
    """A `rairl prm` folder (a token-classification model and its step settings, no ℓ_t) is a reward model like any:
    `rairl serve` loads it and `/get_reward` gives the in-process trace scores."""
    from rairl.trainers.prm import PRMConfig, train

    data = tmp_path / "stepwise.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "completions": r.split("\n"), "labels": [True, r != RESPONSES[2]]})
                            + "\n" for p, r in zip(PROMPTS, RESPONSES)))  # fmt: skip
    out = tmp_path / "prm"
    size = dict(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=128)
    train(PRMConfig(train_file=str(data), output_dir=str(out), max_steps=2, per_device_train_batch_size=3, threads=1,
                    disable_tqdm=True, **size))  # fmt: skip
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAIRL_API_KEY": KEY}
    command = [sys.executable, "-m", "rairl.cli", "serve", "--reward_model", str(out), "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            assert proc.poll() is None, proc.stdout.read()
        info = httpx.get(url + "/info", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert info["score_form"] == "logit"
        queries = [p + r for p, r in zip(PROMPTS, RESPONSES)]
        body = post(url, "/get_reward", {"query": queries, "prompts": PROMPTS}).json()
        local = RewardModel.from_pretrained(out).score(PROMPTS, RESPONSES)
        assert body["rewards"] == pytest.approx(local.traces["mean"], abs=1e-5)
    finally:
        proc.kill()
        proc.wait()
