"""rlvr's GRPO step against TRL's ``GRPOTrainer``, side by side in one run.

Same everything: starting weights (a cold-start SFT checkpoint of the embedded model, made here
with ``rlvr.api.sft`` unless ``--init`` names one), tokenizer, prompts (the arithmetic task's train
split), G, prompts per step, max completion length, learning rate and schedule (constant, no
warm-up), AdamW betas, grad clipping, beta, temperature, loss aggregation (ours ``sequence`` =
TRL's ``loss_type="grpo"``), reward scaling, one update per batch, steps and CPU threads. TRL's
reward function wraps our arithmetic verifier. Both are then scored by the same ``rlvr.eval``
greedy pass@1 on held-out problems.

The two trainers take turns, one step each (TRL's callback runs an rlvr step between two of its
own, outside its timer), so a noisy shared machine slows both alike and the ratio holds.
Per-step time is the median after ``--warmup`` steps. The FLOP count of a step is the work of
a plain forward and backward, ``6 * params * trained_tokens + 2 * params * generated_tokens``
(trained tokens: prompt and completion of every back-propagated row; counted the same way for
both trainers), so FLOP/s is "the same work per second" (rlvr encodes each prompt once per group
and so executes a little less arithmetic than it is credited with). It is compared with the
machine's matmul peak, measured here with a float32 1024x1024 matmul loop.

Per-step times are pooled over ``--seeds`` (default 0,1,2: three RL runs of each trainer from
the same SFT checkpoint); held-out pass@1 is the mean over the seeds, each seed's also printed.

Usage: ``python bench/vs_trl.py [--steps 30] [--seeds 0,1,2] [--model-scale 20] [--init DIR]``.
Human-readable progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ACCELERATE_USE_CPU", "true")

import torch  # noqa: E402

from rlvr.config import AlgorithmConfig, RLConfig, RolloutConfig, load_config  # noqa: E402
from rlvr.eval import evaluate  # noqa: E402
from rlvr.models.load import load_policy  # noqa: E402
from rlvr.rollout.sampling import sample_key  # noqa: E402
from rlvr.rollout.sources import SingleTurn  # noqa: E402
from rlvr.tasks.arithmetic import AdditionTask  # noqa: E402
from rlvr.verifiers.base import get_verifier  # noqa: E402

# --model-scale N: a Llama about N times the default embedded one (hidden 128, 4 layers, ~1M).
SCALES = {1: {"hidden_size": 128, "num_layers": 4, "num_heads": 4}}
SCALES[20] = {"hidden_size": 512, "num_layers": 5, "num_heads": 8}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def matmul_peak(threads: int, seconds: float = 2.0, n: int = 1024) -> float:
    """FLOP/s of a float32 square matmul loop: the ceiling a CPU trainer can hope for."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


def make_sft_checkpoint(scale: int, work: Path, args) -> Path:
    from rlvr import api

    sft = {"examples": args.sft_examples, "epochs": args.sft_epochs}
    cfg = load_config(
        name="sft",
        out_dir=str(work),
        model={**SCALES[scale], "threads": args.threads, "device": "cpu"},
        sft=sft,
        eval={"heldout": 16, "k": 1, "samples": 1},
        logging={"progress": False},
    )
    t0 = time.perf_counter()
    summary = api.sft(cfg)
    log(
        f"cold-start SFT: {time.perf_counter() - t0:.0f}s, "
        f"held-out pass@1 {summary.get('sft_accuracy', float('nan')):.2f}"
    )
    return cfg.run_dir / "checkpoints" / "sft"


class Scorer:
    """Our arithmetic verifier, in process, for both trainers (it is microseconds per answer)."""

    def __init__(self) -> None:
        self.verifier = get_verifier("arithmetic")

    def __call__(self, responses: list[str], references: list) -> list:
        return [self.verifier.verify(r, ref) for r, ref in zip(responses, references, strict=True)]


def heldout_pass1(model, tokenizer, examples, max_new_tokens: int) -> float:
    result = evaluate(
        model, tokenizer, examples, Scorer(), max_new_tokens, k=1, samples=1, with_sampling=False
    )
    return float(result["pass@1"])


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def step_flops(params: int, trained_tokens: int, generated_tokens: int) -> float:
    return 6 * params * trained_tokens + 2 * params * generated_tokens


# -- rlvr -----------------------------------------------------------------------------------------


class RlvrRun:
    """rlvr's GRPO loop, one step per ``step()`` call, so the bench can interleave its steps
    with TRL's: both trainers then see the same machine (a shared, noisy one) at the same time."""

    def __init__(self, init: Path, train, args):
        from rlvr.rollout.prompts import format_prompt
        from rlvr.train.grpo import loss_settings
        from rlvr.train.optim import make_optimizer

        torch.manual_seed(args.seed)
        self.args = args
        self.model, self.tokenizer = load_policy(init, "cpu", "float32")
        self.rollout = RolloutConfig(
            group_size=args.group_size,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            engine=args.engine,
        )
        self.algo = AlgorithmConfig(beta=args.beta, aggregation="sequence", scale="group", mu=1)
        self.rl = RLConfig(
            steps=args.steps,
            prompts_per_step=args.prompts,
            lr=args.lr,
            warmup_ratio=0.0,
            schedule="constant",
            max_grad_norm=1.0,
            micro_batch_size=args.prompts * args.group_size,
        )
        self.reference = None
        if args.beta > 0:
            self.reference, _ = load_policy(init, "cpu", "float32")
            self.reference.eval().requires_grad_(False)
        self.optimizer, self.scheduler = make_optimizer(
            self.model, self.rl.lr, self.rl.steps, 0.0, 0.0, "constant", fused=True
        )
        self.settings = loss_settings(self.algo, self.rollout.max_new_tokens)
        self.prompts = iter(train * (1 + args.steps * args.prompts // len(train)))
        self.format = lambda p: format_prompt(self.tokenizer, p)
        self.score = Scorer()
        r = self.rollout
        from rlvr.rollout.engines import make_engine

        # the engine's length: these prompts are a few tokens, the completions max_new_tokens
        self.engine = make_engine(r, self.tokenizer, self.model, 64 + r.max_new_tokens)
        self.engine.sync(self.model, 0)
        self.source = SingleTurn(
            self.tokenizer, self.score, r.group_size, r.max_new_tokens, r.temperature, r.top_p,
            self.format, self.engine,
        )  # fmt: skip
        self.params = n_params(self.model)
        self.steps: list[dict] = []

    def step(self) -> None:
        from rlvr.train.grpo import batch_metrics, collect_batch, update_policy

        args = self.args
        t0 = time.perf_counter()
        batch = collect_batch(
            self.model,
            self.source,
            self.prompts,
            self.rl.prompts_per_step,
            self.algo,
            sample_key(self.args.seed, len(self.steps)),
            self.tokenizer.pad_token_id,
        )
        values = batch_metrics(batch)
        values.update(
            update_policy(
                self.model,
                batch,
                self.optimizer,
                self.scheduler,
                self.settings,
                self.algo,
                self.rl,
                self.reference,
            )
        )
        t_sync = time.perf_counter()
        self.engine.sync(self.model, len(self.steps) + 1)  # part of the step, as in rlvr train
        values["time/weight_sync"] = time.perf_counter() - t_sync
        seconds = time.perf_counter() - t0
        generated = int(batch.rollouts.completion_lengths.sum())
        # rows rlvr back-propagates: with beta == 0 it skips tied groups (zero advantage)
        live = batch.advantages != 0 if args.beta == 0 else slice(None)
        trained = int(batch.rollouts.attention_mask[live].sum())
        self.steps.append(
            {
                "seconds": seconds,
                "generate": values["time/generate"],
                "verify": values["time/verify"],
                "ref_logprobs": values["time/ref_logprobs"] + values["time/old_logprobs"],
                "update": values["time/update"],
                "weight_sync": values["time/weight_sync"],
                "flops": step_flops(self.params, trained, generated),
            }
        )
        log(
            f"  rlvr step {len(self.steps):3d}: {seconds:.3f}s  reward {values['reward']:.2f}  "
            f"tied groups {values['frac_reward_zero_std']:.2f}  "
            f"gen {values['time/generate']:.3f}s  update {values['time/update']:.3f}s"
        )


# -- TRL ------------------------------------------------------------------------------------------


def run_trl(init: Path, train, args, work: Path, between_steps=None) -> dict:
    """TRL's GRPOTrainer for ``args.steps`` steps; ``between_steps()`` runs after each of its
    steps, outside its timer (the bench runs one rlvr step there)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    policy, tokenizer = load_policy(init, "cpu", "float32")
    score = Scorer()
    phase: dict[str, float] = defaultdict(float)
    tokens = {"generated": 0, "trained": 0}

    def arithmetic_reward(prompts, completions, completion_ids, reference, **_):
        t0 = time.perf_counter()
        rewards = [v.score for v in score(completions, reference)]
        phase["verify"] += time.perf_counter() - t0
        tokens["generated"] += sum(len(c) for c in completion_ids)
        prompt_tokens = [len(tokenizer(p)["input_ids"]) for p in prompts]
        tokens["trained"] += sum(prompt_tokens) + sum(len(c) for c in completion_ids)
        return rewards

    config = GRPOConfig(
        output_dir=str(work / "trl"),
        use_cpu=True,
        seed=args.seed,
        num_generations=args.group_size,
        per_device_train_batch_size=args.prompts * args.group_size,
        gradient_accumulation_steps=1,
        max_completion_length=args.max_new_tokens,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.99,
        max_grad_norm=1.0,
        beta=args.beta,
        temperature=args.temperature,
        top_p=1.0,
        loss_type="grpo",  # per-sequence token mean, then the batch mean: our "sequence"
        scale_rewards="group",
        epsilon=0.2,
        num_iterations=1,
        use_vllm=False,
        max_steps=args.steps,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        log_completions=False,
    )
    dataset = Dataset.from_list([{"prompt": e.prompt, "reference": e.reference} for e in train])
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=arithmetic_reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )

    # Phase timers around TRL's own methods (its profiling_context reports only to trackers).
    def timed(name: str, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phase[name] += time.perf_counter() - t0

        return wrapper

    trainer._generate = timed("generate_all", trainer._generate)
    trainer._generate_and_score_completions = timed(
        "prepare", trainer._generate_and_score_completions
    )
    params = n_params(policy)
    steps: list[dict] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            phase.clear()
            tokens.update(generated=0, trained=0)
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            seconds = time.perf_counter() - self.t0
            generate = phase["generate_all"]  # TRL scores rewards after _generate returns
            prep = phase["prepare"]
            steps.append(
                {
                    "seconds": seconds,
                    "generate": generate,
                    "verify": phase["verify"],
                    # what else _generate_and_score_completions does: ref log-probs, advantages
                    "ref_logprobs": max(prep - generate - phase["verify"], 0.0),
                    "update": seconds - prep,
                    "flops": step_flops(params, tokens["trained"], tokens["generated"]),
                }
            )
            log(
                f"  trl  step {len(steps):3d}: {seconds:.3f}s  gen {generate:.3f}s  "
                f"update {seconds - prep:.3f}s"
            )

    class Interleave(TrainerCallback):
        def on_step_end(self, *_, **__):
            if between_steps is not None:
                between_steps()

    trainer.add_callback(StepTimer())
    trainer.add_callback(Interleave())  # after StepTimer: outside TRL's step time
    trainer.train()
    return {"steps": steps, "model": trainer.model, "tokenizer": tokenizer, "params": params}


# -- the comparison -------------------------------------------------------------------------------


def summarise(name: str, steps: list[dict], warmup: int, peak: float) -> dict:
    med = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
    flops = med["flops"] / med["seconds"]
    log(
        f"{name:5s} median s/step {med['seconds']:.3f}  generate {med['generate']:.3f}  "
        f"verify {med['verify']:.4f}  ref/old logprobs {med['ref_logprobs']:.3f}  "
        f"update {med['update']:.3f}  ~{flops / 1e9:.2f} GFLOP/s "
        f"({100 * flops / peak:.1f}% of peak)"
    )
    return {**med, "flop_per_s": flops, "peak_fraction": flops / peak}


def one_seed(seed: int, init: Path, task: AdditionTask, heldout, args, work: Path) -> dict:
    """Both trainers, in turn, from ``init`` with RL seed ``seed``: per-step records (after
    warm-up) and held-out pass@1 of each."""
    run_args = argparse.Namespace(**{**vars(args), "seed": seed})
    train = task.examples("train", args.steps * args.prompts)
    random.Random(seed).shuffle(train)  # rlvr's prompt order varies with the seed, as TRL's does
    log(f"seed {seed}: {args.steps} steps of {args.prompts} prompts x {args.group_size}, "
        "rlvr and TRL in turn")  # fmt: skip
    rlvr = RlvrRun(init, train, run_args)
    trl = run_trl(init, train, run_args, work / f"seed{seed}", between_steps=rlvr.step)
    out = {}
    for name, run in (("rlvr", {"steps": rlvr.steps, "model": rlvr.model,
                                "tokenizer": rlvr.tokenizer, "params": rlvr.params}),
                      ("trl", trl)):  # fmt: skip
        score = heldout_pass1(run["model"], run["tokenizer"], heldout, args.max_new_tokens)
        log(f"  {name}: held-out greedy pass@1 after {args.steps} steps: {score:.3f}")
        out[name] = {"steps": run["steps"][args.warmup :], "heldout": score,
                     "params": run["params"]}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the median")
    ap.add_argument("--seeds", default="0,1,2", help="RL seeds; held-out is their mean")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group-size", type=int, default=8, help="G: completions per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--model-scale", type=int, default=1, choices=sorted(SCALES))
    ap.add_argument("--init", type=Path, help="SFT checkpoint to start both from")
    ap.add_argument("--sft-examples", type=int, default=600)
    ap.add_argument("--sft-epochs", type=int, default=30)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument(
        "--engine", default="rlvr", choices=["rlvr", "vllm"], help="rlvr's rollout engine"
    )
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-vs-trl-"))
    init = args.init or make_sft_checkpoint(args.model_scale, work, args)
    task = AdditionTask(seed=0)  # the problems; the SFT checkpoint and held-out set are fixed
    heldout = task.examples("heldout", args.heldout)
    peak = matmul_peak(args.threads)
    log(f"matmul peak: {peak / 1e9:.1f} GFLOP/s on {args.threads} threads; work dir {work}")

    per_seed = [one_seed(seed, init, task, heldout, args, work) for seed in seeds]
    results = {}
    for name in ("rlvr", "trl"):
        steps = [s for run in per_seed for s in run[name]["steps"]]
        results[name] = summarise(name, steps, args.warmup, peak)
        results[name]["heldout"] = [run[name]["heldout"] for run in per_seed]
    r, t = results["rlvr"], results["trl"]
    out = {
        "steps": args.steps,
        "seeds": seeds,
        "model_scale": args.model_scale,
        "rlvr_engine": args.engine,
        "trl_generation": "generate (use_vllm=False)",
        "params": per_seed[0]["rlvr"]["params"],
        "threads": args.threads,
        "rlvr_s_per_step": round(r["seconds"], 4),
        "trl_s_per_step": round(t["seconds"], 4),
        "speedup": round(t["seconds"] / r["seconds"], 2),
        "rlvr_heldout": round(statistics.mean(r["heldout"]), 4),
        "trl_heldout": round(statistics.mean(t["heldout"]), 4),
        "heldout_per_seed": {"rlvr": r["heldout"], "trl": t["heldout"]},
        "peak_gflops": round(peak / 1e9, 1),
        "rlvr_peak_fraction": round(r["peak_fraction"], 4),
        "trl_peak_fraction": round(t["peak_fraction"], 4),
        "profile_s": {
            name: {
                k: round(results[name][k], 4)
                for k in ("generate", "verify", "ref_logprobs", "update", "weight_sync")
                if k in results[name]
            }
            for name in results
        },
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
