"""`rairl serve`: the learned reward as an HTTP server (`rairl.server`): OpenRLHF's `/get_reward`, rairl's
`/score` with token and step rewards, `/health`, `/info`.

    rairl serve --reward_model runs/airl/discriminator                        # 127.0.0.1:8000, no key
    RAIRL_API_KEY=secret rairl serve --reward_model DIR --host 0.0.0.0         # any other bind needs a key

Binds 127.0.0.1 unless told otherwise; a non-loopback bind refuses to start without an API key (`--api_key` or
$RAIRL_API_KEY), which is never logged (`rairl.config.config_dict` masks it). The reward model folder loads with
safetensors only. Stops cleanly on SIGINT / SIGTERM.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rairl.inference.scoring import RewardArgs, load_reward_model, resolve_device
from rairl.options import check_number
from rairl.scores import AGGREGATIONS
from rairl.server import Limits, build_app
from rairl.tasks import Example, Task, TaskArgs, get_task

logger = logging.getLogger(__name__)


@dataclass
class Config(TaskArgs):
    reward_model: str = field(default="", metadata={"help": "saved discriminator folder (holds its tokenizer)"})
    aggregate: str = field(
        default="mean", metadata={"help": "trace score /get_reward answers: " + ", ".join(AGGREGATIONS)}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind (non-loopback needs an API key)"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    api_key: str | None = field(
        default=None, metadata={"help": "bearer key clients must send (default $RAIRL_API_KEY)"}
    )
    batch_size: int = field(default=32, metadata={"help": "traces per forward pass inside a batch"})
    device: str = field(default="auto", metadata={"help": "'auto' (cuda when there is one), 'cpu', 'cuda', ..."})
    max_request_bytes: int = field(default=Limits.max_request_bytes, metadata={"help": "largest request body"})
    max_traces: int = field(default=Limits.max_traces, metadata={"help": "most traces in one request"})
    max_tokens_per_trace: int = field(default=Limits.max_tokens_per_trace, metadata={"help": "longest trace"})
    batch_tokens: int = field(default=Limits.batch_tokens, metadata={"help": "dynamic batching: tokens per batch"})
    max_wait_ms: float = field(default=Limits.max_wait_ms, metadata={"help": "dynamic batching: longest wait"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.reward_model:
            raise ValueError("--reward_model is required: a saved discriminator folder")
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be one of {sorted(AGGREGATIONS)}, got {self.aggregate!r}")
        check_number("--port", self.port, integer=True, low=1, high=65535, rule="must lie in [1, 65535]")
        check_number("--batch_size", self.batch_size, integer=True, low=1, rule="must be >= 1")
        resolve_device(self.device)
        self.limits()
        self.api_key = self.api_key or os.environ.get("RAIRL_API_KEY") or None
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"--host {self.host} is reachable from other machines: set an API key (--api_key or "
                "$RAIRL_API_KEY), or bind 127.0.0.1"
            )

    def limits(self) -> Limits:
        """The server's limits (checked when made)."""
        return Limits(
            self.max_request_bytes, self.max_traces, self.max_tokens_per_trace, self.batch_tokens, self.max_wait_ms
        )


def verifier(task: Task) -> Callable[[str, Any], bool | None]:
    """`verify(response, label)`: the task's answer check against an OpenRLHF label (the gold answer); None where the
    task needs more than the answer to check (a puzzle's numbers)."""

    def verify(response: str, label: Any) -> bool | None:
        if label is None:
            return None
        try:
            return bool(task.is_correct(task.extract_answer(response), Example("", "", str(label), "")))
        except (KeyError, TypeError, ValueError):
            return None

    return verify


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(config: Config) -> dict[str, Any]:
    import uvicorn

    args = RewardArgs(reward_model=config.reward_model, batch_size=config.batch_size, device=config.device)
    task = get_task(config)
    model = load_reward_model(args, task)
    app = build_app(
        model,
        aggregate=config.aggregate,
        api_key=config.api_key,
        limits=config.limits(),
        model_name=config.reward_model,
        verify=verifier(task),
    )
    logger.info(
        "serving %s on http://%s:%d (%s)",
        config.reward_model,
        config.host,
        config.port,
        "API key required" if config.api_key else "no API key",
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    return {"host": config.host, "port": config.port}
