"""PNG plots of a run, by stage: reward and held-out accuracy against step, and the diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlvr.tracking.metrics import read_metrics  # noqa: E402

STAGE_COLOURS = {"sft": "tab:blue", "rl": "tab:orange", "final_sft": "tab:green", "eval": "tab:red"}


def _series(records: list[dict[str, Any]], key: str, stage: str | None = None):
    pts = [
        (r["step"], r[key])
        for r in records
        if r.get(key) is not None and (stage is None or r["stage"] == stage)
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _heldout(records: list[dict[str, Any]], key: str = "heldout/pass@1"):
    """Held-out points on one axis: each stage's steps continue after the previous stage's."""
    pts = []
    stage_end: dict[str, int] = {}
    for r in records:
        if "step" in r and r["stage"] in ("sft", "rl", "final_sft"):
            stage_end[r["stage"]] = max(stage_end.get(r["stage"], 0), r["step"])
    order = ["sft", "rl", "final_sft"]
    starts, acc = {}, 0
    for s in order:
        starts[s] = acc
        acc += stage_end.get(s, 0)
    for r in records:
        if r.get(key) is not None:
            stage = r.get("after", r["stage"])
            pts.append((starts.get(stage, 0) + r["step"], r[key], stage))
    return pts


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``reward.png``, ``heldout.png`` and ``diagnostics.png``; returns their paths."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    out: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4))
    x, y = _series(records, "reward", "rl")
    if x:
        ax.plot(x, y, color=STAGE_COLOURS["rl"], alpha=0.35, label="reward (per step)")
        w = max(1, len(y) // 20)
        smooth = [
            sum(y[max(0, i - w + 1) : i + 1]) / len(y[max(0, i - w + 1) : i + 1])
            for i in range(len(y))
        ]
        ax.plot(x, smooth, color=STAGE_COLOURS["rl"], label=f"reward (mean of {w})")
    ax.set(xlabel="RL step", ylabel="mean reward", title="RL training reward", ylim=(-0.02, 1.02))
    if x:
        ax.legend(loc="lower right")
    fig.tight_layout()
    out.append(run_dir / "reward.png")
    fig.savefig(out[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("heldout/pass@1", "-o"), ("heldout/pass@k", "--s")):
        pts = _heldout(records, key)
        for stage in ("sft", "rl", "final_sft"):
            sp = [(s, v) for s, v, st in pts if st == stage]
            if sp:
                ax.plot(
                    [p[0] for p in sp],
                    [p[1] for p in sp],
                    style,
                    color=STAGE_COLOURS[stage],
                    label=f"{key.split('/')[1]} after {stage}",
                )
    ax.set(
        xlabel="step (stages laid end to end)",
        ylabel="held-out accuracy",
        title="Held-out accuracy",
        ylim=(-0.02, 1.02),
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.append(run_dir / "heldout.png")
    fig.savefig(out[-1], dpi=100)
    plt.close(fig)

    keys = [
        "kl",
        "entropy",
        "completions/mean_length",
        "frac_reward_zero_std",
        "clip_ratio/region_mean",
        "loss",
        # the rollout engine against the learner (rollout.engines): what the correction sees
        "rollout/mismatch_abs_logp",
        "rollout/mismatch_kl",
        "rollout/mismatch_max_ratio",
    ]
    fig, axes = plt.subplots(3, 3, figsize=(11, 9))
    for ax, key in zip(axes.flat, keys, strict=True):
        x, y = _series(records, key, "rl")
        ax.plot(x, y, color=STAGE_COLOURS["rl"])
        ax.set(title=key, xlabel="RL step")
    fig.tight_layout()
    out.append(run_dir / "diagnostics.png")
    fig.savefig(out[-1], dpi=100)
    plt.close(fig)
    monitor = _monitor_plot(run_dir, records)
    return out + ([monitor] if monitor else [])


def _monitor_plot(run_dir: Path, records: list[dict[str, Any]]) -> Path | None:
    """Reward against the shadow verifier's score, and the share of flagged samples, with the
    monitor's alerts marked: the picture of a run learning its verifier instead of its task."""
    reward = _series(records, "reward", "rl")
    shadow = _series(records, "shadow_reward", "rl")
    flags = _series(records, "monitor/flag_rate", "rl")
    if not shadow[0] and not flags[0]:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*reward, color=STAGE_COLOURS["rl"], label="reward")
    if shadow[0]:
        ax.plot(*shadow, color="tab:purple", label="shadow verifier (not rewarded)")
    if flags[0]:
        ax.plot(*flags, color="tab:gray", linestyle="--", label="flagged share")
    alerts = run_dir / "alerts.jsonl"
    if alerts.exists():
        import json

        for line in alerts.read_text().splitlines():
            a = json.loads(line)
            colour = "tab:red" if a.get("kind") == "hacking" else "tab:olive"
            ax.axvline(a["step"], color=colour, alpha=0.6, linewidth=1)
    ax.set(xlabel="RL step", title="Monitor: reward, shadow score, flags (lines: alerts)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = run_dir / "monitor.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
