"""``rlvr report RUN_DIR``: one self-contained HTML page per run, to read or to send.

Everything is inside ``report.html``: the config, the summary, the plots (PNG, base64 ``data:``
URIs) and sample completions with their verdicts. It reads only the run directory
(``config.yaml``, ``summary.json``, ``metrics.jsonl``, ``samples.jsonl``, ``eval*.json``), so it
works on a finished, interrupted or copied run, and needs no network to display.

Samples are picked to be looked at: the best and the worst by score, and the flagged ones — a
verdict of ``timeout``, ``error`` or ``blocked`` (a sandbox escape attempt), or a correct score
on a completion that is suspiciously short, the two places reward hacking shows first. A
multi-turn episode is shown whole, turn by turn, the model's turns and the environment's replies
in different colours; with an environment, a section shows episodes where the model fixed its
code after reading the feedback.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from rlvr.tracking.metrics import read_metrics
from rlvr.tracking.plots import plot_run

FLAG_STATUSES = {"timeout", "error", "blocked"}
SHOWN = 6  # samples per section

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-word;
margin:0}img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.correct{color:#1a7f37}.wrong,.no_answer{color:#b35900}.error,.timeout,.blocked{color:#cf222e}
details{margin:.5em 0}
tr.model pre{background:#eef6ff}tr.environment pre{background:#fff8e6}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


def _table(rows: dict[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{_esc(k)}</th><td class='num'>{_fmt(v)}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_esc(path.stem)}" src="data:image/png;base64,{data}">'


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
    return rows


def pick_samples(samples: list[dict[str, Any]], n: int = SHOWN) -> dict[str, list[dict]]:
    """Best, worst and flagged completions (each list at most ``n``), and for multi-turn runs the
    latest episodes solved on a later attempt (the policy read the feedback and fixed its code)."""
    by_score = sorted(samples, key=lambda s: s.get("score", 0.0))
    flagged = [s for s in samples if s.get("status") in FLAG_STATUSES]
    short_correct = [
        s for s in samples if s.get("status") == "correct" and len(s.get("completion", "")) < 8
    ]
    best = [s for s in reversed(by_score) if s.get("score", 0.0) > 0][:n]
    worst = [s for s in by_score if s not in best][:n]
    picked = {"best": best, "worst": worst, "flagged": (flagged + short_correct)[:n]}
    scanned = [s for s in samples if "flags" in s]
    if scanned:  # the monitor's flags: flagged samples beside clean ones of the same steps
        by_monitor = [s for s in scanned if s["flags"]][-n:]
        steps = {s.get("step") for s in by_monitor}
        clean = [s for s in scanned if not s["flags"] and s.get("step") in steps][-n:]
        picked["flagged by the monitor"] = by_monitor
        picked["clean, same steps"] = clean
    if any(s.get("turns") for s in samples):  # episodes: the latest ones fixed after feedback
        fixed = [
            s
            for s in samples
            if s.get("status") == "correct"
            and s.get("variant") != "blank_feedback"  # the control: no feedback to read
            and sum(t.get("role") == "model" for t in s.get("turns") or []) >= 2
        ]
        picked = {"fixed after feedback": fixed[-n:][::-1], **picked}
    return picked


def _episode(turns: list[dict[str, Any]]) -> str:
    """A multi-turn episode turn by turn: the model's turns and the environment's replies told
    apart by label and colour."""
    rows = []
    for i, turn in enumerate(turns):
        who = "model" if turn.get("role") == "model" else "environment"
        rows.append(
            f"<tr class='{who}'><th>{_esc(who)} {i // 2 + 1}</th>"
            f"<td colspan='5'><pre>{_esc(turn.get('text', ''))}</pre></td></tr>"
        )
    return "".join(rows)


def _sample_block(s: dict[str, Any]) -> str:
    status = str(s.get("status", ""))
    where = f"{s.get('after', '?')} step {s.get('step', '?')}"
    if s.get("flags"):
        where += f" — flags: {', '.join(s['flags'])}"
    if s.get("variant"):
        where += f" ({s['variant']})"
    if s.get("turns"):
        body = _episode(s["turns"])
    else:
        body = (
            "<tr><th>completion</th><td colspan='5'><pre>"
            + _esc(s.get("completion", ""))
            + "</pre></td></tr>"
        )
    return (
        "<table><tr><th>where</th><td>"
        + _esc(where)
        + "</td><th>score</th><td class='num'>"
        + _fmt(s.get("score"))
        + f"</td><th>status</th><td class='{_esc(status)}'>"
        + _esc(status)
        + "</td></tr>"
        + "<tr><th>detail</th><td colspan='5'>"
        + _esc(s.get("detail", ""))
        + "</td></tr>"
        + "<tr><th>prompt</th><td colspan='5'><pre>"
        + _esc(s.get("prompt", ""))
        + "</pre></td></tr>"
        + body
        + "</table>"
    )


def render_report(run_dir: str | Path) -> str:
    """The report of ``run_dir`` as an HTML string (writes the plots' PNGs into the run dir)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    parts = [f"<h1>rlvr run: {_esc(run_dir.name)}</h1>", f"<p>{_esc(run_dir.resolve())}</p>"]

    summary_path = run_dir / "summary.json"
    parts.append("<h2>Summary</h2>")
    if summary_path.exists():
        parts.append(_table(json.loads(summary_path.read_text())))
    else:
        parts.append("<p>no summary.json (the run has not finished a stage)</p>")
    for path in sorted(run_dir.glob("eval*.json")):
        result = json.loads(path.read_text())
        parts.append(f"<h3>{_esc(path.name)}</h3>")
        parts.append(_table({k: v for k, v in result.items() if k != "samples"}))

    alerts = _read_jsonl(run_dir / "alerts.jsonl")
    parts.append("<h2>Monitor alerts</h2>")
    if alerts:
        head = "<tr><th>step</th><th>kind</th><th>detector</th><th>action</th><th>what</th></tr>"
        rows = "".join(
            f"<tr><td class='num'>{_esc(a.get('step'))}</td><td>{_esc(a.get('kind'))}</td>"
            f"<td>{_esc(a.get('detector'))}</td><td>{_esc(a.get('action', 'warn'))}</td>"
            f"<td>{_esc(a.get('message'))}</td></tr>"
            for a in alerts
        )
        parts.append(f"<table>{head}{rows}</table>")
    else:
        parts.append("<p>none</p>")

    parts.append("<h2>Plots</h2>")
    if read_metrics(run_dir):
        for png in plot_run(run_dir):
            parts.append(_image(png))
    else:
        parts.append("<p>no metrics.jsonl yet</p>")

    samples = _read_jsonl(run_dir / "samples.jsonl")
    for path in sorted(run_dir.glob("eval*.json")):
        samples += [
            {"after": path.stem, "step": "-", **s}
            for s in json.loads(path.read_text()).get("samples", [])
        ]
    parts.append("<h2>Sample completions</h2>")
    if not samples:
        parts.append("<p>no samples.jsonl</p>")
    for section, picked in pick_samples(samples).items():
        parts.append(f"<h3>{section} ({len(picked)})</h3>")
        parts += [_sample_block(s) for s in picked] or ["<p>none</p>"]

    config_path = run_dir / "config.yaml"
    if config_path.exists():
        parts.append("<h2>Config</h2>")
        parts.append(
            f"<details open><summary>config.yaml</summary><pre>{_esc(config_path.read_text())}"
            "</pre></details>"
        )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>rlvr report: {_esc(run_dir.name)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` and return its path."""
    out = Path(run_dir) / "report.html"
    out.write_text(render_report(run_dir), encoding="utf-8")
    return out
