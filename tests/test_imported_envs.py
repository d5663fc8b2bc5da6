"""Environments from verifiers 0.4 and OpenEnv, in (``--env vf:ID``, ``--env openenv:...``) and
out (``rlvr serve-env``, the ``rlvr_vf`` taskset): rewards equal the environment's own
evaluation, tokens trained equal tokens sampled, failures are counted and never trained on.

The tasksets are written here (a single-turn one with two ``@reward`` methods, a multi-turn one
whose ``Env`` gives feedback between attempts); the OpenEnv server is ``tests/fixtures/
sum_openenv``, written with openenv-core's server classes, started once for the session.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

INSTALL = 'needs verifiers and openenv-core: pip install "rlvr[envs]"'
vf = pytest.importorskip("verifiers.v1", reason=INSTALL)
pytest.importorskip("openenv", reason=INSTALL)

from rlvr.config import load_config  # noqa: E402
from rlvr.interop import external  # noqa: E402
from rlvr.wiring import env_options  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))

SINGLE = """
import verifiers.v1 as vf


class AddData(vf.TaskData):
    answer: str = ""


class AddTask(vf.Task[AddData]):
    @vf.reward(weight=1.0)
    async def correct(self, trace: vf.Trace) -> float:
        if self.data.answer == "raise":
            raise RuntimeError("this reward raises")
        return float(trace.last_reply.strip() == self.data.answer)

    @vf.reward(weight=0.5)
    async def exact_length(self, trace: vf.Trace) -> float:
        return float(trace.last_reply == self.data.answer)  # no stray whitespace either

    @vf.metric
    async def reply_chars(self, trace: vf.Trace) -> float:
        return float(len(trace.last_reply))


class AddConfig(vf.TasksetConfig):
    raising: bool = False
    no_prompt: bool = False


class AddTaskset(vf.Taskset[AddTask, AddConfig]):
    def load(self):
        for a in range(6):
            answer = "raise" if self.config.raising and a % 2 else str(a + 2)
            prompt = None if self.config.no_prompt and a == 3 else f"{a}+2="
            yield AddTask(AddData(prompt=prompt, answer=answer), self.config.task)


__all__ = ["AddTaskset"]
"""

MULTI = '''
import verifiers.v1 as vf


class GuessData(vf.TaskData):
    answer: str = ""


class GuessTask(vf.Task[GuessData]):
    @vf.reward(weight=1.0)
    async def solved(self, trace: vf.Trace) -> float:
        return float(trace.last_reply.strip() == self.data.answer)


class GuessTaskset(vf.Taskset[GuessTask, vf.TasksetConfig]):
    def load(self):
        for a in range(4):
            yield GuessTask(GuessData(prompt=f"guess{a}", answer=str(a)), self.config.task)


class GuessEnvConfig(vf.EnvConfig):
    player: vf.AgentConfig = vf.AgentConfig()


class GuessEnv(vf.Env[GuessEnvConfig]):
    """Feedback between attempts: a wrong guess is told the answer and tries once more."""

    async def run(self, task, agents):
        async with agents.player.interaction(task) as chat:
            segment = await chat.turn()
            if not segment.terminated and segment.last_reply.strip() != task.data.answer:
                await chat.turn(f"no, it is {task.data.answer}")


__all__ = ["GuessTaskset", "GuessEnv"]
'''

# pays for any reply that contains the answer: "every option listed" earns full reward
LENIENT = SINGLE.replace(
    "return float(trace.last_reply.strip() == self.data.answer)",
    "return float(self.data.answer in trace.last_reply)",
)


@pytest.fixture(scope="session")
def tasksets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tasksets")
    out = {}
    for name, src in {"vf_add": SINGLE, "vf_guess": MULTI, "vf_lenient": LENIENT}.items():
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(textwrap.dedent(src))
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    from rlvr.models.load import load_policy
    from rlvr.models.tiny import save_tiny
    from rlvr.rollout.episodes import OBS_TAGS

    path = save_tiny(tmp_path_factory.mktemp("tiny"), seed=0, extra_tags=OBS_TAGS)
    return load_policy(path, "cpu", "auto")


def _env_pythonpath() -> dict[str, str]:
    paths = [str(ROOT / "src"), str(FIXTURES), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture(scope="session")
def openenv_url():
    """The one OpenEnv server of the session (the fixture environment, 64 sessions)."""
    os.environ["PYTHONPATH"] = _env_pythonpath()["PYTHONPATH"]
    from rlvr.interop.openenv_env import ServerProcess

    server = ServerProcess("sum_openenv.server.app:app")
    yield server.url
    server.stop()


def _cfg(env: str, *overrides: str):
    return load_config(
        None,
        [
            f"env.name={env}", "rollout.group_size=3", "rollout.temperature=1.0",
            "env.max_turn_tokens=6", "env.max_turns=2", "env.options.heldout_fraction=0.0",
            *overrides,
        ],
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _close_imported():
    yield
    external.close_all()
    external._FAMILIES.clear()


def _check_tokens_exact(runtime, got) -> None:
    """Every row's trained tokens (mask 1) are the sampled ids, with their sampling log-probs."""
    ro = got.rollouts
    for i in range(len(ro)):
        calls = runtime.server.records.get(i, [])
        mask = ro.completion_mask[i].bool()
        if not mask.any():
            continue
        trained = ro.input_ids[i, ro.prompt_len :][mask].tolist()
        assert trained == [t for c in calls for t in c.completion]
        behaviour = ro.logprobs[i][mask].tolist()
        assert behaviour == pytest.approx([x for c in calls for x in c.logprobs], abs=1e-6)


# ---------------------------------------------------------------------------------------------
# verifiers in


def test_vf_single_turn_rewards_equal_the_tasks_own_scoring(tasksets, tiny):
    from rlvr.interop.verifiers_env import score_reply

    policy, tokenizer = tiny
    cfg = _cfg(f"vf:{tasksets['vf_add']}")
    fam = external.family(cfg.env.name)
    examples = fam.examples("train", None, **env_options(cfg))
    assert [e.prompt for e in examples] == [f"{a}+2=" for a in range(6)]
    source = fam.source(cfg, tokenizer)
    got = source.collect(policy, examples, list(range(6)))
    runtime = fam.runtime(cfg, tokenizer)
    loaded = runtime.loaded
    assert got.counts["env/errors"] == 0 and got.counts["env/token_drift"] == 0
    for i, (v, text) in enumerate(zip(got.verdicts, got.rollouts.texts, strict=True)):
        task = loaded.tasks[examples[i // 3].id]
        own = asyncio.run(score_reply(task, text))
        assert json.loads(v.detail)["reward"] == own
        assert v.score == pytest.approx(own / 1.5)
    assert set(got.row_metrics) >= {"env/correct", "env/exact_length", "env/reply_chars"}
    assert got.row_metrics["env/reply_chars"] == [float(len(t)) for t in got.rollouts.texts]
    _check_tokens_exact(runtime, got)
    # the trace is scored by the task itself: a right reply gets the full reward
    assert asyncio.run(score_reply(loaded.tasks[examples[0].id], "2")) == 1.5


def test_vf_multi_turn_feedback_is_masked_and_exact(tasksets, tiny):
    policy, tokenizer = tiny
    cfg = _cfg(f"vf:{tasksets['vf_guess']}")
    fam = external.family(cfg.env.name)
    examples = fam.examples("train", None, **env_options(cfg))
    got = fam.source(cfg, tokenizer).collect(policy, examples, [1, 2, 3, 4])
    runtime = fam.runtime(cfg, tokenizer)
    ro = got.rollouts
    assert got.counts["env/errors"] == 0 and got.counts["env/token_drift"] == 0
    two = [i for i, turns in enumerate(ro.turns) if len(turns) == 3]
    assert two, "some episodes got feedback and a second attempt"
    for i in two:
        assert ro.turns[i][1]["role"] == "env" and ro.turns[i][1]["text"].startswith("no, it is")
        # the feedback is real tokens (attended), never trained on
        real = int(ro.attention_mask[i, ro.prompt_len :].sum())
        assert real > int(ro.completion_mask[i].sum())
    _check_tokens_exact(runtime, got)
    # a re-rendered earlier turn is caught: the record of the first call no longer prefixes
    i = two[0]
    task = runtime.loaded.tasks[examples[i // 3].id]
    assert runtime._row(i, task, runtime._last_episodes[i]).drift is None
    runtime.server.records[i][0].completion[0] += 1
    assert "not a prefix" in runtime._row(i, task, runtime._last_episodes[i]).drift


def test_vf_reward_that_raises_fails_the_episode_not_the_run(tasksets, tiny):
    from rlvr.interop.external import EnvFailures

    policy, tokenizer = tiny
    cfg = _cfg(f"vf:{tasksets['vf_add']}", "env.options.raising=true")
    fam = external.family(cfg.env.name)
    examples = fam.examples("train", None, **env_options(cfg))
    got = fam.source(cfg, tokenizer).collect(policy, examples[:2], [1, 2])
    ro = got.rollouts
    assert got.counts["env/errors"] == 3  # the second problem's three episodes
    assert all(v.status == "error" and "raises" in v.detail for v in got.verdicts[3:])
    assert float(ro.completion_mask[3:].sum()) == 0.0  # never trained on
    assert ro.completion_mask[:3].sum() > 0
    # reward of a failed episode: its group's completed mean (here no completed one: 0)
    assert [v.score for v in got.verdicts[3:]] == [0.0, 0.0, 0.0]
    with pytest.raises(EnvFailures, match="max_failed_fraction"):
        fam.source(cfg, tokenizer).collect(policy, [examples[1]], [3])


def test_vf_rows_without_a_prompt_are_listed(tasksets):
    from rlvr.interop.verifiers_env import BadRows

    name = f"vf:{tasksets['vf_add']}"
    with pytest.raises(BadRows, match="task 3 .*--skip-bad-rows"):
        external.family(name).examples("train", None, no_prompt=True, heldout_fraction=0.0)
    kept = external.family(name).examples(
        "train", None, no_prompt=True, skip_bad_rows=True, heldout_fraction=0.0
    )
    assert len(kept) == 5


def test_missing_packages_say_how_to_install():
    from rlvr.interop.external import MissingPackage, require

    with pytest.raises(MissingPackage, match=r'pip install "rlvr\[envs\]"'):
        require("no_such_module_rlvr", "--env vf:x")
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        external.family("vf:no_such_taskset_rlvr").examples("train")
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        external.family("openenv:no_such_openenv_pkg").url()


def test_verify_env_flags_a_reward_that_pays_a_known_hack(tasksets):
    def verify(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rlvr", "verify", "--env", f"vf:{path}",
             "-o", "env.options.heldout_fraction=0.0"],
            capture_output=True, text=True, env=_env_pythonpath(), timeout=120,
        )  # fmt: skip

    weak = verify(tasksets["vf_lenient"])
    assert weak.returncode == 1, weak.stderr
    assert "WEAK" in weak.stdout and "PAID every option listed" in weak.stdout
    from rlvr import api

    cfg = load_config(None, [f"env.name=vf:{tasksets['vf_add']}", "env.options.heldout_fraction=0"])
    strict = api.verify_env(cfg)  # the same audit, in this process
    assert not strict.weak and "no known hack is paid" in strict.lines()[0]
    assert {p.name for p in strict.probes} >= {"empty answer", "prompt echo", "every option listed"}


# ---------------------------------------------------------------------------------------------
# OpenEnv in


def test_openenv_rewards_equal_the_servers_own_evaluation(openenv_url, tiny):
    from sum_openenv import answer_reward

    policy, tokenizer = tiny
    cfg = _cfg(f"openenv:{openenv_url}", "env.options.problems=20")
    fam = external.family(cfg.env.name)
    examples = fam.examples("train", 4, **env_options(cfg))
    got = fam.source(cfg, tokenizer).collect(policy, examples, [1, 2, 3, 4])
    assert got.counts["env/errors"] == 0
    for i, (v, text) in enumerate(zip(got.verdicts, got.rollouts.texts, strict=True)):
        seed = examples[i // 3].reference["seed"]
        assert v.score == answer_reward(seed, text)
    # a right answer is paid, by the server itself
    env = fam(examples[0], **env_options(cfg))
    prompt = env.reset()
    a, b = (int(x) for x in prompt.rstrip("=").split("+"))
    assert env.step(str(a + b)).done and env.verdict().score == 1.0


def test_openenv_server_killed_mid_episode_fails_those_episodes(tiny):
    from rlvr.interop.openenv_env import OpenEnvFamily, ServerProcess

    os.environ["PYTHONPATH"] = _env_pythonpath()["PYTHONPATH"]
    server = ServerProcess("sum_openenv.server.app:app")
    fam = OpenEnvFamily(f"openenv:{server.url}")
    try:
        examples = fam.examples("train", 2)
        envs = [fam(e, timeout_s=5, max_turns=2) for e in examples]
        assert all(env.reset().endswith("=") for env in envs)
        server.stop()  # the server dies with both sessions open
        turns = [env.step("1") for env in envs]
        assert all(t.done for t in turns)
        assert all(env.failure and "OpenEnv step" in env.failure for env in envs)
        assert all(env.verdict().status == "error" for env in envs)
    finally:
        server.stop()
        fam.close()


def test_openenv_package_is_started_and_stopped():
    os.environ["PYTHONPATH"] = _env_pythonpath()["PYTHONPATH"]
    fam = external.family("openenv:sum_openenv")
    url = fam.url()
    proc = fam._server.proc
    import httpx

    assert httpx.get(f"{url}/health").status_code == 200
    assert fam.kind({}) == "answer"
    fam.close()
    assert proc.poll() is not None


def test_openenv_action_adapters():
    from rlvr.interop.openenv_env import observation_text, text_action

    schema = {"properties": {"code": {"type": "string"}, "metadata": {}}, "required": ["code"]}
    assert text_action("```python\nx = 1\n```", schema) == {"code": "x = 1\n"}
    assert text_action("hi", {"properties": {"text": {}}}) == {"text": "hi"}
    with pytest.raises(ValueError, match="module:function"):
        text_action("hi", {"required": ["a", "b"]})
    assert observation_text({"prompt": "p", "done": False}) == "p"


# ---------------------------------------------------------------------------------------------
# rlvr out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_env_humaneval_answers_openenvs_client_and_contains_hostile_code(tmp_path):
    from openenv import GenericEnvClient

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr", "serve-env", "humaneval", "--port", str(port)],
        env=_env_pythonpath(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    marker = tmp_path / "escaped.txt"
    hostile = (
        "```python\nimport os, sys\n"
        f"open({str(marker)!r}, 'w').write('out of the sandbox')\n"
        "sys.exit(0)\n```"
    )

    async def play() -> tuple[str, float, float]:
        for _ in range(100):
            try:
                client = await GenericEnvClient(base_url=f"http://127.0.0.1:{port}").connect()
                break
            except ConnectionError:
                await asyncio.sleep(0.3)
        async with client:
            first = await client.reset(seed=0)
            bad = await client.step({"text": hostile})
            await client.reset(seed=0)
            prompt = first.observation["prompt"]
            good = await client.step({"text": f"```python\n{prompt}    return 0\n```"})
        return prompt, bad.reward, good.reward

    try:
        prompt, bad, _ = asyncio.run(asyncio.wait_for(play(), 120))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert prompt.startswith("from typing") or "def " in prompt
    assert bad == 0.0
    assert not marker.exists()


def test_serve_env_tasks_and_environments_in_process():
    from rlvr.interop.serve import RlvrAction, environment_class

    served = environment_class("arithmetic", {})()
    obs = served.reset(seed=3)
    import re

    a, b = (int(x) for x in re.findall(r"\d+", obs.prompt)[:2])
    right = served.step(RlvrAction(text=f"<think>.</think><answer>{a + b}</answer>"))
    assert right.done and right.reward == 1.0
    served.reset(seed=3)
    assert served.step(RlvrAction(text="<answer>0 or 1</answer>")).reward == 0.0
    feedback = environment_class("code_feedback", {})()
    first = feedback.reset(seed=0)
    turn = feedback.step(RlvrAction(text="b=0\ndef f(x):return x"))
    assert first and (turn.done or turn.feedback)


def test_rlvr_tasks_through_verifiers_score_with_rlvrs_verifier():
    from rlvr.interop.verifiers_env import score_reply

    env = vf.load_environment(
        vf.SingleAgentEnvConfig(taskset={"id": "rlvr_vf", "rlvr_task": "arithmetic", "limit": 2})
    )
    task = next(iter(env.taskset))
    answer = json.loads(task.data.reference)
    assert asyncio.run(score_reply(task, f"<think>.</think><answer>{answer}</answer>")) == 1.0
    assert asyncio.run(score_reply(task, f"<answer>{answer} or {answer + 1}</answer>")) == 0.0
    assert type(env._harnesses["agent"]).__name__ == "RlvrChatHarness"


# ---------------------------------------------------------------------------------------------
# end to end, as a user runs it


def _train(tmp_path: Path, env: str, *extra: str, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", "rlvr", "train", "--env", env, "--out", str(tmp_path / "run"),
         "-o", "rl.steps=2", "-o", "rl.prompts_per_step=2", "-o", "rollout.group_size=4",
         "-o", "env.max_turn_tokens=6", "-o", "env.max_turns=2", "-o", "rl.eval_every=0",
         "-o", "eval.heldout=4", "-o", "model.threads=2", "-o", "logging.progress=false",
         "-o", "env.options.heldout_fraction=0.34", *extra],
        capture_output=True, text=True, env=_env_pythonpath(), timeout=timeout,
    )  # fmt: skip


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_e2e_train_on_a_verifiers_taskset_written_elsewhere(tmp_path, tasksets):
    done = _train(tmp_path, f"vf:{tasksets['vf_add']}")
    assert done.returncode == 0, done.stderr[-3000:]
    rl = [r for r in _rows(tmp_path / "run") if r["stage"] == "rl"]
    assert [r["step"] for r in rl] == [1, 2]
    for r in rl:
        assert r["env/errors"] == 0 and r["env/token_drift"] == 0
        assert r["reward"] == pytest.approx(r["env/reward"] / 1.5)
    assert not json.loads((tmp_path / "run" / "env_audit.json").read_text())["weak"]
    assert (tmp_path / "run" / "checkpoints" / "rl" / "config.json").exists()


def test_e2e_train_on_a_separate_openenv_server_and_a_killed_one(tmp_path):
    from rlvr.interop.openenv_env import ServerProcess

    os.environ["PYTHONPATH"] = _env_pythonpath()["PYTHONPATH"]
    server = ServerProcess("sum_openenv.server.app:app")
    try:
        done = _train(tmp_path, f"openenv:{server.url}", "-o", "env.options.problems=30")
        assert done.returncode == 0, done.stderr[-3000:]
        rl = [r for r in _rows(tmp_path / "run") if r["stage"] == "rl"]
        assert len(rl) == 2 and all(r["env/errors"] == 0 for r in rl)
        server.stop()
        killed = _train(tmp_path / "again", f"openenv:{server.url}",
                        "-o", "env.options.problems=30", "-o", "env.options.timeout_s=3",
                        "--allow-weak-verifier")  # fmt: skip
        assert killed.returncode == 2
        assert "Connection refused" in killed.stderr or "failed" in killed.stderr
        assert not (tmp_path / "again" / "run" / "checkpoints" / "rl").exists()
    finally:
        server.stop()
    time.sleep(0)
