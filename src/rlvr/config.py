"""Run configuration: one pydantic section per concern, composed into ``RunConfig``.

Each module receives only its own section. Unknown keys are errors (a typo must not silently
fall back to a default), and every field can be set from YAML or from the command line
(``-o rl.steps=100``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlvr.monitor.config import MonitorConfig


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
        description="a registered environment, e.g. code_feedback; None: single-turn "
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
    CPU machine and on one GPU shared with the learner."""

    kv_cache_gib: float = Field(
        2.0, gt=0, description="CPU: GiB of KV cache (vLLM's VLLM_CPU_KVCACHE_SPACE)"
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
    "rl": {"lr": 2e-4},
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
