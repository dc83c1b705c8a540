"""Scaling: R-AIRL step time and its parts as the completion length L goes 64 → 512 (at G = 8) and the group size
G goes 4 → 16 (at L = 64), with a plot.

    .venv/bin/python benchmarks/scaling.py                             # R-AIRL only (discriminator as wide)
    .venv/bin/python benchmarks/scaling.py --variants grpo,airl_disc_same   # stock GRPO beside it
    .venv/bin/python benchmarks/scaling.py --smoke

Each point is a `benchmarks/step_time.py` measurement (same policy, prompts, exactly L tokens per sample, parts
timed the same way; median of `--steps` steps after `--warmup`), with `--prompts_per_step` prompts, so a step
holds prompts × G samples. For every part the growth exponent k of time ∝ x^k is fitted (least squares on
log-log) over each sweep; the part with the largest k that is at least 5% of the step at the largest x is
named the fastest-growing. Writes `benchmarks/results/scaling.json` and the plot `benchmarks/scaling.png`
(`--smoke`: both under `benchmarks/results/smoke/`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import common
import step_time

logger = logging.getLogger(__name__)

MIN_SHARE = 0.05  # a part below this share of the step at the largest x is not named fastest-growing
SMOKE_SWEEPS = {"completion_length": (4, 8), "num_generations": (2, 4)}
SWEEPS = {"completion_length": (64, 128, 256, 512), "num_generations": (4, 8, 16)}


def exponent(xs: list[float], ys: list[float]) -> float:
    """k of the least-squares fit log y = k log x + c."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    return round(sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / var, 3) if var else float("nan")


def growth(points: list[dict[str, Any]], axis: str, variant: str) -> dict[str, Any]:
    """Growth exponent of the step and of each part of `variant` along `axis`, and the fastest-growing part."""
    xs = [pt[axis] for pt in points]
    res = [pt["results"][variant] for pt in points]
    parts = list(res[0]["parts_s"])
    out = {
        "x": xs,
        "step_exponent": exponent(xs, [r["step_s"]["median"] for r in res]),
        "part_exponents": {},
        "share_at_largest": {},
    }
    for part in parts:
        out["part_exponents"][part] = exponent(xs, [r["parts_s"][part]["median"] for r in res])
        out["share_at_largest"][part] = round(res[-1]["parts_s"][part]["median"] / res[-1]["step_s"]["median"], 3)
    big = [p for p in parts if out["share_at_largest"][p] >= MIN_SHARE]
    out["fastest_growing"] = max(big, key=lambda p: out["part_exponents"][p]) if big else None
    return out


def plot(sweeps: dict[str, list[dict[str, Any]]], variant: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(5.5 * len(sweeps), 4.2), squeeze=False)
    for ax, (axis, points) in zip(axes[0], sweeps.items()):
        xs = [pt[axis] for pt in points]
        res = [pt["results"][variant] for pt in points]
        ax.plot(xs, [r["step_s"]["median"] for r in res], "k-o", lw=2, label="step")
        for part in res[0]["parts_s"]:
            ax.plot(xs, [max(r["parts_s"][part]["median"], 1e-4) for r in res], "-o", ms=3, label=part)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel({"completion_length": "completion length L (tokens)", "num_generations": "group size G"}[axis])
        ax.set_ylabel("seconds per step (median)")
        fixed = "G" if axis == "completion_length" else "L"
        value = points[0]["num_generations" if fixed == "G" else "completion_length"]
        ax.set_title(f"{variant}: {fixed} = {value}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sweeps(base: step_time.Setup, sweeps: dict[str, tuple[int, ...]], names: list[str]) -> dict[str, list]:
    """Measure every point of both sweeps; a point both sweeps share is measured once."""
    measured: dict[tuple[int, int], dict[str, Any]] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    for axis, values in sweeps.items():
        out[axis] = []
        for value in values:
            setup = replace(base, **{axis: value})
            key = (setup.completion_length, setup.num_generations)
            if key not in measured:
                logger.info("measuring L=%d G=%d", *key)
                measured[key] = step_time.run_all(setup, names)
            out[axis].append({"completion_length": key[0], "num_generations": key[1], "results": measured[key]})
    return out


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    step_time.add_setup_args(p)
    p.add_argument("--lengths", default=",".join(map(str, SWEEPS["completion_length"])), help="L values, at G=--group")
    p.add_argument("--groups", default=",".join(map(str, SWEEPS["num_generations"])), help="G values, at L=--length")
    p.add_argument("--group", type=int, default=8, help="G of the length sweep")
    p.add_argument("--length", type=int, default=64, help="L of the group sweep")
    p.add_argument("--variants", default="airl_disc_same", help="comma-separated step_time variants")
    p.add_argument("--plot", default=None, help="PNG path (default benchmarks/scaling.png; --smoke: beside the JSON)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    names = [v for v in args.variants.split(",") if v]
    if args.smoke:
        sweeps = SMOKE_SWEEPS
        base = replace(
            step_time.setup_from(args),
            completion_length=sweeps["completion_length"][0],
            num_generations=sweeps["num_generations"][0],
        )
    else:
        sweeps = {
            "completion_length": tuple(int(x) for x in args.lengths.split(",")),
            "num_generations": tuple(int(x) for x in args.groups.split(",")),
        }
        base = replace(step_time.setup_from(args), completion_length=args.length, num_generations=args.group)
    points = run_sweeps(base, sweeps, names)
    variant = next((n for n in names if n != "grpo"), names[0])
    growths = {axis: {name: growth(pts, axis, name) for name in names} for axis, pts in points.items()}
    plot_path = (
        Path(args.plot)
        if args.plot
        else (common.out_dir(args) / "scaling.png" if args.smoke else common.ROOT / "benchmarks" / "scaling.png")
    )
    plot(points, variant, plot_path)
    payload = {"setup": asdict(base), "sweeps": points, "growth": growths, "plot": str(plot_path)}
    path = common.save("scaling", payload, args)
    for axis, pts in points.items():
        rows = []
        for pt in pts:
            r = pt["results"][variant]
            rows.append(
                [pt[axis], common.fmt(r["step_s"]), *[f"{r['parts_s'][q]['median']:.3f}" for q in r["parts_s"]]]
            )
        print(f"\n{variant} vs {axis}")
        print(common.table(rows, [axis, "step median [min-max]", *pts[0]["results"][variant]["parts_s"]]))
        g = growths[axis][variant]
        fastest = g["fastest_growing"]
        exp_text = "" if fastest is None else f" (time ∝ x^{g['part_exponents'][fastest]})"
        print(f"step ∝ x^{g['step_exponent']}; fastest-growing part: {fastest}{exp_text}")
    print(f"saved {path} and {plot_path}")


if __name__ == "__main__":
    main()
