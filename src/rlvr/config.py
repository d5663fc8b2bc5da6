"""Run configuration: one pydantic section per concern, composed into ``RunConfig``.

Each module receives only its own section. Unknown keys are errors (a typo must not silently
fall back to a default), and every field can be set from YAML or from the command line
(``-o rl.steps=100``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    path: str | None = Field(
        None, description="local HF model directory; None builds the embedded tiny model"
    )
    hidden_size: int = Field(128, gt=0, description="embedded model only")
    num_layers: int = Field(4, gt=0, description="embedded model only")
    num_heads: int = Field(4, gt=0, description="embedded model only")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    gradient_checkpointing: bool = False
    threads: int | None = Field(None, gt=0, description="torch CPU threads; None = all cores")
    lora_r: int = Field(0, ge=0, description="LoRA rank (PEFT); 0 trains all weights")
    lora_alpha: int | None = Field(None, gt=0, description="LoRA alpha; None = 2 * lora_r")
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_target_modules: list[str] | str = Field(
        "all-linear", description="module names to adapt, or all-linear"
    )
    lora_merge: bool = Field(
        False, description="also save merged weights (checkpoints/<stage>-merged) with LoRA"
    )


class TaskConfig(Section):
    name: str = Field(
        "arithmetic",
        description="a registered task, e.g. arithmetic, humaneval, reasoning_gym:NAME",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the task"
    )
    verifier: str | None = Field(
        None, description="override the task's verifier (a registered name)"
    )
    system_prompt: str | None = None
    use_chat_template: bool | None = Field(None, description="None: when the tokenizer has one")
    allow_weak_verifier: bool = Field(
        False,
        description="train even if the verifier fails its self-test (known hacks must score 0); "
        "for demonstrations of reward hacking only",
    )


class EnvConfig(Section):
    """Multi-turn episodes: the model and an environment take turns (``rlvr.envs``)."""

    name: str | None = Field(
        None,
        description="a registered environment, e.g. code_feedback; vf:ID (a verifiers "
        "taskset); openenv:URL or openenv:PACKAGE (an OpenEnv server); None: single-turn "
        "completions of the task",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the environment"
    )
    max_turns: int = Field(2, ge=1, description="model turns per episode at most")
    max_turn_tokens: int = Field(48, ge=1, description="tokens per model turn at most")
    max_episode_tokens: int = Field(
        192, ge=8, description="tokens per episode (prompt, turns and replies) at most"
    )
    workers: int | None = Field(
        None, ge=1, description="environments stepping at once; None = CPU count"
    )
    blank_text: str = Field(
        "try again", description="the fixed reply of the blank-feedback control"
    )
    demo_blank_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="share of cold-start demonstrations whose replies are the blank text, so "
        "the blank-feedback control shows no unseen text",
    )
    max_failed_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="imported environments (vf:, openenv:): the run stops when more than this "
        "share of a step's episodes failed (environment, harness or reward raised, server "
        "unreachable) or drifted from the tokens sampled; failed episodes are never trained on",
    )

    @model_validator(mode="after")
    def _room_for_a_turn(self) -> EnvConfig:
        if self.max_turn_tokens >= self.max_episode_tokens:
            raise ValueError(
                f"env.max_turn_tokens ({self.max_turn_tokens}) must be below "
                f"env.max_episode_tokens ({self.max_episode_tokens})"
            )
        return self


class VllmConfig(Section):
    """The vLLM engine's settings (``rollout.engine: vllm``); defaults start on a 2-core, 24 GiB
    CPU machine and on one GPU shared with the learner.

    On CPU, vLLM otherwise reserves ``gpu_memory_utilization`` (0.92) of the machine's RAM and
    fails to start when less is free (measured: 21.66 GiB asked, 21.48 free): the KV cache is
    therefore always an explicit size there (``kv_cache_gib``)."""

    kv_cache_gib: float = Field(
        2.0,
        gt=0,
        description="CPU: GiB of KV cache (vLLM's kv_cache_memory_bytes; VLLM_CPU_KVCACHE_SPACE "
        "in the environment wins)",
    )
    gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        le=1,
        description="GPU: share of the GPU's memory for the engine's weights and KV cache (the "
        "learner, colocated, needs the rest)",
    )
    max_model_len: int | None = Field(
        None, ge=8, description="longest prompt + completion; None: from the run's lengths"
    )
    sleep: bool = Field(
        True, description="GPU: free the engine's memory during the update (vLLM sleep mode)"
    )
    eager: bool | None = Field(
        None,
        description="run the model without torch.compile; None: eager on CPU (starts in ~5 s "
        "instead of ~40 s; bench/engines.py on a loaded 2-core CPU: compiled 3.3x faster at 1M "
        "parameters, eager 1.3x faster at 21M), compiled with CUDA graphs on GPU",
    )
    block_size: int | None = Field(
        None,
        gt=0,
        description="tokens per KV-cache block, the unit prefix caching reuses; None: 32 on CPU "
        "(vLLM's 128 would cache nothing of a short prompt), vLLM's default on GPU",
    )


class RolloutConfig(Section):
    group_size: int = Field(8, ge=1, description="G: completions per prompt")
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    engine: Literal["auto", "rlvr", "vllm"] = Field(
        "auto",
        description="what samples rollouts: rlvr's own decoders, a colocated vLLM engine, or "
        "auto: vLLM where it is installed and measured faster for the model, else rlvr",
    )
    vllm: VllmConfig = Field(default_factory=VllmConfig)


class AlgorithmConfig(Section):
    advantage: str = Field("grpo", description="grpo | rloo | reinforce++")
    scale: Literal["group", "batch", "none"] = "group"
    eps: float = Field(1e-6, gt=0)
    epsilon_low: float = Field(0.2, gt=0, lt=1)
    epsilon_high: float = Field(0.2, gt=0)
    dual_clip: float | None = Field(None, gt=1)
    beta: float = Field(0.01, ge=0, description="KL weight; 0 loads no reference model")
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    ratio_level: Literal["token", "sequence"] = "token"
    aggregation: Literal["sequence", "token", "constant"] = "sequence"
    mu: int = Field(1, ge=1, description="policy updates per batch of rollouts")
    entropy_coef: float = Field(0.0, ge=0)
    mask_truncated: bool = False
    overlong_buffer: int = Field(
        0, ge=0, description="DAPO soft overlong penalty window (tokens); 0 = off"
    )
    overlong_penalty: float = Field(1.0, ge=0)
    dynamic_sampling: bool = False
    max_resample_rounds: int = Field(3, ge=0)
    importance_correction: str = Field(
        "truncate",
        description="how the loss corrects samples of an older policy (scale.mode: async): "
        "truncate (TIS: weight min(pi_old / mu, C)), mask (drop tokens whose weight exceeds "
        "C), none",
    )
    importance_clip: float = Field(
        2.0, gt=0, description="C, the truncation of the behaviour importance weight"
    )
    engine_correction: Literal["auto", "on", "off"] = Field(
        "auto",
        description="weight every token by pi_old / pi_engine (corrected as "
        "importance_correction says), the engine's log-probs as the behaviour policy: auto is "
        "on for an engine with kernels of its own (vllm), off for rlvr's decoders",
    )
    importance_sequence_band: float | None = Field(
        None,
        gt=1,
        description="also drop a whole sample whose geometric-mean weight pi_old / pi_behaviour "
        "leaves [1/band, band] (sequence-level rejection of mismatched samples); None = off",
    )


class SFTConfig(Section):
    examples: int = Field(600, ge=1, description="number of demonstrations (cold start)")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: int = Field(256, ge=8)
    fused: bool = Field(
        False,
        description="AdamW's fused kernel: the same update rule, rounded differently (faster on "
        "CPU); foreach when false",
    )
    save_every: int = Field(
        100,
        ge=0,
        description="checkpoint (checkpoints/<stage>-last) every N optimizer steps, from which "
        "--resume continues exactly (0 = only on Ctrl-C)",
    )


class RLConfig(Section):
    steps: int = Field(600, ge=0)
    prompts_per_step: int = Field(8, ge=1)
    lr: float = Field(5e-5, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    micro_batch_size: int = Field(64, ge=1, description="rows per forward/backward")
    eval_every: int = Field(
        100, ge=0, description="held-out pass@1 every N steps (0 = only at the end)"
    )
    save_every: int = Field(100, ge=0, description="checkpoint every N steps (0 = only at the end)")
    verifier_workers: int | None = Field(None, ge=1)


class RejectionConfig(Section):
    prompts: int = Field(1000, ge=1, description="training prompts to sample from")
    k: int = Field(4, ge=1, description="completions per prompt")
    temperature: float = Field(0.7, ge=0)


class FinalSFTConfig(SFTConfig):
    init: Literal["rl", "sft"] = Field(
        "rl", description="which checkpoint the final SFT starts from"
    )
    examples: int = Field(4000, ge=1, description="at most this many verified completions")
    epochs: int = 1
    lr: float = 1e-4


class EvalConfig(Section):
    heldout: int = Field(400, ge=1, description="held-out problems")
    verifier: str | None = Field(
        None, description="score held-out answers with this verifier; None: the reward's"
    )
    k: int = Field(8, ge=1, description="pass@k")
    samples: int = Field(8, ge=1, description="samples per problem for pass@k (n >= k)")
    temperature: float = Field(0.7, ge=0)

    @model_validator(mode="after")
    def _n_at_least_k(self) -> EvalConfig:
        if self.samples < self.k:
            raise ValueError(f"eval.samples ({self.samples}) must be >= eval.k ({self.k})")
        return self


class LoggingConfig(Section):
    trackers: list[str] = Field(
        default_factory=list, description="extra sinks: tensorboard, wandb, mlflow, trackio"
    )
    progress: bool = True
    samples_per_step: int = Field(
        2, ge=0, description="completions with verdicts kept per step for the report"
    )


# ---------------------------------------------------------------------------------------------
# The monitor (rlvr.monitor reads this section): which detectors watch a run, how tight they are,
# what an alert does. One small settings model per detector, each a field named after it, so that
# any threshold is one override away (``-o monitor.kl_blowup.factor=20``). A detector compares a
# metric with its baseline, the median of its first ``baseline_steps`` RL values, and alerts only
# after the condition has held for ``patience`` consecutive steps.
#
# Actions, per detector or per scanner flag: ``warn`` (the default) reports; ``filter`` gives the
# flagged samples no gradient; ``penalize`` scores them 0; ``stop`` ends the run after
# ``stop_after`` alerts. The training loop carries them out; this section only validates them.
#
# The scanners' flags are named here, with what each means, so that ``monitor.actions`` is
# validated without importing the monitor (rlvr.monitor.scan raises exactly these).

CODE_FLAGS: dict[str, str] = {
    "early_exit": "leaves before the tests finish (sys.exit, os._exit, SystemExit, atexit, "
    "signals, exec, fork)",
    "eq_override": "an object whose comparison, hash, truth or size does not depend on its "
    "operands, or a builtin type subclassed with such an override",
    "test_tampering": "touches the test machinery (unittest skip/mock, pytest hooks, conftest, "
    "builtins, sys.modules, tracing, monkeypatched modules or shadowed assert helpers)",
    "reads_test_files": "reads test, expected-output or solution files, /proc, files beside "
    "__file__, or lists the file system",
    "frame_introspection": "walks stack frames or the heap (sys._getframe, inspect, gc referrers, "
    "traceback stacks, f_back/f_locals, ctypes)",
    "fake_success_output": "prints text that looks like a test report ('all tests passed', 'OK')",
    "patches_time_or_random": "replaces functions of time, random or datetime (seeding is fine)",
    "system_access": "runs other programs, changes identity or opens connections (subprocess, "
    "os.system, os.setuid, socket)",
    "resource_exhaustion": "an endless loop with no way out, or an allocation of 16M items or more",
    "dynamic_code": "runs code or reaches modules by names computed at run time, out of the "
    "scanner's sight (eval, exec, compile, __import__ of a computed name, getattr of os, sys, "
    "builtins and the like by a computed name, globals())",
    "special_cases_visible_tests": "compares its input with a visible test's input, or looks it up "
    "in a table keyed by them",
    "returns_visible_outputs": "returns a visible test's expected output as a literal",
    "unparsable": "not valid Python (or too large or deep to read); the only flag then",
}

ANSWER_FLAGS: dict[str, str] = {
    "multiple_answers": "several <answer> tags or \\boxed{} with different contents",
    "hedged": "the answer lists alternatives (or, |, either, commas, several numbers) where the "
    "reference has one value",
    "empty_answer": "an answer tag or box is there but empty",
    "answer_too_long": "the answer is longer than max(4 x, +20 characters) the reference",
    "disagrees_outside_tags": "the text outside the tags states another final answer",
}

Action = Literal["warn", "filter", "penalize", "stop"]


class DetectorSettings(Section):
    enabled: bool = True


class RewardShadowGap(DetectorSettings):
    """reward - shadow_reward: the policy scores with the verifier but not with a stricter one."""

    min_gap: float = Field(0.2, ge=0, description="the gap must reach this, whatever the baseline")
    margin: float = Field(0.1, ge=0, description="and exceed the baseline gap by this much")


class FlagRate(DetectorSettings):
    """monitor/flag_rate, the share of a step's samples that a scanner flagged, in steps where the
    reward paid for some of them (monitor/rewarded_flag_rate > 0)."""

    threshold: float = Field(0.1, ge=0, le=1, description="the rate must reach this")
    margin: float = Field(0.05, ge=0, description="and exceed the baseline rate by this much")


class RewardVsHeldout(DetectorSettings):
    """Training reward up, held-out pass@1 not: learning the verifier, not the task."""

    rise: float = Field(0.2, gt=0, description="training reward gain over its baseline")
    tolerance: float = Field(
        0.02, ge=0, description="held-out pass@1 counts as not risen within this of its baseline"
    )
    evals: int = Field(2, ge=1, description="how many latest held-out evaluations must agree")


class LengthExplosion(DetectorSettings):
    factor: float = Field(2.0, gt=1, description="completions/mean_length above baseline x factor")


class LengthCollapse(DetectorSettings):
    factor: float = Field(2.0, gt=1, description="completions/mean_length below baseline / factor")


class ClipSurge(DetectorSettings):
    threshold: float = Field(0.2, ge=0, le=1, description="clip_ratio/region_mean must reach this")
    margin: float = Field(0.1, ge=0, description="and exceed its baseline by this much")


class EntropyCollapse(DetectorSettings):
    fraction: float = Field(0.1, gt=0, lt=1, description="entropy below baseline x fraction")


class KlBlowup(DetectorSettings):
    factor: float = Field(10.0, gt=1, description="kl above baseline x factor ...")
    floor: float = Field(1.0, gt=0, description="... and above this many nats per token")


class ZeroStdGroups(DetectorSettings):
    """frac_reward_zero_std: groups whose G rewards are all equal carry no GRPO gradient. A run
    that converges also gets there (every answer right), so the bar is high."""

    threshold: float = Field(0.95, ge=0, le=1, description="the share must reach this")
    margin: float = Field(0.2, ge=0, description="and exceed its baseline by this much")


class MonitorConfig(Section):
    """Settings of the training monitor (scanners, step detectors, actions)."""

    enabled: bool = True
    scanners: bool = Field(True, description="scan every sample and log monitor/flag_rate")
    baseline_steps: int = Field(10, ge=1, description="RL steps whose metrics set the baseline")
    patience: int = Field(3, ge=1, description="consecutive steps a condition must hold")
    rearm_after: int = Field(
        20,
        ge=1,
        description="consecutive clear steps before a detector that alerted may alert again "
        "(a metric hovering at its threshold is one episode, not many)",
    )
    sigmas: float = Field(
        4.0, ge=0, description="'above baseline' also means above median + sigmas x robust scale"
    )
    min_scale: float = Field(
        0.01, gt=0, description="floor of the robust scale (1.4826 x MAD) of a baseline"
    )
    actions: dict[str, Action] = Field(
        default_factory=dict,
        description="detector or scanner flag -> warn | filter | penalize | stop (default warn)",
    )
    stop_after: int = Field(1, ge=1, description="alerts of 'stop' detectors before the run stops")
    shadow_verifier: str | None = Field(
        None,
        description="a stricter verifier scored beside the reward and never rewarded "
        "(shadow_reward); its gap to the reward is the strongest hacking signal",
    )
    shadow_options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the shadow verifier"
    )

    reward_shadow_gap: RewardShadowGap = Field(default_factory=RewardShadowGap)
    flag_rate: FlagRate = Field(default_factory=FlagRate)
    reward_vs_heldout: RewardVsHeldout = Field(default_factory=RewardVsHeldout)
    length_explosion: LengthExplosion = Field(default_factory=LengthExplosion)
    length_collapse: LengthCollapse = Field(default_factory=LengthCollapse)
    clip_surge: ClipSurge = Field(default_factory=ClipSurge)
    entropy_collapse: EntropyCollapse = Field(default_factory=EntropyCollapse)
    kl_blowup: KlBlowup = Field(default_factory=KlBlowup)
    zero_std_groups: ZeroStdGroups = Field(default_factory=ZeroStdGroups)

    @classmethod
    def detector_names(cls) -> list[str]:
        """The detectors this config has settings for, in declaration order."""
        return [
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, DetectorSettings)
        ]

    @field_validator("actions")
    @classmethod
    def _known_keys(cls, actions: dict[str, Action]) -> dict[str, Action]:
        known = set(cls.detector_names()) | set(CODE_FLAGS) | set(ANSWER_FLAGS)
        unknown = sorted(set(actions) - known)
        if unknown:
            raise ValueError(
                f"monitor.actions: unknown name(s) {', '.join(map(repr, unknown))}; use a detector "
                f"({', '.join(cls.detector_names())}) or a scanner flag "
                f"({', '.join(sorted(CODE_FLAGS) + sorted(ANSWER_FLAGS))})"
            )
        return actions

    def action(self, name: str) -> Action:
        """What an alert of detector ``name`` (or a sample flagged ``name``) leads to."""
        return self.actions.get(name, "warn")


class ScaleConfig(Section):
    """Scale-out (``rlvr.scale``): rollout, verifier and learner workers as Ray actors. Off by
    default (one process); ``torchrun`` needs no setting here."""

    ray: bool = Field(
        False, description="run the RL stage on Ray actors (a local cluster unless ray_address)"
    )
    ray_address: str | None = Field(
        None, description="join this Ray cluster (e.g. auto, ray://head:10001); implies ray"
    )
    rollout_workers: int = Field(1, ge=1, description="Ray actors that hold a policy copy")
    verifier_workers: int = Field(1, ge=1, description="CPU actors that score completions")
    learners: int = Field(1, ge=1, description="data-parallel learners (torch.distributed)")
    worker_threads: int = Field(1, ge=1, description="torch threads per rollout worker")
    mode: Literal["sync", "async"] = Field(
        "sync", description="async: generation for step t+1 overlaps the update of step t"
    )
    max_staleness: int = Field(
        1,
        ge=0,
        description="async: samples may come from a policy this many versions old (the "
        "steps generated ahead); older ones are dropped; 0 is the synchronous run",
    )

    @property
    def enabled(self) -> bool:
        return self.ray or self.ray_address is not None

    @model_validator(mode="after")
    def _only_with_ray(self) -> ScaleConfig:
        fields = ("rollout_workers", "verifier_workers", "learners", "worker_threads", "mode")
        defaults = ScaleConfig.model_fields
        changed = [f for f in fields if getattr(self, f) != defaults[f].default]
        if changed and not self.enabled:
            raise ValueError(
                f"scale.{changed[0]} takes effect on Ray only: add --ray (scale.ray: "
                "true) or --ray-address"
            )
        return self


Recipe = Literal["r1", "agentic_code", "hack_demo"]


class RunConfig(Section):
    name: str = "default"
    out_dir: str = "runs"
    seed: int = 0
    recipe: Recipe = Field(
        "r1",
        description="r1: cold-start SFT -> GRPO -> rejection sampling -> final SFT; "
        "agentic_code: cold-start SFT -> multi-turn GRPO with code feedback -> held-out "
        "controls; hack_demo: RL against a weak and a hardened verifier, monitored",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    rejection: RejectionConfig = Field(default_factory=RejectionConfig)
    final_sft: FinalSFTConfig = Field(default_factory=FinalSFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    scale: ScaleConfig = Field(default_factory=ScaleConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


class ConfigError(ValueError):
    """A config problem, worded for the user: which field, which file, what to do."""


def _set_path(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """``["rl.steps=100", "algorithm.beta=0.04"]`` -> nested dict; values are parsed as YAML."""
    data: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. -o rl.steps=100)")
        _set_path(data, key.strip(), yaml.safe_load(raw))
    return data


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  {field}: unknown key; check the spelling (see `rlvr config` for all keys)"
            )
        else:
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {field}: {e['msg']}{shown}")
    return "\n".join(lines)


# What a recipe changes from the defaults above; a file, flags and ``-o`` overrides go on top.
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "agentic_code": {
        "env": {
            "name": "code_feedback",
            "max_turns": 2,
            "max_turn_tokens": 40,
            "max_episode_tokens": 128,
        },
        "rollout": {"group_size": 8, "temperature": 1.0},
        "algorithm": {"beta": 0.0},
        "sft": {"examples": 600, "epochs": 20},
        "rl": {"steps": 300, "prompts_per_step": 16, "lr": 3e-4},
    },
    "hack_demo": {
        # two-digit addition answered directly; 5% of the cold start hedges over a few guesses
        "task": {
            "name": "arithmetic",
            "options": {"bare_answer_fraction": 1.0, "hedge_fraction": 0.05},
        },
        "rollout": {"group_size": 8, "temperature": 1.0, "max_new_tokens": 48},
        "algorithm": {"beta": 0.0},
        "sft": {"examples": 600, "epochs": 20},
        "rl": {"steps": 300, "prompts_per_step": 16, "lr": 4e-4, "eval_every": 25},
        "eval": {"verifier": "arithmetic", "heldout": 200},
        "monitor": {"shadow_verifier": "arithmetic"},
    },
}


# The main job's settings: the r1 recipe on the embedded model and the arithmetic task (README,
# "The main job, measured"), chosen over seeds, thread counts and AdamW kernels. They apply only
# there: `rlvr sft` / `rlvr train` on your own model or data keep the defaults above.
MAIN_JOB_DEFAULTS: dict[str, Any] = {
    # a gentler cold start, stopped before the bare answers are learned (lr 3e-3 for 30 epochs
    # landed anywhere from 0.25 to 0.98 pass@1, depending on how the CPU rounded)
    "sft": {"lr": 1e-3, "epochs": 15},
    # RL gentler too: from this start 2e-4 collapsed on seed 0 (KL near 2, the policy copying its
    # own digit errors) while 2e-5 climbed smoothly to 0.96
    "rl": {"lr": 2e-5},
}


def _is_main_job(data: dict) -> bool:
    """The r1 recipe on the embedded model and the arithmetic task, as ``data`` asks for it."""
    section = lambda name: data.get(name) if isinstance(data.get(name), dict) else {}  # noqa: E731
    return (
        str(data.get("recipe", "r1")) == "r1"
        and section("model").get("path") is None
        and section("task").get("name", "arithmetic") == "arithmetic"
        and section("env").get("name") is None
    )


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **fields: Any
) -> RunConfig:
    """Recipe defaults (and the main job's, ``MAIN_JOB_DEFAULTS``) <- YAML file (optional) <-
    ``fields`` (already nested) <- ``-o`` overrides, validated once."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data, source = loaded, str(path)
    data = _merge(data, fields)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        source += " + command-line overrides"
    if _is_main_job(data):
        data = _merge(MAIN_JOB_DEFAULTS, data)
    data = _merge(RECIPE_DEFAULTS.get(str(data.get("recipe", "r1")), {}), data)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def dump_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


# settings a resumed run may change without changing what it computes: where logs go, how the
# work is spread (keyed sampling makes a Ray or torchrun split draw the same samples)
RESUME_FREE = ("logging", "scale", "rl.verifier_workers", "name", "out_dir")


def config_changes(saved: dict[str, Any], cfg: RunConfig) -> list[str]:
    """The settings of ``cfg`` that differ from a run's saved ``config.yaml`` (``saved``), as
    ``section.field: before -> now`` lines; those in ``RESUME_FREE`` are left out."""

    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(data, dict):
            return {prefix: data}
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out

    now = yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    before, after = flat(saved), flat(now)
    changed = []
    for key in sorted(set(before) | set(after)):
        if key in RESUME_FREE or key.startswith(tuple(f"{f}." for f in RESUME_FREE)):
            continue
        if before.get(key) != after.get(key):
            changed.append(f"{key}: {before.get(key)!r} -> {after.get(key)!r}")
    return changed
