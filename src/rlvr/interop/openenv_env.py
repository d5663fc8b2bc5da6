"""``--env openenv:URL`` and ``--env openenv:PACKAGE``: train on an OpenEnv environment server.

An OpenEnv environment is gym-shaped (``reset`` -> observation, ``step(action)`` ->
observation with ``reward`` and ``done``), so it is an rlvr ``Env`` as it stands: each episode
holds one WebSocket session of the server (``openenv-core``'s ``GenericEnvClient``; its HTTP
``/reset`` and ``/step`` build a fresh environment per request, so they cannot hold an
episode), and rlvr's own episode runner plays it, token-exact by construction (the model's
tokens appended as sampled, observations encoded once and masked).

Why openenv-core directly rather than verifiers' OpenEnv taskset: that taskset shows the model
a JSON dump of each observation and the action schema, too long for a small model and not
configurable; it runs through a verifiers harness (the ``uv`` question again); and its tasks
are a fixed list of reset arguments. Here the problems are reset seeds (``openenv:{s}`` hashed
into train and held-out), observations become text through an adapter, and nothing but
``openenv-core`` is needed.

- ``openenv:http://host:port`` connects to a running server;
- ``openenv:PACKAGE`` starts ``uvicorn PACKAGE.server.app:app`` (the layout ``openenv init``
  writes; ``openenv:PACKAGE.module:app`` names another app) as a local process on a free port,
  waits for ``/health`` and stops it at the end. No containers.

Adapters (``env.options``): ``action=module:function`` maps the model's text (and the action's
JSON schema) to the action dict; the built-in one fills an action with a single required text
field (the code inside a fenced block for a field named code/program/source/solution).
``observation=module:function`` maps an observation dict to the text the model reads; the
built-in one takes its text field (prompt, text, message, question, feedback, output, ...).
The episode's reward is the last step's (``reward: sum`` adds them), mapped from
``reward_range`` (default [0, 1]) to [0, 1].

Faults: a server that is unreachable, times out (``timeout_s``) or dies mid-episode fails that
episode only; the source keeps it out of training (``envs.external.exclude_failed``).
``max_sessions`` plays a step's episodes in waves when the server holds fewer sessions (its
``max_concurrent_envs``) than a step has episodes.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

from rlvr.envs.base import Turn
from rlvr.interop.external import exclude_failed, normalised, verdict_of
from rlvr.rollout.sources import Collected
from rlvr.tasks.base import Example, Split, split_by_hash
from rlvr.verifiers.base import Verdict
from rlvr.verifiers.code import extract_code

TEXT_FIELDS = ("prompt", "text", "message", "question", "observation", "feedback", "output",
               "stdout", "content", "response", "echoed_message")  # fmt: skip
CODE_FIELDS = ("code", "program", "source", "solution")


def load_callable(spec: str, option: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"env.options.{option} must be module:function, got {spec!r}")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise ValueError(f"env.options.{option}: {spec} is not a function")
    return fn


def text_action(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The built-in action adapter: the model's text as the action's one text field."""
    props = schema.get("properties") or {}
    fields = list(schema.get("required") or []) or [k for k in props if k != "metadata"]
    if len(fields) != 1:
        raise ValueError(
            f"the action has {len(fields)} fields ({', '.join(fields)}); the built-in adapter "
            "fills one text field: give env.options.action=module:function"
        )
    field = fields[0]
    return {field: extract_code(text) if field in CODE_FIELDS else text}


def observation_text(observation: dict[str, Any]) -> str:
    """The built-in observation adapter: its text field, else its JSON."""
    for name in TEXT_FIELDS:
        value = observation.get(name)
        if isinstance(value, str):
            return value
    strings = [v for k, v in observation.items() if isinstance(v, str) and k != "metadata"]
    return strings[0] if len(strings) == 1 else json.dumps(observation, sort_keys=True)


class ServerProcess:
    """``uvicorn APP`` on a free local port, for the life of the run."""

    def __init__(self, app: str, startup_s: float = 60.0) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ENABLE_WEB_INTERFACE": "false"}
        # the server's log goes to a file: a pipe nobody reads fills up and stalls the server
        self.log = tempfile.NamedTemporaryFile("w+", prefix="rlvr-openenv-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        import httpx

        t0 = time.monotonic()
        while time.monotonic() - t0 < startup_s:
            if self.proc.poll() is not None:
                self.log.seek(0)
                err = self.log.read()[-2000:]
                raise RuntimeError(f"the OpenEnv server {app} exited at start: {err}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the OpenEnv server {app} did not answer /health in {startup_s:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class OpenEnvFamily:
    """What ``--env openenv:...`` resolves to: seeds as problems, one episode per session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.target = name[len("openenv:") :]
        self._server: ServerProcess | None = None
        self._url: str | None = None
        self._schema: dict[str, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- where the server is ------------------------------------------------------------------
    def url(self) -> str:
        with self._lock:
            if self._url is None:
                if self.target.startswith(("http://", "https://", "ws://", "wss://")):
                    self._url = self.target.rstrip("/")
                else:
                    module = self.target.split(":")[0].split(".")[0]
                    if importlib.util.find_spec(module) is None:
                        raise ModuleNotFoundError(
                            f"--env {self.name}: no installed package {module!r}; install the "
                            "environment's package (pip install it), or start its server and "
                            "pass --env openenv:http://HOST:PORT"
                        )
                    app = self.target if ":" in self.target else f"{self.target}.server.app:app"
                    self._server = ServerProcess(app)
                    self._url = self._server.url
            return self._url

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="rlvr-openenv",
                                 daemon=True).start()  # fmt: skip
            return self._loop

    def schema(self) -> dict[str, Any]:
        if self._schema is None:
            import httpx

            http_url = self.url().replace("ws://", "http://").replace("wss://", "https://")
            try:
                reply = httpx.get(f"{http_url}/schema", timeout=10)
                reply.raise_for_status()
            except httpx.HTTPError as exc:
                raise ConnectionError(
                    f"--env {self.name}: the server did not answer: {exc}"
                ) from None
            self._schema = reply.json().get("action", {})
        return self._schema

    # -- problems ----------------------------------------------------------------------------
    def examples(
        self,
        split: Split,
        n: int | None = None,
        problems: int = 1000,
        heldout_fraction: float = 0.2,
        **_: Any,
    ) -> list[Example]:
        """Reset seeds 0..problems-1, split by a hash of the seed."""
        out = []
        for s in range(problems):
            if split_by_hash(f"openenv:{s}", heldout_fraction) == split:
                out.append(
                    Example(id=f"seed:{s}", prompt=f"(reset seed {s})", reference={"seed": s})
                )
        return out if n is None else out[:n]

    def __call__(self, example: Example, **options: Any) -> OpenEnvEpisode:
        return OpenEnvEpisode(self, example, **options)

    def kind(self, options: dict[str, Any]) -> str:
        if options.get("kind"):
            return str(options["kind"])
        fields = set(self.schema().get("properties") or {})
        return "code" if fields & set(CODE_FIELDS) else "answer"

    # -- rlvr's side --------------------------------------------------------------------------
    def source(self, cfg: Any, tokenizer: Any, engine: Any = None) -> OpenEnvSource:
        from functools import partial

        from rlvr.wiring import episode_runner, make_env

        r = cfg.rollout
        runner = episode_runner(cfg, tokenizer, engine=engine)
        return OpenEnvSource(
            runner, partial(make_env, cfg), r.group_size, r.temperature,
            r.top_p, cfg.env.max_failed_fraction, cfg.env.options.get("max_sessions"),
        )  # fmt: skip

    def evaluate(self, cfg: Any, policy: Any, tokenizer: Any, examples: list[Example]) -> dict:
        from rlvr.eval import evaluate_episodes
        from rlvr.wiring import episode_runner, make_env

        runner = episode_runner(cfg, tokenizer)
        try:
            envs = [make_env(cfg, e) for e in examples]
            got = evaluate_episodes(policy, runner, envs)
        finally:
            runner.close()
        failed = sum(getattr(e, "failure", None) is not None for e in envs)
        return {"n": len(examples), "failed": failed, "pass@1": got["pass@1"],
                "reward": got["reward"], "samples": got["samples"][:20]}  # fmt: skip

    def probe_examples(self, options: dict[str, Any], examples: list[Example]) -> list[Example]:
        """The problems with their real prompts (one reset each), for the audit's probes."""
        out = []
        for e in examples:
            env = self(e, **options)
            out.append(replace(e, prompt=env.reset()))
            env.close()
        return out

    def score_texts(
        self, options: dict[str, Any], examples: list[Example], texts: list[str]
    ) -> list[float]:
        """Each text as the one action of an episode on its problem: the reward it earns."""
        scores = []
        for e, text in zip(examples, texts, strict=True):
            env = self(e, **{**options, "max_turns": 1})
            env.reset()
            env.step(text)
            scores.append(env.verdict().score)
            env.close()
        return scores

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server, self._url = None, None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


class OpenEnvEpisode:
    """One episode on one server session, as an rlvr ``Env`` (text in, text out)."""

    name = "openenv"

    def __init__(
        self,
        family: OpenEnvFamily,
        example: Example,
        action: str | None = None,
        observation: str | None = None,
        reward: str = "last",
        reward_range: list[float] | tuple[float, float] = (0.0, 1.0),
        timeout_s: float = 30.0,
        max_turns: int = 1,
        **_: Any,
    ) -> None:
        self.family, self.example = family, example
        self.to_action = load_callable(action, "action") if action else text_action
        self.to_text = (
            load_callable(observation, "observation") if observation else observation_text
        )
        if reward not in ("last", "sum"):
            raise ValueError(f"env.options.reward must be last or sum, got {reward!r}")
        self.reward_mode, self.reward_range = reward, tuple(float(x) for x in reward_range)
        self.timeout_s, self.max_turns = float(timeout_s), max_turns
        self.client: Any = None
        self.failure: str | None = None
        self.rewards: list[float] = []
        self.turns = 0

    def _run(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coro, self.timeout_s), self.family.loop()
        )
        return future.result(self.timeout_s + 5)

    def _fail(self, what: str, exc: BaseException) -> Turn:
        kind = (
            "timed out"
            if isinstance(exc, TimeoutError | asyncio.TimeoutError)
            else type(exc).__name__
        )
        self.failure = f"OpenEnv {what} {kind}: {str(exc)[:300]}"
        self.close()
        return Turn("", True, {"error": self.failure})

    def reset(self) -> str:
        from openenv import GenericEnvClient

        try:
            self.client = GenericEnvClient(
                base_url=self.family.url(), message_timeout_s=self.timeout_s
            )
            result = self._run(self.client.reset(seed=int(self.example.reference["seed"])))
        except Exception as exc:  # noqa: BLE001 - the episode fails, the run goes on
            self._fail("reset", exc)
            return "(the environment failed)"
        return self.to_text(result.observation)

    def step(self, action: str) -> Turn:
        if self.failure is not None:
            return Turn("", True, {"error": self.failure})
        self.turns += 1
        try:
            payload = self.to_action(action, self.family.schema())
            result = self._run(self.client.step(payload))
        except Exception as exc:  # noqa: BLE001
            return self._fail("step", exc)
        if result.reward is not None:
            self.rewards.append(float(result.reward))
        done = bool(result.done) or self.turns >= self.max_turns
        if done:
            self.close()
        return Turn(self.to_text(result.observation), done, {"reward": result.reward})

    def verdict(self) -> Verdict:
        if self.failure is not None:
            return Verdict(0.0, "error", self.failure)
        if not self.rewards:
            return Verdict(0.0, "no_answer", "the environment gave no reward")
        raw = self.rewards[-1] if self.reward_mode == "last" else sum(self.rewards)
        score, _ = normalised(raw, *self.reward_range)
        return verdict_of(score, json.dumps({"reward": raw, "steps": self.rewards}))

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                self._run(client.close())
            except Exception:  # noqa: BLE001 - a dead server has nothing to close
                pass


class OpenEnvSource:
    """Episodes on an OpenEnv server, failed ones kept out of training (a ``RolloutSource``).

    Each episode samples with its own key (the group's key and its place in the group), so
    playing a step in waves (``max_sessions``) draws what playing it at once would."""

    def __init__(self, runner, make_env, group_size, temperature, top_p, max_failed_fraction,
                 max_sessions=None) -> None:  # fmt: skip
        self.runner, self.make_env = runner, make_env
        self.group_size, self.temperature, self.top_p = group_size, temperature, top_p
        self.max_failed_fraction = max_failed_fraction
        self.max_sessions = int(max_sessions) if max_sessions else None
        self.max_tokens = runner.limits.max_episode_tokens
        self.engine = runner.engine

    def collect(self, policy: Any, examples: list[Example], keys: list[int]) -> Collected:
        from rlvr.rollout.generate import Rollouts
        from rlvr.rollout.prompts import pad_id
        from rlvr.rollout.sampling import sample_key

        G = self.group_size
        envs = [self.make_env(e) for e in examples for _ in range(G)]
        ep_keys = [sample_key(k, g) for k in keys for g in range(G)]
        wave = self.max_sessions or len(envs)
        parts, verdicts, seconds = [], [], {"generate": 0.0, "verify": 0.0}
        for a in range(0, len(envs), wave):
            ro, vs = self.runner.run(policy, envs[a : a + wave], 1, self.temperature, self.top_p,
                                     keys=ep_keys[a : a + wave])  # fmt: skip
            parts.append(ro)
            verdicts += vs
            for k, v in self.runner.seconds.items():
                seconds[k] = seconds.get(k, 0.0) + v
        ro = replace(Rollouts.concat(parts, pad_id(self.runner.tokenizer)), group_size=G)
        failures = [getattr(e, "failure", None) for e in envs]
        verdicts, mask, counts = exclude_failed(
            verdicts, ro.completion_mask, failures, [None] * len(envs), G, self.max_failed_fraction
        )
        ro.completion_mask = mask
        rewards = [e.rewards[-1] if e.rewards else float("nan") for e in envs]
        return Collected(ro, verdicts, seconds, counts, {"env/reward": rewards})

    def close(self) -> None:
        self.runner.close()
