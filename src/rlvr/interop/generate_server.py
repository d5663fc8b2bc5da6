"""The token-level generate endpoint that verifiers' train client calls, served by rlvr's engine.

verifiers' ``TrainClient`` renders a conversation to token ids itself and posts them to a
vLLM-style ``POST /inference/v1/generate`` (``{"token_ids", "sampling_params"}`` in; sampled
``token_ids`` with their ``logprobs`` out), after asking ``GET /v1/models`` for the context
length. This module serves both routes on the episodes' event loop (aiohttp, which verifiers
already uses) and answers them from an ``rlvr.rollout.engines.Engine``: the requests of all
episodes in flight are decoded together, in one batch, on the caller's thread (the policy
and its thread pools stay where training runs them).

When a batch is decoded: as soon as every episode still playing is waiting on a model call
(the others have finished), as rlvr's own episode runner takes a turn of every episode at
once. A request waits at most ``max_wait_s`` for the rest, for environments whose agents call
the model concurrently.

Every request is tagged by the episode it belongs to (``rlvr_episode``, an extra sampling
field that verifiers forwards verbatim) and recorded with the exact ids it was sampled from
and the ids sampled: the record is what training checks the trace against (``records``).
Sampling is keyed per request: (the episode's key, its call number), as in
``rollout.episodes``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from rlvr.rollout.sampling import sample_key

SESSION_HEADER = "X-Session-ID"  # verifiers' session id: the trace the call belongs to


@dataclass
class Call:
    """One model call: the ids it was sampled from and the ids sampled (with their log-probs)."""

    session: str
    prompt: list[int]
    completion: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finished: bool = False


@dataclass
class _Pending:
    episode: int
    call: Call
    key: int
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[int, ...]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class GenerateServer:
    """``/inference/v1/generate`` and ``/v1/models`` over an engine (see the module doc)."""

    def __init__(self, model: str, max_model_len: int, max_wait_s: float = 2.0) -> None:
        self.model, self.max_model_len, self.max_wait_s = model, max_model_len, max_wait_s
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._keys: dict[int, int] = {}
        self._done = 0
        self.records: dict[int, list[Call]] = {}
        self.seconds = 0.0  # decoding time of the current round

    # -- the HTTP side (on the episodes' event loop) -------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/inference/v1/generate", self._generate)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _models(self, request: web.Request) -> web.Response:
        card = {"id": self.model, "object": "model", "max_model_len": self.max_model_len}
        return web.json_response({"object": "list", "data": [card]})

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        params = dict(body.get("sampling_params") or {})
        episode = params.get("rlvr_episode")
        prompt = [int(t) for t in body.get("token_ids") or []]
        if episode not in self._keys:
            return _error(
                400, f"this engine serves rlvr episodes only (no rlvr_episode tag): {params}"
            )
        budget = min(int(params.get("max_tokens") or 64), self.max_model_len - len(prompt))
        if budget <= 0:
            return _error(
                400,
                f"the prompt has {len(prompt)} tokens: no room left in "
                f"{self.max_model_len} (env.max_episode_tokens)",
            )
        temperature = params.get("temperature")
        loop = asyncio.get_running_loop()
        call = Call(request.headers.get(SESSION_HEADER, ""), prompt)
        with self._cond:
            calls = self.records.setdefault(episode, [])
            calls.append(call)
            pending = _Pending(
                episode,
                call,
                sample_key(self._keys[episode], len(calls)),
                budget,
                1.0 if temperature is None else float(temperature),
                float(params.get("top_p") or 1.0),
                tuple(int(t) for t in params.get("stop_token_ids") or ()),
                loop.create_future(),
                loop,
            )
            self._pending.append(pending)
            self._cond.notify_all()
        error = await pending.future
        if error:
            return _error(500, error)
        content = [{"token": f"token_id:{t}", "logprob": lp} for t, lp in
                   zip(call.completion, call.logprobs, strict=True)]  # fmt: skip
        choice = {
            "index": 0,
            "token_ids": call.completion,
            "logprobs": {"content": content},
            "finish_reason": "stop" if call.finished else "length",
        }
        return web.json_response(
            {
                "request_id": f"rlvr-{episode}-{len(self.records[episode])}",
                "prompt_token_ids": prompt,
                "choices": [choice],
            }  # fmt: skip
        )

    # -- the decoding side (on the caller's thread) --------------------------------------------
    def begin(self, keys: list[int]) -> None:
        """A new round of episodes: episode i samples with key ``keys[i]``."""
        with self._cond:
            self._keys = dict(enumerate(keys))
            self.records, self._pending, self._done = {}, [], 0
            self.seconds = 0.0

    def episode_done(self) -> None:
        """Called (from the event loop) as each episode of the round ends, however it ends."""
        with self._cond:
            self._done += 1
            self._cond.notify_all()

    def serve(self, engine: Any, policy: Any, eos: int | None, deadline: float) -> None:
        """Decode the round's model calls in batches until every episode has ended, or until
        ``deadline`` (``time.monotonic()``); calls still waiting then fail."""
        total = len(self._keys)
        while True:
            with self._cond:
                last_change = time.monotonic()
                seen = (self._done, len(self._pending))
                while True:
                    if self._done >= total:
                        return
                    if self._pending and self._done + len(self._pending) >= total:
                        break
                    now = time.monotonic()
                    if now >= deadline:
                        self._fail_pending("the episode ran past env.options.episode_timeout_s")
                        return
                    if (self._done, len(self._pending)) != seen:
                        seen, last_change = (self._done, len(self._pending)), now
                    if self._pending and now - last_change >= self.max_wait_s:
                        break
                    self._cond.wait(timeout=min(0.05, max(deadline - now, 0.001)))
                batch, self._pending = self._pending, []
            t0 = time.perf_counter()
            try:
                self._decode(engine, policy, eos, batch)
            except Exception as exc:  # an engine failure fails these calls, not the run
                for p in batch:
                    p.loop.call_soon_threadsafe(_resolve, p.future, f"engine error: {exc}")
            self.seconds += time.perf_counter() - t0

    def _fail_pending(self, reason: str) -> None:
        for p in self._pending:
            p.loop.call_soon_threadsafe(_resolve, p.future, reason)
        self._pending = []

    def _decode(self, engine: Any, policy: Any, eos: int | None, batch: list[_Pending]) -> None:
        groups: dict[tuple, list[_Pending]] = {}
        for p in batch:
            groups.setdefault((p.max_tokens, p.temperature, p.top_p, p.stop), []).append(p)
        for (max_tokens, temperature, top_p, stop), members in groups.items():
            stop_ids = set(stop) or ({eos} if eos is not None else set())
            first_stop = stop[0] if stop else eos
            out = engine.sample(
                policy, [p.call.prompt for p in members], 1, max_tokens, first_stop,
                temperature, top_p, keys=[p.key for p in members],
            )  # fmt: skip
            for row, p in enumerate(members):
                n = int(out.lengths[row])
                ids = out.tokens[row, :n].tolist()
                cut = next((i + 1 for i, t in enumerate(ids) if t in stop_ids), None)
                p.call.finished = cut is not None
                n = cut or n
                p.call.completion = ids[:n]
                p.call.logprobs = [float(x) for x in out.logprobs[row, :n].tolist()]
                p.loop.call_soon_threadsafe(_resolve, p.future, "")


def _resolve(future: asyncio.Future, error: str) -> None:
    if not future.done():
        future.set_result(error)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "rlvr"}}, status=status)
