"""`rlvr report`: one self-contained HTML file that renders in a real browser with its plots."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest

from rlvr.tracking.report import pick_samples, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _fake_run(run_dir):
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: demo\nseed: 0\n")
    (run_dir / "summary.json").write_text(json.dumps({"rl_accuracy": 0.25, "rl_steps": 3}))
    with (run_dir / "metrics.jsonl").open("w") as f:
        for step in (1, 2, 3):
            rec = {"stage": "rl", "step": step, "reward": 0.1 * step, "kl": 0.01 * step}
            rec |= {"entropy": 2.0 - 0.1 * step, "completions/mean_length": 10 + step}
            rec |= {"frac_reward_zero_std": 0.5, "loss": 0.1, "clip_ratio/region_mean": 0.0}
            f.write(json.dumps(rec) + "\n")
        f.write(json.dumps({"stage": "eval", "step": 3, "after": "rl", "heldout/pass@1": 0.25}))
    samples = [
        {
            "after": "rl-step",
            "step": 1,
            "prompt": "1+1",
            "completion": "<answer>2</answer>",
            "score": 1.0,
            "status": "correct",
            "detail": "ok",
        },
        {
            "after": "rl-step",
            "step": 1,
            "prompt": "2+2",
            "completion": "<script>alert(1)</script>",
            "score": 0.0,
            "status": "wrong",
            "detail": "answer 5",
        },
        {
            "after": "rl-step",
            "step": 2,
            "prompt": "code",
            "completion": "import os",
            "score": 0.0,
            "status": "blocked",
            "detail": "sandbox: network",
        },
    ]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    return run_dir


def test_picks_best_worst_flagged():
    long = "<think>work</think><answer>2</answer>"
    samples = [
        {"score": 1.0, "status": "correct", "completion": long},
        {"score": 0.0, "status": "wrong", "completion": long},
        {"score": 0.0, "status": "timeout", "completion": long},
        {"score": 1.0, "status": "correct", "completion": "2"},  # correct but suspiciously short
    ]
    picked = pick_samples(samples)
    assert [s["score"] for s in picked["best"]] == [1.0, 1.0]
    assert {s["status"] for s in picked["worst"]} == {"wrong", "timeout"}
    assert [s["status"] for s in picked["flagged"]] == ["timeout", "correct"]


def test_episodes_show_turn_by_turn_and_fixes_come_first(tmp_path):
    fixed = {
        "after": "rl", "variant": "multi_turn", "step": 9, "prompt": "f(1)=7", "score": 1.0,
        "status": "correct", "detail": "4/4",
        "turns": [
            {"role": "model", "text": "def f(x):return (7-1)*x+1"},
            {"role": "env", "text": "f(0)=3, got 1"},
            {"role": "model", "text": "def f(x):return (7-3)*x+3"},
        ],
    }  # fmt: skip
    blank = {**fixed, "variant": "blank_feedback"}  # a control: nothing was read
    first_try = {**fixed, "turns": fixed["turns"][:1]}
    picked = pick_samples([fixed, blank, first_try])
    assert picked["fixed after feedback"] == [fixed]
    run = tmp_path / "run"
    run.mkdir()
    (run / "samples.jsonl").write_text(json.dumps(fixed) + "\n")
    page = write_report(run).read_text()
    assert "<tr class='model'><th>model 1</th>" in page
    assert "<tr class='environment'><th>environment 1</th>" in page
    assert "f(0)=3, got 1" in page and "model 2" in page


def test_report_is_self_contained_and_escaped(tmp_path):
    path = write_report(_fake_run(tmp_path / "run"))
    page = path.read_text()
    assert "<script>" not in page  # completions are untrusted text
    assert "&lt;script&gt;" in page and "sandbox: network" in page and "rl_accuracy" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    assert "http://" not in page and "https://" not in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make system-deps)")
def test_report_renders_in_headless_chromium(tmp_path):
    path = write_report(_fake_run(tmp_path / "run"))
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # The images must decode in the browser: naturalWidth is 0 for a broken image.
    probe = tmp_path / "probe.html"
    probe.write_text(
        path.read_text().replace(
            "</body>",
            "<script>window.onload=()=>{document.title='imgs:'+[...document.images]"
            ".map(i=>i.naturalWidth).join(',')}</script></body>",
        )
    )
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count('src="data:image/png;base64,') == 3
    widths = re.search(r"<title>imgs:([\d,]*)</title>", dom)
    assert widths, dom[:500]
    assert all(int(w) > 100 for w in widths.group(1).split(","))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1000,1400", path.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few KB


def test_monitor_alerts_shadow_plot_and_flagged_beside_clean(tmp_path):
    run = _fake_run(tmp_path / "run")
    with (run / "metrics.jsonl").open("a") as f:
        for step in (4, 5):
            f.write("\n" + json.dumps({"stage": "rl", "step": step, "reward": 0.5,
                                       "shadow_reward": 0.1, "monitor/flag_rate": 0.4}))  # fmt: skip
    alert = {"detector": "reward_shadow_gap", "kind": "hacking", "step": 5, "value": 0.4,
             "baseline": 0.0, "message": "step 5: reward - shadow = 0.40", "action": "warn"}  # fmt: skip
    (run / "alerts.jsonl").write_text(json.dumps(alert) + "\n")
    flagged = {"after": "rl-step", "step": 5, "prompt": "1+1", "completion": "<answer>1|2</answer>",
               "score": 1.0, "status": "correct", "flags": ["hedged"]}  # fmt: skip
    clean = {**flagged, "completion": "<answer>2</answer>", "flags": []}
    with (run / "samples.jsonl").open("a") as f:
        f.write(json.dumps(flagged) + "\n" + json.dumps(clean) + "\n")
    page = write_report(run).read_text()
    assert "reward_shadow_gap" in page and "step 5: reward - shadow = 0.40" in page
    assert (run / "monitor.png").exists() and page.count('src="data:image/png;base64,') == 4
    picked = pick_samples(
        [json.loads(x) for x in (run / "samples.jsonl").read_text().split("\n") if x]
    )
    assert picked["flagged by the monitor"] == [flagged] and picked["clean, same steps"] == [clean]
    assert "flags: hedged" in page
