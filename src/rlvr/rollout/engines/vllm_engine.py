"""The ``vllm`` engine: a ``vllm.LLM`` in the learner's process (colocated), holding its own copy
of the policy's weights, replaced in place after every update.

What it does, and why:
- **In process, no weights on disk.** ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` and the ``uni``
  executor keep the engine in this process (``external_launcher`` when torch.distributed is
  already running, as TRL does under torchrun). Only the policy's ``config.json`` is written
  (to a temporary directory); vLLM starts with ``load_format="dummy"`` (random weights) and
  ``sync`` loads the real ones, so ``sample`` refuses until the first ``sync``.
- **Weights in place.** ``sync`` streams the policy's tensors under their Hugging Face names to
  vLLM's ``reload_weights`` (the layerwise reload: on CPU vLLM repacks every linear weight for
  oneDNN after loading and drops the original parameter, so loading into the model directly, as
  TRL 1.16's colocate path does, fails with ``'Parameter' object has no attribute
  'weight_loader'``), then drops the prefix cache. Tied embeddings: the output head's weight is
  sent under ``lm_head.weight`` too; vLLM's reload unties the two and, without it, kept the old
  head (mean |Δ log p| 0.41 per token, measured). A LoRA policy (PEFT) is sent merged:
  ``W + scale * B @ A`` per adapted layer, computed on the side (the policy is not touched).
  Merged rather than vLLM's LoRA adapters because vLLM loads adapters from files (one write per
  step), turns compilation off on CPU when LoRA is on, limits ranks and target modules, and
  adds its LoRA kernels to every token; a merged model is a plain model, with the plain
  model's (fp32: ~1e-6) engine/learner mismatch. The cost is sending every weight, not only
  the adapters.
- **Never stale.** ``sync`` records a fingerprint of the policy: each parameter's storage, its
  autograd version counter and a strided sample of its values. ``sample`` refuses
  (``StaleWeights``) when any of them moved. The sample is needed: AdamW's fused kernel (what
  rlvr's RL optimizer uses) updates parameters without bumping their version counter
  (measured), while ``load_state_dict`` and foreach optimizers bump it.
- **Tokens in, tokens out.** One request per continuation (``n=1``), its prompt as token ids
  (``TokensPrompt``), its rlvr sampling key as the request's seed; completions come back as ids
  (no detokenizer: ``skip_tokenizer_init``). The shared prompt of a group is computed once
  through prefix caching. Log-probs are vLLM's ``processed_logprobs``: those of the distribution
  it sampled from (temperature and top-p applied, the nucleus renormalised). The EOS token is
  part of the returned ids and counted in the length.
- **Seeds (measured, vLLM 0.32 CPU, fp32).** A request's tokens depend on its seed, prompt and
  the weights only: the same key gave the same completion alone, in a group of 16, and among 29
  requests with other prompts, lengths and seeds (top-p 1 and 0.9). vLLM draws a seeded
  request's noise from its own generator, so batch composition enters only through the logits'
  floating-point rounding, which can flip a near-tie; it did not at fp32 on CPU. The draws are
  not rlvr's (``rollout.sampling``): the same key samples different tokens in the two engines.
- **Memory.** CPU: an explicit KV cache (``rollout.vllm.kv_cache_gib``) and 32-token blocks (see
  ``VllmConfig``). GPU: ``gpu_memory_utilization`` and, with ``rollout.vllm.sleep``, vLLM's sleep
  mode (``sleep``/``wake`` around the update). Sleep mode is coded for the regular ``vllm``
  package and has not been run here (no GPU); on CPU both calls do nothing.
- **One engine per process.** Building one takes 5-60 s, so the engine is kept for the
  process and reused when the architecture (config), dtype, maximum length and settings agree;
  a new ``VllmEngine`` over it just syncs. Two live ``vllm.LLM`` in one process share global
  state, so building a different one shuts the old one down first.

The ``if __name__ == "__main__":`` guard: vLLM with its defaults starts its engine core in a
process of its own with ``spawn``, which re-imports the main module, so a script that builds
``vllm.LLM`` itself needs the guard. This engine starts nothing (in process): a script without
the guard built it and sampled (measured). Keep the guard all the same where a script may also
build vLLM with its defaults.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedModel

from rlvr.config import VllmConfig
from rlvr.rollout.engines.base import EngineError, Sampled, StaleWeights

INSTALL_HINT = (
    "vLLM is not installed: on a CPU machine run `make setup-vllm` (vLLM's CPU build into the "
    'project\'s .venv); on a GPU machine `pip install "rlvr[vllm]"`'
)
_FINGERPRINT_VALUES = 64  # values sampled per parameter for the stale check
_PROBE_TOKENS = 12  # the sequence each sync checks the engine's log-probs on
# mean |Δ log p| per probe token a sync may leave: fp32 gives ~1e-6 (measured), bf16 kernels differ
# by up to ~1e-2; a weight that did not arrive gave 0.4 (the tied head)
_SYNC_TOLERANCE = {torch.float32: 1e-3}
_SYNC_TOLERANCE_LOW_PRECISION = 5e-2


def _vllm():
    """Import vLLM (only here: the rest of rlvr never needs it), set up to run in process."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process
    # vLLM logs ~40 lines per start and warns of things an rlvr user cannot act on (LD_PRELOAD,
    # Triton, the chat template of the tokenizer it does not have); VLLM_LOGGING_LEVEL=INFO
    # shows them
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    try:
        import vllm
    except ImportError as e:
        raise EngineError(f"{INSTALL_HINT} ({e})") from None
    return vllm


def hf_weights(policy: PreTrainedModel) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's weights under their Hugging Face checkpoint names, as vLLM loads them.

    Every module's own parameters, so a tied output head appears under ``lm_head.weight`` as
    well as ``model.embed_tokens.weight`` (``named_parameters`` lists a shared tensor once).
    A PEFT LoRA layer gives its base weight plus each active, unmerged adapter's
    ``get_delta_weight`` (scale * B @ A), computed without touching the policy."""
    from rlvr.models.lora import is_peft

    model = policy.get_base_model() if is_peft(policy) else policy

    def walk(module: torch.nn.Module, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
        if hasattr(module, "get_delta_weight") and hasattr(module, "get_base_layer"):
            yield from _merged_lora(module, prefix)
            return
        if hasattr(module, "modules_to_save") and hasattr(module, "original_module"):
            trained = module.modules_to_save
            name = module.active_adapter
            name = name[0] if isinstance(name, list) else name
            use = trained[name] if not module.disable_adapters and name in trained else None
            yield from walk(use or module.original_module, prefix)
            return
        for name, p in module.named_parameters(recurse=False):
            yield prefix + name, p.detach()
        for name, child in module.named_children():
            yield from walk(child, f"{prefix}{name}.")

    with torch.no_grad():
        yield from walk(model, "")


def _merged_lora(layer: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    base = layer.get_base_layer()
    weight, bias = base.weight.detach(), getattr(base, "bias", None)
    bias = bias.detach() if bias is not None else None
    if not layer.disable_adapters:
        for name in layer.active_adapters:
            known = name in getattr(layer, "lora_A", {}) or name in getattr(
                layer, "lora_embedding_A", {}
            )
            if not known or name in layer.merged_adapters:
                continue
            weight = weight + layer.get_delta_weight(name).to(weight.dtype)
            if getattr(layer, "lora_bias", {}).get(name):
                bias = bias + layer.lora_B[name].bias * layer.scaling[name]
    yield prefix + "weight", weight
    if bias is not None:
        yield prefix + "bias", bias


def _check_lora(policy: torch.nn.Module) -> None:
    """Plain LoRA only: a variant (DoRA, ...) merges otherwise than ``W + scale * B @ A``."""
    for name, module in policy.named_modules():
        if getattr(module, "lora_variant", None):
            raise EngineError(
                "rollout.engine: vllm sends LoRA policies merged and supports plain LoRA only; "
                f"{name} uses a LoRA variant (DoRA or similar): use rollout.engine: rlvr"
            )


def _probe_gap(llm: Any, policy: PreTrainedModel) -> float:
    """Mean |log p| gap between engine and policy over a fixed probe sequence's tokens (vLLM's
    prompt log-probs against the policy's forward): a cheap proof, at every sync, that every
    weight arrived. It costs one forward of ``_PROBE_TOKENS`` tokens on each side."""
    vllm = _vllm()
    from vllm.inputs import TokensPrompt

    vocab = policy.config.vocab_size
    ids = [(7 + 7919 * i) % vocab for i in range(_PROBE_TOKENS)]
    params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
    out = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)[0]
    steps = zip(out.prompt_logprobs[1:], ids[1:], strict=True)
    engine = torch.tensor([step[t].logprob for step, t in steps])
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            device = next(policy.parameters()).device
            logits = policy(torch.tensor([ids], device=device)).logits[0, :-1].float()
    finally:
        policy.train(was_training)
    learner = torch.log_softmax(logits, -1).gather(
        -1, torch.tensor(ids[1:], device=device)[:, None]
    )
    return float((learner.squeeze(-1).cpu() - engine).abs().mean())


@dataclass
class Fingerprint:
    """What ``sample`` compares to decide that the policy is still the synced one."""

    storage: list[tuple[int, int]]  # (data_ptr, version counter) per parameter
    values: torch.Tensor  # a strided sample of every parameter's values

    @staticmethod
    def of(policy: torch.nn.Module) -> Fingerprint:
        params = [p.detach() for p in policy.parameters()]
        picks = []
        for p in params:
            flat = p.reshape(-1)
            step = max(1, flat.numel() // _FINGERPRINT_VALUES)
            picks.append(flat[::step][:_FINGERPRINT_VALUES].float())
        values = torch.cat(picks).cpu() if picks else torch.zeros(0)
        return Fingerprint([(p.data_ptr(), p._version) for p in params], values)

    def same(self, other: Fingerprint) -> bool:
        return self.storage == other.storage and torch.equal(self.values, other.values)


@dataclass
class _Shared:
    """The process's ``vllm.LLM`` and what it was built for."""

    llm: Any
    key: str
    config_dir: tempfile.TemporaryDirectory
    max_model_len: int
    on_cpu: bool
    sleep_mode: bool
    owns_distributed: bool  # vLLM made this process's torch.distributed group (uni executor)
    owner: object | None = None  # the VllmEngine whose sync put the weights there
    asleep: bool = False
    broken: str | None = None  # why a failed sync left the engine unusable
    sync_gap: float | None = None  # the last sync's probe: mean |log p engine - log p policy|
    stats: dict[str, int] = field(default_factory=lambda: {"queries": 0, "hits": 0})


_shared: _Shared | None = None


def shutdown_shared() -> None:
    """Shut the process's engine down and free its memory (the next engine builds anew)."""
    global _shared
    if _shared is None:
        return
    held, _shared = _shared, None
    try:
        held.llm.llm_engine.engine_core.shutdown()
    finally:
        held.config_dir.cleanup()
        if held.owns_distributed:
            _release_distributed()
        del held
        gc.collect()


def _release_distributed() -> None:
    """Drop the one-process torch.distributed group vLLM made (else the next engine would take
    it for the learner's and join it as an external launcher)."""
    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    cleanup_dist_env_and_memory()


def budgets_of(max_new_tokens: int | list[int], n_prompts: int) -> list[int]:
    """One token budget per prompt (an episode's turn may have less room left than another's)."""
    if isinstance(max_new_tokens, int):
        return [max_new_tokens] * n_prompts
    if len(max_new_tokens) != n_prompts:
        raise ValueError(f"{len(max_new_tokens)} token budgets for {n_prompts} prompts")
    return list(max_new_tokens)


class VllmEngine:
    """A colocated vLLM engine for ``policy``'s architecture (``base.Engine``).

    ``max_model_len``: the longest prompt + completion the run asks for (the prompt and
    completion lengths of the run; ``settings.max_model_len`` overrides it). The engine holds
    random weights until the first ``sync``; ``sample`` refuses before it."""

    name = "vllm"

    def __init__(
        self, policy: PreTrainedModel, max_model_len: int, settings: VllmConfig | None = None
    ) -> None:
        self.settings = settings or VllmConfig()
        self.version: int | None = None
        self.reason = "rollout.engine: vllm"
        self._fingerprint: Fingerprint | None = None
        self._shared = _engine_for(policy, self.settings.max_model_len or max_model_len, self)
        self.max_model_len = self._shared.max_model_len

    # --- weights -------------------------------------------------------------------------

    def sync(self, policy: PreTrainedModel, version: int) -> None:
        """Load ``policy``'s current weights into the engine as ``version``; raises EngineError
        (and leaves the engine refusing to sample) when vLLM did not take all of them."""
        shared = self._shared
        if shared is None:
            raise EngineError("the vLLM engine was closed")
        if shared.broken:
            raise EngineError(shared.broken)
        if shared.asleep:
            self.wake()
        self._fingerprint, self.version, shared.owner = None, None, None
        _check_lora(policy)  # before streaming: a refusal halfway would break the engine
        sent: list[str] = []

        def weights() -> Iterator[tuple[str, torch.Tensor]]:
            for name, tensor in hf_weights(policy):
                sent.append(name)
                yield name, tensor

        try:
            shared.llm.collective_rpc(
                "reload_weights",
                kwargs={"weights_iterator": weights(), "is_checkpoint_format": True},
            )
        except Exception as e:  # vLLM raises ValueError/KeyError/AttributeError here
            # vLLM's layerwise reload stops halfway and leaves layers unprocessed: every
            # later reload fails too (measured), so the next engine is built afresh
            shared.broken = (
                f"weight sync to vLLM failed after {len(sent)} tensors (last: "
                f"{sent[-1] if sent else 'none'}): {type(e).__name__}: {e}; the engine "
                "cannot take weights any more (a new VllmEngine builds a fresh one)"
            )
            raise EngineError(shared.broken) from e
        gap = _probe_gap(shared.llm, policy)
        shared.llm.reset_prefix_cache()  # after the probe: nothing of older weights stays
        shared.sync_gap = gap
        dtype = next(policy.parameters()).dtype
        tolerance = _SYNC_TOLERANCE.get(dtype, _SYNC_TOLERANCE_LOW_PRECISION)
        if gap > tolerance:
            raise EngineError(
                f"after the weight sync the vLLM engine's log-probs differ from the policy's by "
                f"{gap:.2e} per token on a probe sequence (more than {tolerance}): some "
                "weights did not arrive (a name vLLM maps differently, a tied or stacked "
                "weight); the engine refuses to sample"
            )
        self._fingerprint = Fingerprint.of(policy)
        self.version, shared.owner = version, self

    def prepare(self, policy: PreTrainedModel) -> None:
        """Sample with ``policy`` next (a checkpoint's evaluation, a stage's model): sync when
        the engine does not hold its current weights, keeping the version."""
        fresh = self._fingerprint is not None and self._shared is not None
        fresh = fresh and self._shared.owner is self and not self._shared.asleep
        if not (fresh and self._fingerprint.same(Fingerprint.of(policy))):
            self.sync(policy, self.version if self.version is not None else 0)

    def _check_fresh(self, policy: PreTrainedModel) -> None:
        if self._shared is None:
            raise EngineError("the vLLM engine was closed")
        if self._shared.asleep:
            raise EngineError("the vLLM engine is asleep: call wake() and sync() first")
        if self._fingerprint is None or self._shared.owner is not self:
            raise StaleWeights(
                "the vLLM engine does not hold this policy's weights (never synced, a failed "
                "sync, or another engine synced since): call sync(policy, version) first"
            )
        if not self._fingerprint.same(Fingerprint.of(policy)):
            raise StaleWeights(
                f"the policy changed since the vLLM engine's last sync (version {self.version}): "
                "call sync(policy, version) after every update"
            )

    # --- sampling ------------------------------------------------------------------------

    def sample(
        self,
        policy: PreTrainedModel,
        prompts: list[list[int]],
        group_size: int,
        max_new_tokens: int | list[int],
        eos: int | None,
        temperature: float,
        top_p: float = 1.0,
        keys: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Sampled:
        self._check_fresh(policy)
        n = len(prompts) * group_size
        budgets = budgets_of(max_new_tokens, len(prompts))
        for i, (prompt, budget) in enumerate(zip(prompts, budgets, strict=True)):
            if not prompt:
                raise EngineError(f"prompt {i} is empty: vLLM needs at least one token")
            if len(prompt) + budget > self.max_model_len:
                raise EngineError(
                    f"prompt {i} has {len(prompt)} tokens; with max_new_tokens {budget} "
                    f"that is more than the vLLM engine's max_model_len {self.max_model_len}: "
                    "raise rollout.vllm.max_model_len (or shorten the prompt / "
                    "rollout.max_new_tokens)"
                )
        if keys is not None and len(keys) != n:
            raise ValueError(f"{len(keys)} keys for {n} continuations")
        if keys is None:  # one seed per request, drawn from the caller's stream
            device = generator.device if generator is not None else "cpu"
            keys = torch.randint(0, 2**31 - 1, (n,), generator=generator, device=device).tolist()

        vllm = _vllm()
        from vllm.inputs import TokensPrompt

        def params(seed: int, budget: int) -> Any:
            return vllm.SamplingParams(
                n=1,
                temperature=temperature,
                top_p=top_p if temperature > 0 else 1.0,
                max_tokens=budget,
                seed=int(seed),
                logprobs=0,  # the sampled token's own log-prob only
                ignore_eos=True,  # the model config's EOS is not ours to stop at...
                stop_token_ids=[eos] if eos is not None else None,  # ...the caller's is
                detokenize=False,
            )

        requests = [
            TokensPrompt(prompt_token_ids=list(p)) for p in prompts for _ in range(group_size)
        ]
        row_budgets = [b for b in budgets for _ in range(group_size)]
        sampling = [params(k, b) for k, b in zip(keys, row_budgets, strict=True)]
        outputs = self._shared.llm.generate(requests, sampling, use_tqdm=False)
        width = max(row_budgets, default=0)
        tokens = torch.zeros((n, width), dtype=torch.long)
        logprobs = torch.zeros((n, width), dtype=torch.float32)
        lengths = torch.zeros(n, dtype=torch.long)
        finished = torch.zeros(n, dtype=torch.bool)
        stats = self._shared.stats
        for row, out in enumerate(outputs):
            done = out.outputs[0]
            ids = list(done.token_ids)
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            logprobs[row, : len(ids)] = torch.tensor(
                [step[t].logprob for step, t in zip(done.logprobs, ids, strict=True)]
            )
            lengths[row] = len(ids)
            finished[row] = eos is not None and bool(ids) and ids[-1] == eos
            stats["queries"] += len(out.prompt_token_ids)
            stats["hits"] += out.num_cached_tokens or 0
        device = next(policy.parameters()).device
        return Sampled(
            tokens.to(device), lengths.to(device), finished.to(device), logprobs.to(device)
        )

    def stats(self) -> dict[str, float]:
        """Prefix caching since the last call: the share of prompt tokens vLLM took from its
        cache (each request's ``num_cached_tokens`` over its prompt length: the same count as
        vLLM's ``prefix_cache_hits / prefix_cache_queries`` metrics, without its process-wide
        Prometheus registry)."""
        if self._shared is None:
            return {}
        counts = self._shared.stats
        queries, hits = counts["queries"], counts["hits"]
        counts["queries"] = counts["hits"] = 0
        out = {}
        if self._shared.sync_gap is not None:
            out["rollout/weight_sync_check"] = self._shared.sync_gap
        if queries:
            out["rollout/prefix_cache_hit_rate"] = hits / queries
            out["rollout/prompt_tokens"] = float(queries)
            out["rollout/cached_prompt_tokens"] = float(hits)
        return out

    # --- GPU memory around the update --------------------------------------------------------

    def sleep(self) -> None:
        """GPU with ``rollout.vllm.sleep``: free the engine's weights and KV cache for the
        update (vLLM sleep level 2: the weights are dropped, not copied out, since the next
        ``sync`` replaces them anyway). A no-op on CPU or with sleep off. Not run here (no GPU)."""
        shared = self._shared
        if shared is None or not shared.sleep_mode or shared.asleep:
            return
        shared.llm.sleep(level=2)
        shared.asleep, shared.owner, self._fingerprint = True, None, None

    def wake(self) -> None:
        """Take the GPU memory back (weights and KV cache); ``sync`` must follow."""
        shared = self._shared
        if shared is None or not shared.asleep:
            return
        shared.llm.wake_up()
        shared.asleep = False

    def close(self) -> None:
        """Let go of the engine. The process keeps the ``vllm.LLM`` for the next engine of the
        same shape (``shutdown_shared`` frees it)."""
        if self._shared is not None and self._shared.owner is self:
            self._shared.owner = None
        self._shared, self._fingerprint = None, None


# --- building (or reusing) the process's engine ---------------------------------------------


def _engine_key(config: Any, dtype: torch.dtype, max_model_len: int, s: VllmConfig) -> str:
    arch = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("_name_or_path", "transformers_version", "torch_dtype", "dtype")
    }
    knobs = s.model_dump(exclude={"max_model_len"})
    return json.dumps([arch, str(dtype), max_model_len, knobs], sort_keys=True, default=str)


def _engine_for(policy: PreTrainedModel, max_model_len: int, engine: VllmEngine) -> _Shared:
    global _shared
    from rlvr.models.lora import is_peft

    model = policy.get_base_model() if is_peft(policy) else policy
    config, dtype = model.config, next(model.parameters()).dtype
    key = _engine_key(config, dtype, max_model_len, engine.settings)
    if _shared is not None and _shared.key == key and not _shared.broken:
        _shared.owner = None  # weights of whoever synced last: the new engine must sync
        _shared.llm.reset_prefix_cache()
        return _shared
    vllm = _vllm()
    from vllm.platforms import current_platform

    _check_supported(config, max_model_len, current_platform.is_cpu())
    shutdown_shared()  # two live engines in one process share vLLM's global state
    _shared = _build(vllm, model, config, dtype, max_model_len, engine.settings, key)
    return _shared


def _check_supported(config: Any, max_model_len: int, on_cpu: bool) -> None:
    """Refuse, before anything is built, what vLLM would reject with a less helpful message."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_model_len > limit:
        raise EngineError(
            f"the vLLM engine's max_model_len {max_model_len} is more than the model's "
            f"max_position_embeddings {limit}: lower rollout.vllm.max_model_len (or the run's "
            "prompt and completion lengths)"
        )
    heads = getattr(config, "num_attention_heads", 0) or 1
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if on_cpu:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        supported = CPUAttentionBackend.get_supported_head_sizes()
        if head_dim not in supported:
            raise EngineError(
                f"vLLM's CPU attention supports head sizes {supported}; this model's is "
                f"{head_dim} (hidden_size / num_attention_heads): use rollout.engine: rlvr"
            )


def _build(vllm, model, config, dtype, max_model_len, s: VllmConfig, key: str) -> _Shared:
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    config_dir = tempfile.TemporaryDirectory(prefix="rlvr-vllm-")
    written = type(config).from_dict(config.to_dict())
    written.architectures = [type(model).__name__]
    written.save_pretrained(config_dir.name)  # the architecture only; weights come by sync
    sleep_mode = bool(s.sleep and not on_cpu)
    learner_distributed = _distributed()  # before vLLM makes a group of its own
    eager = s.eager if s.eager is not None else on_cpu
    args: dict[str, Any] = dict(
        model=config_dir.name,
        load_format="dummy",
        skip_tokenizer_init=True,
        dtype=dtype,
        max_model_len=max_model_len,
        enable_prefix_caching=True,
        logprobs_mode="processed_logprobs",
        generation_config="vllm",  # no sampling defaults from the model's directory
        enforce_eager=eager,
        distributed_executor_backend="external_launcher" if learner_distributed else "uni",
        enable_sleep_mode=sleep_mode,
    )
    if s.block_size or on_cpu:
        args["block_size"] = s.block_size or 32
    if on_cpu:
        args["kv_cache_memory_bytes"] = int(s.kv_cache_gib * 2**30)
    else:
        args["gpu_memory_utilization"] = s.gpu_memory_utilization
    started = time.perf_counter()
    with _learner_state_kept():
        try:
            llm = vllm.LLM(**args)
        except Exception as e:
            config_dir.cleanup()
            if not learner_distributed:
                _release_distributed()
            raise EngineError(_start_failure(e, max_model_len, s, on_cpu)) from e
    logging.getLogger(__name__).info("vLLM engine started in %.1f s", time.perf_counter() - started)
    return _Shared(llm, key, config_dir, max_model_len, on_cpu, sleep_mode, not learner_distributed)


def _start_failure(e: Exception, max_model_len: int, s: VllmConfig, on_cpu: bool) -> str:
    """Why the engine did not start, and which setting to change."""
    text = f"{type(e).__name__}: {e}"
    memory = "rollout.vllm.kv_cache_gib" if on_cpu else "rollout.vllm.gpu_memory_utilization"
    if "KV cache is needed" in text or "maximum model length" in text:
        why = (
            f"its KV cache cannot hold one sequence of max_model_len {max_model_len}: raise "
            f"{memory} or lower rollout.vllm.max_model_len"
        )
    elif "No available memory for the cache blocks" in text:
        why = f"the KV cache got no memory: raise {memory}"
    elif "Available memory" in text or "out of memory" in text.lower():
        why = f"not enough free memory for the KV cache ({memory}): lower it"
    elif "dtype" in text.lower():
        why = "the policy's dtype is not supported by this vLLM build: set model.dtype"
    else:
        why = "see vLLM's message below; the engine's settings are rollout.vllm.*"
    return f"the vLLM engine did not start: {why}.\n{text}"


@contextmanager
def _learner_state_kept():
    """vLLM's start seeds the process's RNGs and, on CPU, replaces ``torch.set_num_threads``
    with a no-op; in the learner's process both belong to rlvr, so both come back after it."""
    import numpy as np

    states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)


def _distributed() -> bool:
    """Under torchrun the learner's process group exists; vLLM then joins it (TRL's way)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()
