"""Rollout engines side by side: completion tokens/s of rlvr's decoder (``NativeEngine``: the fast
decode path, one shard per core), HF ``model.generate`` and vLLM (``VllmEngine``, colocated, the
CPU build here), at four model sizes, same prompts, same machine, one run.

Sizes (Llama unless said, random weights, fp32, written offline with transformers):
``tiny`` the embedded model's shape (~0.8M); ``20m`` hidden 512 x 5 layers (~21M); ``150m`` hidden
768 x 16 layers (~151M); ``qwen0.5b`` the Qwen2.5-0.5B configuration (494M, vocab 151,936). Every
row runs to ``--max-new-tokens`` (rlvr and vLLM sample with no EOS; HF with ``min_new_tokens``),
so tokens/s compare like for like. Prompts: ``--prompts`` x G = ``--group-size`` (64 x 8 by
default; ``--large-prompts`` (8) at 150M and 0.5B, where 64 x 8 takes many minutes per engine on
2 cores: HF generate makes ~10-20 tokens/s there).

Each size runs in a subprocess of its own (one vLLM engine per process, memory given back).
The vLLM figures exclude the engine's start (reported apart: ``vllm_start_s``) and include its
first ``sync`` separately (``vllm_sync_s``). ``--vllm-compiled`` adds vLLM with torch.compile
(vLLM's own default) beside rlvr's eager default.

``--grpo``: the GRPO step against TRL. TRL 1.16's ``GRPOTrainer(use_vllm=True,
vllm_mode="colocate")`` is tried for one step on vLLM's CPU build and its failure reported (it
syncs weights with ``model.load_weights``, which vLLM's CPU build cannot take after start: see
``trl_colocate``). So the step times compare rlvr with ``rollout.engine: vllm`` (weight sync
included) against TRL's ``generate`` path, labelled as such (``grpo_step_times``: bench/vs_trl.py
at ``--grpo-scale``, the two trainers taking turns).

    .venv/bin/python bench/engines.py [--sizes tiny,20m,150m,qwen0.5b] [--grpo]

Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

SIZES = {
    "tiny": {"hidden_size": 128, "num_layers": 4, "num_heads": 4},
    "20m": {"hidden_size": 512, "num_layers": 5, "num_heads": 8},
    "150m": {"hidden_size": 768, "num_layers": 16, "num_heads": 12},
    "qwen0.5b": None,  # Qwen2.5-0.5B's configuration
}


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def build(size: str) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.models.tiny import build_model, build_tokenizer

    torch.manual_seed(0)
    if SIZES[size] is not None:
        return build_model(build_tokenizer(), max_positions=512, **SIZES[size]).eval()
    config = Qwen2Config(  # Qwen/Qwen2.5-0.5B's config.json
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=151643,
        eos_token_id=151643,
    )
    return Qwen2ForCausalLM(config).eval()


def one_size(size: str, args: argparse.Namespace) -> dict:
    """Every engine at one size, in this process."""
    from rlvr.config import VllmConfig
    from rlvr.rollout.engines import NativeEngine
    from rlvr.rollout.engines.vllm_engine import VllmEngine
    from rlvr.rollout.sampling import sample_key

    policy = build(size)
    n_params = sum(p.numel() for p in policy.parameters())
    vocab = policy.config.vocab_size
    n_prompts = args.large_prompts if size in ("150m", "qwen0.5b") else args.prompts
    g, new = args.group_size, args.max_new_tokens
    gen = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(
            4, vocab, (int(torch.randint(12, 24, (1,), generator=gen)),), generator=gen
        ).tolist()
        for _ in range(n_prompts)
    ]
    keys = [sample_key("bench", i) for i in range(n_prompts * g)]
    tokens = n_prompts * g * new
    out = {"size": size, "params": n_params, "prompts": n_prompts, "group_size": g, "new": new}
    out["threads"] = torch.get_num_threads()

    def timed(name: str, fn) -> None:
        fn(warm=True)
        t0 = time.perf_counter()
        produced = fn(warm=False)
        seconds = time.perf_counter() - t0
        assert produced == tokens, f"{name}: {produced} tokens, expected {tokens}"
        out[f"{name}_tok_s"] = round(tokens / seconds, 1)
        log(f"{size}: {name} {tokens / seconds:.1f} tok/s ({seconds:.1f} s)")

    native = NativeEngine(pad=0)

    def rlvr(warm: bool) -> int:
        p, k = (prompts[:2], keys[: 2 * g]) if warm else (prompts, keys)
        s = native.sample(policy, p, g, new, None, 1.0, keys=k)
        return int(s.lengths.sum())

    def hf(warm: bool) -> int:
        from rlvr.rollout.generate import left_pad

        p = prompts[:2] if warm else prompts
        ids, mask = left_pad(p, 0, torch.device("cpu"))
        with torch.no_grad():
            seqs = policy.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                num_return_sequences=g,
                max_new_tokens=new,
                min_new_tokens=new,
                pad_token_id=0,
            )
        return int((seqs.shape[1] - ids.shape[1]) * seqs.shape[0])

    timed("rlvr", rlvr)
    timed("hf_generate", hf)
    variants = [("vllm", VllmConfig())]
    if args.vllm_compiled and size != "qwen0.5b":
        variants.append(("vllm_compiled", VllmConfig(eager=False)))
    for name, settings in variants:
        t0 = time.perf_counter()
        engine = VllmEngine(policy, 24 + new, settings)
        out[f"{name}_start_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        engine.sync(policy, 0)
        out[f"{name}_sync_s"] = round(time.perf_counter() - t0, 2)

        def vllm(warm: bool, engine=engine) -> int:
            p, k = (prompts[:2], keys[: 2 * g]) if warm else (prompts, keys)
            s = engine.sample(policy, p, g, new, None, 1.0, keys=k)
            return int(s.lengths.sum())

        timed(name, vllm)
        from rlvr.rollout.engines.vllm_engine import shutdown_shared

        engine.close()
        shutdown_shared()
    out["vllm_over_rlvr"] = round(out["vllm_tok_s"] / out["rlvr_tok_s"], 2)
    return out


def trl_colocate() -> dict:
    """One GRPO step of TRL 1.16's ``GRPOTrainer(use_vllm=True, vllm_mode="colocate")`` on the
    embedded model, on whatever vLLM is installed; what happened."""
    os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.models.load import load_policy
    from rlvr.models.tiny import save_tiny

    work = tempfile.mkdtemp()
    policy, tokenizer = load_policy(save_tiny(f"{work}/model"), "cpu", "float32")
    config = GRPOConfig(
        output_dir=f"{work}/trl",
        use_cpu=True,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=1,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        bf16=False,
        disable_tqdm=True,
        use_vllm=True,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.3,
        vllm_max_model_length=64,
    )
    data = Dataset.from_dict({"prompt": ["1+1=", "2+2=", "3+3=", "4+4="] * 4})
    try:
        GRPOTrainer(
            model=policy,
            reward_funcs=lambda completions, **_: [float(len(c) % 2) for c in completions],
            args=config,
            train_dataset=data,
            processing_class=tokenizer,
        ).train()
        return {"ran": True}
    except Exception as e:
        where = traceback.extract_tb(e.__traceback__)
        trl_frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in where]
        return {
            "ran": False,
            "error": f"{type(e).__name__}: {e}",
            "trl_call": next((f for f in reversed(trl_frames) if f.startswith("trl/")), None),
        }


def grpo_step_times(args: argparse.Namespace) -> dict:
    """Median GRPO step time of rlvr with ``rollout.engine: vllm`` (weight sync included)
    against TRL 1.16's ``GRPOTrainer`` at the same model, batch, G, lengths and threads
    (``bench/vs_trl.py --engine vllm``: the two trainers take turns, one step each). TRL's own
    vLLM path cannot run on vLLM's CPU build (``trl_colocate``: its weight sync writes into a
    model that vLLM's CPU build has repacked), so TRL samples with its ``generate`` path here,
    and the result says so."""
    cmd = [sys.executable, str(Path(__file__).with_name("vs_trl.py")), "--engine", "vllm"]
    cmd += ["--model-scale", str(args.grpo_scale), "--steps", str(args.grpo_steps)]
    cmd += ["--warmup", "2", "--seeds", "0", "--sft-epochs", "2", "--heldout", "32"]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"measured": False, "failed": " ".join(cmd)}
    return {"measured": True, "command": " ".join(cmd[1:]), **json.loads(lines[-1])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="tiny,20m,150m,qwen0.5b")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--large-prompts", type=int, default=8, help="prompts at 150M and 0.5B")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--vllm-compiled", action="store_true")
    ap.add_argument("--grpo", action="store_true")
    ap.add_argument("--grpo-scale", type=int, default=20, help="bench/vs_trl.py --model-scale")
    ap.add_argument("--grpo-steps", type=int, default=12)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a subprocess: one size
    ap.add_argument("--trl-colocate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args)))
        return
    if args.trl_colocate:
        print(json.dumps(trl_colocate()))
        return

    def child(*extra: str) -> dict:
        flags = [f"--prompts={args.prompts}", f"--large-prompts={args.large_prompts}"]
        flags += [f"--group-size={args.group_size}", f"--max-new-tokens={args.max_new_tokens}"]
        flags += ["--vllm-compiled"] if args.vllm_compiled else []
        done = subprocess.run(
            [sys.executable, __file__, *extra, *flags], stdout=subprocess.PIPE, text=True
        )
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if done.returncode == 0 and lines else {"failed": extra}

    result = {"machine": f"{os.cpu_count()} CPU cores", "rows": []}
    for size in args.sizes.split(","):
        result["rows"].append(child(f"--one={size}"))
    if args.grpo:
        result["trl_vllm_colocate"] = child("--trl-colocate")
        result["grpo_step"] = grpo_step_times(args)
    print(json.dumps(result))


if __name__ == "__main__":  # vLLM may start processes with spawn, which re-imports this file
    main()
