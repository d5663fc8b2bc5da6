"""Multi-turn rollouts: the model and an environment take turns, all episodes of a step together.

An episode is one append-only token sequence: the prompt, the model's first turn, the
environment's reply, the model's next turn, ... . The model's tokens are appended exactly as
sampled (never decoded and re-encoded: the text is decoded only to hand it to the environment),
with loss mask 1 and their sampling log-probs; each reply is encoded once (``TurnCodec``) and
appended with mask 0: no loss, no KL, no entropy, no length credit. So the update sees precisely
the tokens the policy produced, in the context it produced them in.

Per turn, every unfinished episode is continued in one batched decode (the fast path and its
per-core shards, as for single-turn rollouts; each turn re-reads its episode's tokens as the
prompt), then every environment steps at once on a thread pool (their sandbox calls wait on
other processes). Finished episodes leave the batch. An episode ends on a model turn: when the
environment says done, after ``max_turns``, when a turn runs out of tokens (``truncated``), or
when the next reply would not leave room for another turn in ``max_episode_tokens``
(``truncated`` too).

The result is a ``Rollouts`` batch like any other: a prompt and one long completion per row, so
the packed update and the loss need nothing new.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.envs.base import Env, Turn
from rlvr.rollout.engines import Engine, NativeEngine
from rlvr.rollout.generate import Rollouts, encode_prompts
from rlvr.rollout.prompts import format_prompt, pad_id
from rlvr.rollout.sampling import sample_key
from rlvr.verifiers.base import Verdict

OBS_TAGS = ("<obs>", "</obs>")  # atomic tokens of the embedded tokenizer built for environments
_MARK = "\x00rlvr-turn\x00"  # stands for a model turn's text in template renderings


@dataclass(frozen=True)
class EpisodeLimits:
    max_turns: int = 2
    max_turn_tokens: int = 48
    max_episode_tokens: int = 192


class TurnCodec:
    """Token ids of the environment's side of an episode: the first prompt, and each reply.

    With a chat template a reply is the template's own delta for a user turn after an
    assistant turn (its closing text, the user turn, the next generation prompt), so the model
    sees the format it was tuned on. The model's turn ends with its EOS token as sampled; when
    the template closes an assistant turn with more than that token (Qwen: ``<|im_end|>\\n``),
    the rest starts the reply. Without a template (the embedded model, base models) a reply is
    ``<obs>text</obs>``.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        system_prompt: str | None = None,
        use_chat_template: bool | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.chat = has_template if use_chat_template is None else use_chat_template
        self._reply_frame = self._template_frame() if self.chat else None

    def prompt_text(self, prompt: str) -> str:
        return format_prompt(self.tokenizer, prompt, self.system_prompt, self.chat)

    def prompt_ids(self, prompt: str) -> list[int]:
        ids, _ = encode_prompts(self.tokenizer, [self.prompt_text(prompt)], torch.device("cpu"))
        return ids[0].tolist()

    def reply_text(self, observation: str) -> str:
        if self._reply_frame is None:
            return f"{OBS_TAGS[0]}{observation}{OBS_TAGS[1]}"
        before, after = self._reply_frame
        return before + observation + after

    def reply_ids(self, observation: str) -> list[int]:
        return self.tokenizer(self.reply_text(observation), add_special_tokens=False)["input_ids"]

    def _template_frame(self) -> tuple[str, str]:
        """The text around a user turn that follows an assistant turn, from two renderings of
        the template that differ only by that turn."""
        render = self.tokenizer.apply_chat_template
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        base = [*head, {"role": "user", "content": "u"}, {"role": "assistant", "content": _MARK}]
        turn = [*base, {"role": "user", "content": _MARK}]
        a = render(base, tokenize=False)
        b = render(turn, tokenize=False, add_generation_prompt=True)
        if not b.startswith(a):
            raise ValueError(
                "the chat template re-renders earlier turns when a turn is added (e.g. it drops "
                "past reasoning); multi-turn episodes need a template that only appends"
            )
        closing = a[a.rindex(_MARK) + len(_MARK) :]
        eos = self.tokenizer.eos_token or ""
        if eos and closing.startswith(eos):
            closing = closing[len(eos) :]  # the model's own EOS token already closed its turn
        before, _, after = b[len(a) :].partition(_MARK)
        return closing + before, after


@dataclass
class _Episode:
    env: Env
    prompt: list[int]
    ids: list[int]
    model: list[int]  # 1 where the model produced the token
    logprobs: list[float]
    turns: list[dict]
    truncated: bool = False


class EpisodeRunner:
    """Runs batches of episodes; holds the thread pool the environments step on."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        codec: TurnCodec,
        limits: EpisodeLimits,
        workers: int = 2,
        engine: Engine | None = None,
    ) -> None:
        """``engine``: what samples each turn (rlvr's own decoders by default); each turn
        continues the episode's token ids, so an engine with a prefix cache (vLLM) recomputes
        nothing of the earlier turns."""
        self.tokenizer, self.codec, self.limits = tokenizer, codec, limits
        self.engine = engine or NativeEngine(pad_id(tokenizer))
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="rlvr-env")
        self.seconds = {"generate": 0.0, "verify": 0.0}

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    @torch.no_grad()
    def run(
        self,
        model: PreTrainedModel,
        envs: list[Env],
        group_size: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        keys: list[int] | None = None,
    ) -> tuple[Rollouts, list[Verdict]]:
        """Play one episode per environment (``envs`` in groups of ``group_size`` consecutive
        environments on the same problem) and return the batch and each episode's verdict.

        ``keys`` (one per group, repeated for each of its environments) make the sampling keyed:
        episode g of a group samples turn t with key (group key, g, t); else ``generator``."""
        self.seconds = {"generate": 0.0, "verify": 0.0}
        tok, lim = self.tokenizer, self.limits
        device = next(model.parameters()).device
        eos = tok.eos_token_id
        pad = pad_id(tok)
        prompts = list(self.pool.map(lambda env: env.reset(), envs))
        episodes = []
        for env, prompt in zip(envs, prompts, strict=True):
            ids = self.codec.prompt_ids(prompt)
            if len(ids) >= lim.max_episode_tokens:
                raise ValueError(
                    f"a prompt of {len(ids)} tokens leaves no room for a turn in "
                    f"max_episode_tokens={lim.max_episode_tokens} (env.max_episode_tokens)"
                )
            episodes.append(_Episode(env, ids, list(ids), [0] * len(ids), [0.0] * len(ids), []))
        active = list(range(len(episodes)))
        for turn in range(1, lim.max_turns + 1):
            if not active:
                break
            budgets = {
                i: min(lim.max_turn_tokens, lim.max_episode_tokens - len(episodes[i].ids))
                for i in active
            }
            t0 = time.perf_counter()
            if turn == 1 and group_size > 1:  # each prompt once, its cache copied G times
                firsts = active[::group_size]
                for i in firsts:
                    group = episodes[i : i + group_size]
                    if any(e.ids != group[0].ids for e in group):
                        raise ValueError("episodes of a group must start from the same prompt")
                rows, per_row = firsts, group_size
            else:
                rows, per_row = active, 1
            prefixes = [episodes[i].ids for i in rows]
            turn_keys = None
            if keys is not None:
                turn_keys = [sample_key(keys[i], i % group_size, turn) for i in active]
            out = self.engine.sample(
                model, prefixes, per_row, [budgets[i] for i in rows], eos, temperature, top_p,
                turn_keys, generator,
            )  # fmt: skip
            self.seconds["generate"] += time.perf_counter() - t0
            texts = []
            for row, i in enumerate(active):
                ep, budget = episodes[i], budgets[i]
                n = int(out.lengths[row])
                finished = bool(out.finished[row]) and n <= budget
                n = min(n, budget)
                new = out.tokens[row, :n].tolist()
                ep.ids += new
                ep.model += [1] * n
                ep.logprobs += out.logprobs[row, :n].tolist()
                ep.truncated = not finished
                text = tok.decode(new, skip_special_tokens=True)
                ep.turns.append({"role": "model", "text": text})
                texts.append(text)
            t1 = time.perf_counter()
            turns = [(episodes[i].env, text) for i, text in zip(active, texts, strict=True)]
            replies: list[Turn] = list(self.pool.map(lambda et: et[0].step(et[1]), turns))
            self.seconds["verify"] += time.perf_counter() - t1
            still = []
            for i, reply in zip(active, replies, strict=True):
                ep = episodes[i]
                if ep.truncated or reply.done or turn == lim.max_turns:
                    continue
                obs = self.codec.reply_ids(reply.observation)
                if len(ep.ids) + len(obs) + 1 > lim.max_episode_tokens:
                    ep.truncated = True  # no room for another turn: end on the model's turn
                    continue
                ep.ids += obs
                ep.model += [0] * len(obs)
                ep.logprobs += [0.0] * len(obs)
                ep.turns.append({"role": "env", "text": reply.observation})
                still.append(i)
            active = still
        verdicts = [ep.env.verdict() for ep in episodes]
        return self._batch(episodes, group_size, temperature, pad, device), verdicts

    def _batch(
        self,
        episodes: list[_Episode],
        group_size: int,
        temperature: float,
        pad: int,
        device: torch.device,
    ) -> Rollouts:
        ro = pack_episodes(
            [e.prompt for e in episodes], [e.ids for e in episodes], [e.model for e in episodes],
            [e.logprobs for e in episodes],
            [next(t["text"] for t in reversed(e.turns) if t["role"] == "model") for e in episodes],
            [e.turns for e in episodes], [e.truncated for e in episodes], group_size,
            temperature, pad, device,
        )  # fmt: skip
        ro.engine = self.engine.name
        if self.engine.version is not None:  # the weights every turn was sampled with
            ro.versions = torch.full((len(ro),), self.engine.version, dtype=torch.long)
        return ro


def pack_episodes(
    prompts: list[list[int]],
    seqs: list[list[int]],
    model: list[list[int]],
    logprobs: list[list[float]],
    texts: list[str],
    turns: list[list[dict]],
    truncated: list[bool],
    group_size: int,
    temperature: float,
    pad: int,
    device: torch.device,
) -> Rollouts:
    """Episodes as one ``Rollouts`` batch: each row its prompt (left-padded) then the rest of
    its sequence (right-padded); ``model`` (1 where the model produced the token) and the
    sampling ``logprobs`` run over the whole sequence, prompt included."""
    plen = max(len(p) for p in prompts)
    width = max(len(s) - len(p) for s, p in zip(seqs, prompts, strict=True))
    n = len(seqs)
    ids = torch.full((n, plen + width), pad, dtype=torch.long)
    attention = torch.zeros((n, plen + width), dtype=torch.long)
    model_mask = torch.zeros((n, width))
    behaviour = torch.zeros((n, width))
    for r, (prompt, seq) in enumerate(zip(prompts, seqs, strict=True)):
        p, c = len(prompt), len(seq) - len(prompt)
        ids[r, plen - p : plen + c] = torch.tensor(seq)
        attention[r, plen - p : plen + c] = 1
        model_mask[r, :c] = torch.tensor(model[r][p:], dtype=torch.float32)
        behaviour[r, :c] = torch.tensor(logprobs[r][p:])
    return Rollouts(
        input_ids=ids.to(device),
        attention_mask=attention.to(device),
        completion_mask=model_mask.to(device),
        prompt_len=plen,
        texts=list(texts),
        truncated=torch.tensor(truncated, device=device),
        group_size=group_size,
        temperature=temperature if temperature > 0 else 1.0,
        logprobs=behaviour.to(device),
        turns=list(turns),
    )
