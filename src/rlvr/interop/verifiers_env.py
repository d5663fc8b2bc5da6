"""``--env vf:ID``: train and evaluate on a verifiers 0.4 (``verifiers.v1``) environment.

The route is the one verifiers' train client was made for. rlvr serves the token-level
``/inference/v1/generate`` endpoint (``interop.generate_server``) from its rollout engine, and
verifiers runs the episodes with its own machinery: ``load_environment`` builds the ``Env``
(``SingleAgentEnv`` for a plain taskset, or the taskset's own ``Env`` for multi-turn ones),
each seat's harness plays the model's side through the interception proxy, the train client
renders prompts to token ids (the ``renderers`` package) and calls rlvr's endpoint, the
``Trace`` records token ids, the trainable mask and the sampling log-probs, and the task's
``@reward`` / ``@metric`` methods score it. Every reward and metric is logged as ``env/<name>``.

Which tasksets this serves: every taskset whose seats can play here. The default harness is
rlvr's in-process chat harness (``integrations.vf_chat.RlvrChatHarness``), which replaces
verifiers' ``null`` chat harness (that one prepares its program with ``uv``, which needs the
package index at every start): chat tasksets, single-turn, and multi-turn ones whose ``Env``
talks to the agent through ``interaction().turn()`` (feedback between attempts, a simulated
user). ``env.options.harness=null`` (or ``bash``, ...) runs verifiers' own programs in the
subprocess runtime where the network allows ``uv``; tool-using tasksets (MCP) need such a
harness. Container and remote runtimes are not used.

Tokens trained are tokens sampled: the endpoint records, per episode, every call's prompt ids
and sampled ids. The training row is the last call's prompt and completion; every earlier call
must be a prefix of it (prompt then completion, token for token) and the trace's own token ids
must equal it. A renderer that re-renders earlier turns differently (a chat template that is
not append-only; DefaultRenderer has no bridge) breaks that: the episode is counted
(``env/token_drift``) and not trained on. rlvr's ``PlainRenderer`` (tokenizers without a chat
template) appends by construction.

Rewards: the trace's reward (sum of each ``@reward`` times its weight) divided by the most it
can be (the sum of the positive weights; ``env.options.reward_max`` overrides), clipped to
[0, 1] and counted (``env/reward_clipped``) when outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.interop.external import exclude_failed, normalised, verdict_of
from rlvr.interop.generate_server import GenerateServer
from rlvr.rollout.sampling import sample_key
from rlvr.rollout.sources import Collected
from rlvr.tasks.base import Example, Split, split_by_hash
from rlvr.verifiers.base import Verdict

# options rlvr reads; every other env.options key configures the taskset (its TasksetConfig)
RLVR_KEYS = {
    "seed", "max_turns", "style", "harness", "renderer", "heldout_fraction", "max_tasks",
    "kind", "episode_timeout_s", "skip_bad_rows", "env", "env_id", "reward_max", "max_wait_s",
}  # fmt: skip
HARNESS_PLUGIN = "rlvr_vf"  # the top-level package exporting RlvrChatHarness (verifiers ids)


class BadRows(ValueError):
    """Tasks without a prompt (and no simulated user to open the conversation)."""


def taskset_id(spec: str) -> str:
    """The verifiers id of ``spec``: an installed plugin id as it is (verifiers imports it by
    name), or a local path (a package directory, a ``vf-init`` project holding one, or a
    ``.py`` file) made importable first."""
    path = Path(spec).expanduser()
    if not (path.exists() or spec.startswith((".", "/", "~")) or spec.endswith(".py")):
        return spec
    if not path.exists():
        raise FileNotFoundError(f"--env vf:{spec}: no such file or directory")
    path = path.resolve()
    if path.is_file():
        root, module = path.parent, path.stem
    elif (path / "__init__.py").exists():
        root, module = path.parent, path.name
    else:
        inner = [p for p in path.iterdir() if (p / "__init__.py").exists()]
        if len(inner) != 1:
            raise ValueError(
                f"--env vf:{spec}: {path} is neither a taskset package (with __init__.py) nor "
                "a project holding exactly one"
            )
        root, module = path, inner[0].name
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return module


@dataclass
class Loaded:
    """A verifiers environment and its tasks, keyed as rlvr examples."""

    env: Any
    tasks: dict[str, Any]  # example id -> Task
    examples: list[Example]
    bad_rows: list[str]
    needs_prompt: bool


def _split_options(options: dict[str, Any]) -> tuple[dict, dict]:
    own = {k: v for k, v in options.items() if k in RLVR_KEYS}
    return own, {k: v for k, v in options.items() if k not in RLVR_KEYS}


def load(spec: str, options: dict[str, Any]) -> Loaded:
    """``load_environment`` as verifiers does it, with each seat on the harness rlvr can run
    (``env.options.harness``) in the subprocess runtime, then its tasks."""
    import verifiers.v1 as vf
    from verifiers.v1.configs.agent import AgentConfig

    own, taskset_options = _split_options(options)
    ident = taskset_id(spec)
    env_id = str(own.get("env_id") or "")
    try:
        cls = vf.env_config_type(ident, env_id)
        vf.taskset_config_type(ident)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"--env vf:{spec}: {exc} Install the taskset's package (pip install it, or pass a "
            "local path: --env vf:./path/to/taskset)"
        ) from None
    harness = own.get("harness", "rlvr")
    data: dict[str, Any] = {
        "taskset": {"id": ident, **taskset_options},
        **dict(own.get("env") or {}),
    }
    if env_id:
        data["id"] = env_id
    for seat, info in cls.model_fields.items():
        if not isinstance(info.default, AgentConfig):
            continue
        seat_data = dict(data.get(seat) or {})
        pinned = info.default.harness.id if info.default.harness is not None else None
        if harness == "rlvr" and pinned in (None, "null"):
            seat_data.setdefault("harness", {"id": HARNESS_PLUGIN})
        elif harness != "rlvr":
            seat_data.setdefault("harness", {"id": harness})
        seat_data.setdefault("runtime", {"type": "subprocess"})
        if own.get("max_turns"):
            seat_data.setdefault("max_turns", int(own["max_turns"]))
        data[seat] = seat_data
    env = vf.load_environment(vf.resolve_env_config(data))
    needs_prompt = type(env).__name__ == "SingleAgentEnv"
    tasks, examples, bad = {}, [], []
    limit = int(own.get("max_tasks", 10_000))
    for task in itertools.islice(iter(env.taskset), limit):
        prompt = task.data.prompt
        if prompt is None and needs_prompt:
            bad.append(f"task {task.data.idx} ({task.data.id or task.data.name or task.key[:12]})")
            continue
        key = str(task.key)
        tasks[key] = task
        examples.append(
            Example(
                id=key,
                prompt=task.data.prompt_text if prompt is not None else "",
                reference={"vf_task": task.data.idx, "vf_key": key},
                meta={"vf_id": task.data.id, "vf_name": task.data.name},
            )
        )
    if bad and not own.get("skip_bad_rows"):
        listed = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise BadRows(
            f"--env vf:{spec}: {len(bad)} task(s) have no prompt: {listed}. Fix the taskset, "
            "or pass --skip-bad-rows (env.options.skip_bad_rows=true) to leave them out"
        )
    if not examples:
        raise ValueError(f"--env vf:{spec}: the taskset yielded no usable task")
    return Loaded(env, tasks, examples, bad, needs_prompt)


def reward_max(task: Any) -> float:
    """The most a trace can score: the sum of the positive weights of the task's rewards."""
    weights = [getattr(fn, "_vf_weight", 1.0) for fn in task.hooks("reward")]
    weights += [j.config.weight for j in task.plugged_judges()]
    return sum(w for w in weights if w > 0) or 1.0


class VerifiersFamily:
    """What ``--env vf:ID`` resolves to: the problems (``examples``), the rollout source and
    held-out evaluation, over one loaded environment per set of options."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.spec = name[len("vf:") :]
        self._loaded: dict[str, Loaded] = {}
        self._runtimes: dict[str, VerifiersRuntime] = {}

    def loaded(self, options: dict[str, Any]) -> Loaded:
        key = json.dumps(options, sort_keys=True, default=str)
        if key not in self._loaded:
            self._loaded[key] = load(self.spec, options)
        return self._loaded[key]

    def examples(self, split: Split, n: int | None = None, **options: Any) -> list[Example]:
        loaded = self.loaded(options)
        fraction = float(options.get("heldout_fraction", 0.2))
        if fraction >= 1.0:
            out = list(loaded.examples) if split == "heldout" else []
        else:
            out = [e for e in loaded.examples if split_by_hash(f"vf:{e.id}", fraction) == split]
        return out if n is None else out[:n]

    def __call__(self, example: Example, **options: Any) -> Any:
        raise TypeError(
            f"{self.name} runs through verifiers' own episode loop, not as an rlvr Env object"
        )

    def runtime(self, cfg: Any, tokenizer: Any) -> VerifiersRuntime:
        from rlvr.wiring import env_options

        options = env_options(cfg)
        key = json.dumps(options, sort_keys=True, default=str)
        if key not in self._runtimes:
            self._runtimes[key] = VerifiersRuntime(self.loaded(options), options, cfg, tokenizer)
        return self._runtimes[key]

    def source(self, cfg: Any, tokenizer: Any, engine: Any = None) -> VerifiersSource:
        """The run's source; ``engine`` (the run's) answers the generate endpoint's calls."""
        r = cfg.rollout
        runtime = self.runtime(cfg, tokenizer)
        if engine is not None:
            runtime.engine = engine
        return VerifiersSource(
            runtime, r.group_size, r.temperature, r.top_p, cfg.env.max_failed_fraction,
        )  # fmt: skip

    def evaluate(self, cfg: Any, policy: Any, tokenizer: Any, examples: list[Example]) -> dict:
        """Greedy episodes on ``examples``: pass@1 (the reward at its maximum), the mean reward
        and the environment's own metrics, and the samples."""
        runtime = self.runtime(cfg, tokenizer)
        keys = [sample_key(cfg.seed, "eval", i) for i in range(len(examples))]
        rows = runtime.play(policy, [runtime.loaded.tasks[e.id] for e in examples], keys, 0.0, 1.0)
        done = [r for r in rows if r.failure is None and r.drift is None]
        out: dict[str, Any] = {
            "n": len(examples),
            "failed": len(rows) - len(done),
            "pass@1": sum(r.verdict.correct for r in done) / max(len(done), 1),
            "reward": sum(r.verdict.score for r in done) / max(len(done), 1),
        }
        names = sorted({k for r in done for k in r.metrics})
        for k in names:
            values = [r.metrics[k] for r in done if not math.isnan(r.metrics.get(k, math.nan))]
            out[k] = sum(values) / len(values) if values else math.nan
        out["samples"] = [
            {"prompt": e.prompt, "turns": r.turns, "score": r.verdict.score,
             "status": r.verdict.status, "detail": r.verdict.detail}
            for e, r in zip(examples, rows, strict=True)
        ][:20]  # fmt: skip
        return out

    def kind(self, options: dict[str, Any]) -> str:
        """``code`` or ``answer`` (``env.options.kind``, else from the prompts' wording)."""
        return options.get("kind") or guess_kind([e.prompt for e in self.loaded(options).examples])

    def score_texts(
        self, options: dict[str, Any], examples: list[Example], texts: list[str]
    ) -> list[float]:
        """The task's own scoring (its ``@reward`` methods, no runtime) of ``texts[i]`` as
        the one reply to ``examples[i]``, normalised as in training (``rlvr verify --env``)."""
        loaded = self.loaded(options)
        most = options.get("reward_max")
        tasks = [loaded.tasks[e.id] for e in examples]

        async def all_scores() -> list[float]:
            raws = await asyncio.gather(
                *(score_reply(t, x) for t, x in zip(tasks, texts, strict=True))
            )
            return [
                normalised(raw, 0.0, float(most) if most else reward_max(t))[0]
                for t, raw in zip(tasks, raws, strict=True)
            ]

        return asyncio.run(all_scores())

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
        self._runtimes.clear()


async def score_reply(task: Any, text: str) -> float:
    """A trace of one turn (the task's prompt, ``text`` as the reply) scored by the task."""
    import verifiers.v1 as vf
    from verifiers.v1.graph import prepare_turn

    trace = vf.Trace(
        task=vf.TraceTask(type=type(task).__name__, data=task.data, key=task.key, hash=task.hash),
        agent=vf.AgentInfo(config=vf.AgentConfig()),
    )
    prompt = task.data.prompt
    messages: list[Any] = [vf.SystemMessage(content=task.data.system_prompt)] if (
        task.data.system_prompt
    ) else []  # fmt: skip
    if isinstance(prompt, str):
        messages.append(vf.UserMessage(content=prompt))
    elif prompt:
        messages += list(prompt)
    reply = vf.AssistantMessage(content=text)
    prepare_turn(trace, messages).commit(
        vf.Response(id="probe", created=0, model="probe", message=reply, finish_reason="stop")
    )
    await task.score(trace)
    return trace.reward


def guess_kind(prompts: list[str]) -> str:
    """Code when most prompts ask for a program (a ``def``, a fenced block, "function"...)."""
    words = ("def ", "```", "python", "function", "program", "implement")
    code = sum(any(w in p.lower() for w in words) for p in prompts)
    return "code" if code * 2 > max(len(prompts), 1) else "answer"


@dataclass
class Row:
    """One played episode, as training sees it."""

    prompt: list[int]
    seq: list[int]
    model: list[int]
    logprobs: list[float]
    text: str
    turns: list[dict]
    truncated: bool
    verdict: Verdict
    metrics: dict[str, float]
    failure: str | None = None
    drift: str | None = None
    clipped: bool = False


class VerifiersRuntime:
    """The event loop verifiers runs on (a thread of its own), the generate endpoint and the
    environment's serving resources, for the whole run."""

    def __init__(self, loaded: Loaded, options: dict[str, Any], cfg: Any, tokenizer: Any) -> None:
        import verifiers.v1 as vf

        from rlvr.integrations.vf_chat import renderer_config
        from rlvr.rollout.engines.native import NativeEngine
        from rlvr.rollout.prompts import pad_id

        self.loaded, self.options, self.tokenizer = loaded, options, tokenizer
        own, _ = _split_options(options)
        self.timeout_s = float(own.get("episode_timeout_s", 600))
        self.reward_max = own.get("reward_max")
        self.max_turn_tokens = cfg.env.max_turn_tokens
        self.engine = NativeEngine(pad_id(tokenizer))
        self.pad = pad_id(tokenizer)
        self._tokdir = tempfile.mkdtemp(prefix="rlvr-vf-tokenizer-")
        tokenizer.save_pretrained(self._tokdir)  # the renderer loads its tokenizer by path
        renderer = renderer_config(
            own.get("renderer"), bool(getattr(tokenizer, "chat_template", None))
        )
        self.server = GenerateServer(
            "rlvr-policy", cfg.env.max_episode_tokens, float(own.get("max_wait_s", 2.0))
        )
        self.loop = event_loop()
        self._stack = contextlib.AsyncExitStack()
        url = self._call(self._start(), 120)
        self.client = vf.TrainClientConfig(
            base_url=f"{url}/v1",
            api_key_var="RLVR_VF_NO_KEY",
            renderer=renderer,
            renderer_model_name=self._tokdir,
        )
        self._vf = vf

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> str:
        url = await self.server.start()
        self._stack.push_async_callback(self.server.stop)
        await self._stack.enter_async_context(self.loaded.env.serving())
        return url

    def play(
        self, policy: Any, tasks: list[Any], keys: list[int], temperature: float, top_p: float
    ) -> list[Row]:
        """One episode per task, all at once; episode i samples with key ``keys[i]``."""
        vf = self._vf
        if len(keys) != len(tasks):
            raise ValueError(f"{len(tasks)} episodes but {len(keys)} sampling keys")
        self.server.begin(keys)
        ctxs = [
            vf.ModelContext(
                model="rlvr-policy",
                client=self.client,
                sampling=vf.SamplingConfig(
                    temperature=temperature, top_p=top_p, max_tokens=self.max_turn_tokens,
                    rlvr_episode=i,
                ),
            )
            for i in range(len(tasks))
        ]  # fmt: skip
        t0 = time.perf_counter()
        done = asyncio.run_coroutine_threadsafe(self._play_all(tasks, ctxs), self.loop)
        deadline = time.monotonic() + self.timeout_s
        self.server.serve(self.engine, policy, self.tokenizer.eos_token_id, deadline)
        episodes = done.result(timeout=max(deadline - time.monotonic(), 0) + 60)
        self._last_episodes = episodes
        self.seconds = {
            "generate": self.server.seconds,
            "verify": time.perf_counter() - t0 - self.server.seconds,
        }
        return [self._row(i, t, e) for i, (t, e) in enumerate(zip(tasks, episodes, strict=True))]

    async def _play_all(self, tasks: list[Any], ctxs: list[Any]) -> list[Any]:
        async def one(task: Any, ctx: Any) -> Any:
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await self.loaded.env.run_slot(self.loaded.env.slots(task)[0], ctx)
            except TimeoutError:
                return f"the episode ran past env.options.episode_timeout_s={self.timeout_s:g}"
            except Exception as exc:  # noqa: BLE001 - an episode's failure is its own
                return f"{type(exc).__name__}: {exc}"
            finally:
                self.server.episode_done()

        return list(await asyncio.gather(*(one(t, c) for t, c in zip(tasks, ctxs, strict=True))))

    def _row(self, i: int, task: Any, episode: Any) -> Row:
        """Episode ``i`` as a training row, with what went wrong if anything did."""
        prompt_text = task.data.prompt_text if task.data.prompt is not None else ""
        fallback = self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"] or [self.pad]

        def failed(reason: str, turns: list[dict] | None = None) -> Row:
            return Row(fallback, fallback + [self.pad], [0] * (len(fallback) + 1),
                       [0.0] * (len(fallback) + 1), "", turns or [], False,
                       Verdict(0.0, "error", reason[:500]), {}, failure=reason)  # fmt: skip

        if isinstance(episode, str):
            return failed(episode)
        trainable = [t for t in episode.traces if t.agent.trainable]
        errors = [e.message for e in episode.errors] + [
            e.message for t in episode.traces for e in t.errors
        ]
        if not episode.ok or errors:
            return failed("; ".join(errors) or "the episode did not complete")
        if len(trainable) != 1:
            return failed(f"{len(trainable)} trainable traces in the episode (rlvr trains on one)")
        trace = trainable[0]
        turns = _turns(trace)
        calls = [c for c in self.server.records.get(i, []) if c.session == trace.id]
        if not calls:
            return failed("the policy was never called in this episode", turns)
        seq = calls[-1].prompt + calls[-1].completion
        model, logprobs = [0] * len(seq), [0.0] * len(seq)
        drift = None
        for k, c in enumerate(calls, start=1):
            a, b = len(c.prompt), len(c.prompt) + len(c.completion)
            if seq[:a] != c.prompt or seq[a:b] != c.completion:
                drift = f"call {k} of {len(calls)} is not a prefix of the last one (re-rendered)"
                break
            model[a:b] = [1] * (b - a)
            logprobs[a:b] = c.logprobs
        branches = trace.branches
        if drift is None and (
            len(branches) != 1
            or branches[0].token_ids != seq
            or [int(m) for m in branches[0].sampled_mask] != model
        ):
            drift = "the trace's token ids differ from the ids sampled"
        raw = trace.reward
        most = float(self.reward_max) if self.reward_max else reward_max(task)
        score, clipped = normalised(raw, 0.0, most)
        metrics = {
            f"env/{k}": (r.score if r is not None else math.nan) for k, r in trace.rewards.items()
        }
        metrics.update(
            {f"env/{k}": (v if v is not None else math.nan) for k, v in trace.metrics.items()}
        )
        metrics["env/reward"] = raw
        detail = json.dumps(
            {
                "reward": raw,
                "rewards": {k: (r.score if r else None) for k, r in trace.rewards.items()},
            },
            default=str,
        )
        return Row(
            calls[0].prompt, seq, model, logprobs, trace.last_reply, turns,
            not calls[-1].finished or trace.is_truncated, verdict_of(score, detail), metrics,
            drift=drift, clipped=clipped,
        )  # fmt: skip

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._stack.aclose(), 60)
        shutil.rmtree(self._tokdir, ignore_errors=True)


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The one event loop verifiers runs on in this process, on a daemon thread. One for the
    process, never closed: verifiers and renderers keep asyncio locks at module level, which
    bind to the first loop that uses them."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="rlvr-vf", daemon=True).start()
        return _LOOP


def _turns(trace: Any) -> list[dict]:
    """The episode turn by turn after the prompt, as rlvr's episodes record it."""
    out: list[dict] = []
    started = False
    for message in trace.messages:
        text = message.content if isinstance(message.content, str) else str(message.content or "")
        if message.role == "assistant":
            started = True
            out.append({"role": "model", "text": text})
        elif started and message.role in ("user", "tool"):
            out.append({"role": "env", "text": text})
    return out


class VerifiersSource:
    """``group_size`` verifiers episodes per problem, played together (a ``RolloutSource``)."""

    def __init__(
        self,
        runtime: VerifiersRuntime,
        group_size: int,
        temperature: float,
        top_p: float,
        max_failed_fraction: float,
    ) -> None:
        self.runtime, self.group_size = runtime, group_size
        self.temperature, self.top_p = temperature, top_p
        self.max_failed_fraction = max_failed_fraction
        self.max_tokens = runtime.server.max_model_len

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    def collect(self, policy: Any, examples: list[Example], keys: list[int]) -> Collected:
        import torch

        from rlvr.rollout.episodes import pack_episodes

        G = self.group_size
        tasks = [self.runtime.loaded.tasks[e.id] for e in examples for _ in range(G)]
        ep_keys = [sample_key(k, g) for k in keys for g in range(G)]
        rows = self.runtime.play(policy, tasks, ep_keys, self.temperature, self.top_p)
        device = next(policy.parameters()).device
        ro = pack_episodes(
            [r.prompt for r in rows], [r.seq for r in rows], [r.model for r in rows],
            [r.logprobs for r in rows], [r.text for r in rows], [r.turns for r in rows],
            [r.truncated for r in rows], G, self.temperature, self.runtime.pad, device,
        )  # fmt: skip
        verdicts, mask, counts = exclude_failed(
            [r.verdict for r in rows], ro.completion_mask, [r.failure for r in rows],
            [r.drift for r in rows], G, self.max_failed_fraction,
        )  # fmt: skip
        ro.completion_mask = mask
        ro.engine = self.engine.name
        if self.engine.version is not None:  # every call of the step sampled with these weights
            ro.versions = torch.full((len(ro),), self.engine.version, dtype=torch.long)
        counts["env/reward_clipped"] = float(sum(r.clipped for r in rows))
        names = sorted({k for r in rows for k in r.metrics})
        row_metrics = {k: [r.metrics.get(k, math.nan) for r in rows] for k in names}
        return Collected(ro, verdicts, dict(self.runtime.seconds), counts, row_metrics)

    def close(self) -> None:
        """The runtime lives for the run (evaluation shares it): ``envs.external.close_all``."""
