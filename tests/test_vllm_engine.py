"""The vLLM engine (``rollout.engines.vllm_engine``) against the learner, on vLLM's CPU build.

One ``vllm.LLM`` serves the whole module (and the test run: ``VllmEngine`` reuses the
process's engine when the architecture, dtype and length agree): the embedded model's shape,
random weights, fp32. Every test syncs the weights it needs first. The figures the assertions
bound are printed (``pytest -s``)."""

from __future__ import annotations

import copy
import importlib.util
import sys

import pytest
import torch

from rlvr.config import VllmConfig
from rlvr.models.tiny import build_model, build_tokenizer
from rlvr.rollout.engines import EngineError, NativeEngine, StaleWeights
from rlvr.rollout.sampling import sample_key

needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed: `make setup-vllm` installs its CPU build",
)
MAX_LEN = 192  # the engine's max_model_len: long enough for a second turn
SETTINGS = VllmConfig(kv_cache_gib=0.25, eager=True)  # eager: starts in seconds


def test_missing_vllm_names_the_install(monkeypatch):
    from rlvr.rollout.engines import vllm_engine

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(EngineError, match="make setup-vllm") as err:
        vllm_engine._vllm()
    assert 'pip install "rlvr[vllm]"' in str(err.value)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def built(tokenizer):
    """The module's engine, and what its start did to the learner's process state."""
    from rlvr.rollout.engines.vllm_engine import VllmEngine

    policy = build_model(tokenizer, seed=1).eval()
    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    engine = VllmEngine(policy, MAX_LEN, SETTINGS)
    after = {
        "rng_kept": torch.equal(torch.rand(3), expected),
        "set_num_threads_kept": torch.set_num_threads is set_threads,
        "threads_kept": torch.get_num_threads() == threads,
    }
    yield engine, after
    engine.close()


def fresh_policy(tokenizer, seed: int = 1) -> torch.nn.Module:
    """The module's architecture with its weights moved off the initialisation in every kind of
    layer (norms, attention, MLP, the tied embeddings), so a sync that misses one shows."""
    policy = build_model(tokenizer, seed=seed).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            scale = 0.3 if "norm" in name else 0.05
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return policy


def engine_for(policy):
    from rlvr.rollout.engines.vllm_engine import VllmEngine

    return VllmEngine(policy, MAX_LEN, SETTINGS)


def prompts_of(tokenizer, texts):
    return [tokenizer(t)["input_ids"] for t in texts]


def teacher_forced(policy, prompts, sampled, group_size, temperature):
    """The learner's log-probs of the sampled tokens: log-softmax of the HF forward over
    prompt + completion, at the sampling temperature (1 when greedy)."""
    temperature = temperature if temperature > 0 else 1.0
    out = []
    for row in range(len(sampled.lengths)):
        prompt = prompts[row // group_size]
        n = int(sampled.lengths[row])
        ids = sampled.tokens[row, :n]
        full = torch.tensor([prompt + ids.tolist()])
        with torch.no_grad():
            logits = policy(full).logits[0, len(prompt) - 1 : -1].float() / temperature
        out.append(torch.log_softmax(logits, -1).gather(-1, ids[:, None]).squeeze(-1))
    return out


@needs_vllm
def test_engine_start_keeps_the_learners_process_state(built):
    _, after = built
    assert after == {"rng_kept": True, "set_num_threads_kept": True, "threads_kept": True}


@needs_vllm
def test_engines_of_one_shape_share_one_vllm(built, tokenizer):
    engine, _ = built
    other = engine_for(fresh_policy(tokenizer, seed=3))
    assert other._shared is engine._shared


@needs_vllm
def test_after_sync_greedy_and_logprobs_match_the_learner(built, tokenizer):
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, version=5)
    assert engine.version == 5
    prompts = prompts_of(tokenizer, ["12+34=", "7*8 is", "<think>", "hello world, "])
    eos = tokenizer.eos_token_id

    greedy = engine.sample(policy, prompts, 2, 24, eos, temperature=0.0)
    native = NativeEngine(tokenizer.pad_token_id).sample(policy, prompts, 2, 24, eos, 0.0)
    assert torch.equal(greedy.lengths, native.lengths)
    assert torch.equal(greedy.finished, native.finished)
    for row in range(len(greedy.lengths)):
        n = int(greedy.lengths[row])
        assert greedy.tokens[row, :n].tolist() == native.tokens[row, :n].tolist()

    for temperature in (0.0, 1.0, 0.7):
        keys = [sample_key("t", temperature, i) for i in range(len(prompts) * 4)]
        sampled = engine.sample(policy, prompts, 4, 24, None, temperature, keys=keys)
        assert bool((sampled.lengths == 24).all()) and not bool(sampled.finished.any())
        learner = torch.cat(teacher_forced(policy, prompts, sampled, 4, temperature))
        ours = torch.cat([sampled.logprobs[r, : int(n)] for r, n in enumerate(sampled.lengths)])
        gap = (learner - ours).abs()
        print(
            f"T={temperature}: engine vs learner |dlogp| mean {gap.mean():.2e} max {gap.max():.2e}"
        )
        assert gap.mean() < 1e-5 and gap.max() < 1e-4


@needs_vllm
def test_a_finished_row_ends_with_its_eos(built, tokenizer):
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    prompts = prompts_of(tokenizer, ["1+1=", "2+2="])
    free = engine.sample(policy, prompts, 1, 12, None, 0.0)
    eos = int(free.tokens[0, 3])  # the 4th greedy token of row 0 becomes "EOS"
    stopped = engine.sample(policy, prompts, 1, 12, eos, 0.0)
    first = free.tokens[0].tolist().index(eos) + 1
    assert int(stopped.lengths[0]) == first and bool(stopped.finished[0])
    assert stopped.tokens[0, first - 1] == eos
    assert stopped.logprobs[0, :first].tolist() == pytest.approx(free.logprobs[0, :first].tolist())


@needs_vllm
def test_a_stale_engine_is_refused(built, tokenizer):
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    prompts = prompts_of(tokenizer, ["3+4="])
    with pytest.raises(StaleWeights, match="sync"):  # never synced: random weights
        engine.sample(policy, prompts, 2, 4, None, 1.0)
    engine.sync(policy, 0)
    engine.sample(policy, prompts, 2, 4, None, 1.0)

    # AdamW's fused kernel (rlvr's RL optimizer) does not bump the version counters
    for kind in ({"fused": True}, {"foreach": True}):
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, **kind)
        policy(torch.tensor([prompts[0]]), labels=torch.tensor([prompts[0]])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with pytest.raises(StaleWeights, match="changed since"):
            engine.sample(policy, prompts, 2, 4, None, 1.0)
        engine.sync(policy, 1)
        engine.sample(policy, prompts, 2, 4, None, 1.0)

    policy.load_state_dict(fresh_policy(tokenizer, seed=9).state_dict())
    with pytest.raises(StaleWeights):
        engine.sample(policy, prompts, 2, 4, None, 1.0)
    engine.sync(policy, 2)
    with pytest.raises(StaleWeights):  # another policy object than the synced one
        engine.sample(fresh_policy(tokenizer), prompts, 2, 4, None, 1.0)
    other = engine_for(policy)
    other.sync(policy, 3)
    with pytest.raises(StaleWeights, match="another engine"):
        engine.sample(policy, prompts, 2, 4, None, 1.0)


@needs_vllm
def test_a_sync_that_misses_a_weight_raises(built, tokenizer, monkeypatch):
    from rlvr.rollout.engines import vllm_engine

    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    real = vllm_engine.hf_weights

    def without_one(p):
        yield from ((n, t) for n, t in real(p) if "layers.2.self_attn.k_proj" not in n)

    with torch.no_grad():  # an update that moved the weight the broken sync leaves out
        k = policy.model.layers[2].self_attn.k_proj.weight
        k.add_(torch.randn(k.shape, generator=torch.Generator().manual_seed(0)) * 0.2)
    monkeypatch.setattr(vllm_engine, "hf_weights", without_one)
    with pytest.raises(EngineError, match="differ from the policy"):
        engine.sync(policy, 1)
    with pytest.raises(StaleWeights):
        engine.sample(policy, prompts_of(tokenizer, ["1+2="]), 1, 4, None, 1.0)
    monkeypatch.setattr(vllm_engine, "hf_weights", real)
    engine.sync(policy, 1)  # the engine takes a full sync again
    engine.sample(policy, prompts_of(tokenizer, ["1+2="]), 1, 4, None, 1.0)


@needs_vllm
def test_prefix_cache_serves_the_group_and_the_next_turn(built, tokenizer):
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    engine.stats()  # counters start now
    prompt = prompts_of(tokenizer, ["Question: what is 12 plus 30, minus 7? Think first."])[0]
    assert 32 < len(prompt) < 64
    first = engine.sample(policy, [prompt], 4, 16, None, 1.0, keys=[1, 2, 3, 4])
    stats = engine.stats()
    # KV blocks are 32 tokens: the three later requests of the group find the first block
    assert stats["rollout/cached_prompt_tokens"] == 3 * 32
    assert stats["rollout/prefix_cache_hit_rate"] == pytest.approx(96 / (4 * len(prompt)))

    # a second turn: the episode so far (prompt, the model's turn, an observation) continues
    turn = prompt + first.tokens[0].tolist() + prompts_of(tokenizer, ["<obs>ok</obs>"])[0]
    engine.sample(policy, [turn], 1, 8, None, 1.0, keys=[5])
    stats = engine.stats()
    print("second turn:", stats)
    assert stats["rollout/cached_prompt_tokens"] == 32 * (
        len(prompt + first.tokens[0].tolist()) // 32
    )
    assert stats["rollout/prefix_cache_hit_rate"] > 0

    engine.sync(policy, 1)  # new weights: nothing cached may be reused
    engine.sample(policy, [prompt], 1, 4, None, 1.0, keys=[1])
    assert engine.stats()["rollout/cached_prompt_tokens"] == 0


@needs_vllm
def test_a_sample_depends_on_its_key_not_on_its_batch(built, tokenizer):
    """What holds on vLLM's CPU build at fp32 (seeded requests draw from their own generator):
    the same key, prompt and weights give the same tokens alone, in a group, and among other
    prompts, lengths and keys. Different keys give different samples. (Batch composition could
    still flip a near-tie through the logits' rounding; at fp32 here it did not.)"""
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    prompts = prompts_of(tokenizer, ["5+6=", "a longer prompt, 99-12=", "x", "<answer>"])
    for top_p in (1.0, 0.9):
        keys = [sample_key("seed", top_p, i) for i in range(8)]
        group = engine.sample(policy, prompts[:1], 8, 20, None, 0.8, top_p, keys=keys)
        alone = engine.sample(policy, prompts[:1], 1, 20, None, 0.8, top_p, keys=[keys[5]])
        mixed_keys = [sample_key("other", i) for i in range(3 * 3)] + [keys[5]] * 3
        mixed = engine.sample(
            policy, prompts[1:] + prompts[:1], 3, 20, None, 0.8, top_p, keys=mixed_keys
        )
        assert alone.tokens[0].tolist() == group.tokens[5].tolist()
        for row in (9, 10, 11):
            assert mixed.tokens[row].tolist() == group.tokens[5].tolist()
            assert mixed.logprobs[row].tolist() == pytest.approx(
                group.logprobs[5].tolist(), abs=1e-5
            )
        assert len({tuple(r) for r in group.tokens.tolist()}) == 8
        again = engine.sample(policy, prompts[:1], 8, 20, None, 0.8, top_p, keys=keys)
        assert torch.equal(again.tokens, group.tokens)


@needs_vllm
def test_top_p_logprobs_are_of_the_renormalised_nucleus(built, tokenizer):
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    prompts = prompts_of(tokenizer, ["8+8="])
    sampled = engine.sample(policy, prompts, 4, 16, None, 0.8, 0.9, keys=[11, 12, 13, 14])
    for row in range(4):
        ids = sampled.tokens[row]
        with torch.no_grad():
            logits = (
                policy(torch.tensor([prompts[0] + ids.tolist()])).logits[
                    0, len(prompts[0]) - 1 : -1
                ]
                / 0.8
            )
        probs, order = torch.softmax(logits, -1).sort(-1, descending=True)
        probs = probs * (probs.cumsum(-1) - probs < 0.9)
        nucleus = torch.zeros_like(probs).scatter(-1, order, probs / probs.sum(-1, keepdim=True))
        expected = nucleus.log().gather(-1, ids[:, None]).squeeze(-1)
        assert sampled.logprobs[row].tolist() == pytest.approx(expected.tolist(), abs=1e-4)


@needs_vllm
def test_a_too_long_prompt_is_named_not_cut(built, tokenizer):
    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    prompts = prompts_of(tokenizer, ["1+1=", "2+2="]) + [[5] * (MAX_LEN - 15)]
    with pytest.raises(EngineError, match=r"prompt 2 has 177 tokens.*rollout\.vllm\.max_model_len"):
        engine.sample(policy, prompts, 2, 16, None, 1.0)
    engine.sample(policy, prompts, 2, 15, None, 1.0)  # exactly the engine's length fits


@needs_vllm
def test_lora_policy_is_sent_merged(built, tokenizer):
    from rlvr.config import ModelConfig
    from rlvr.models.lora import apply_lora

    policy = apply_lora(fresh_policy(tokenizer), ModelConfig(lora_r=4))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:  # zero at initialisation: give the adapters a delta
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    engine = engine_for(policy)
    engine.sync(policy, 0)
    assert all(torch.equal(before[n], p) for n, p in policy.named_parameters())  # untouched

    merged = copy.deepcopy(policy).merge_and_unload().eval()
    prompts = prompts_of(tokenizer, ["9+9=", "what"])
    keys = [sample_key("lora", i) for i in range(4)]
    sampled = engine.sample(policy, prompts, 2, 16, None, 1.0, keys=keys)
    learner = torch.cat(teacher_forced(merged, prompts, sampled, 2, 1.0))
    gap = (learner - sampled.logprobs.reshape(-1)).abs()
    print(f"LoRA merged: |dlogp| mean {gap.mean():.2e} max {gap.max():.2e}")
    assert gap.mean() < 1e-5 and gap.max() < 1e-4


@needs_vllm
def test_a_sync_that_fails_halfway_breaks_the_engine_and_a_new_one_is_built(
    built, tokenizer, monkeypatch
):
    """Near the end of the module: the failed sync costs the shared engine (rebuilt here)."""
    from rlvr.rollout.engines import vllm_engine

    policy = fresh_policy(tokenizer)
    engine = engine_for(policy)
    engine.sync(policy, 0)
    real = vllm_engine.hf_weights

    def renamed(p):
        for name, t in real(p):
            yield ("model.no_such_layer.weight" if "layers.1.mlp.up_proj" in name else name), t

    monkeypatch.setattr(vllm_engine, "hf_weights", renamed)
    with pytest.raises(EngineError, match="no_such_layer"):
        engine.sync(policy, 1)
    with pytest.raises(StaleWeights):
        engine.sample(policy, prompts_of(tokenizer, ["1+2="]), 1, 4, None, 1.0)
    monkeypatch.setattr(vllm_engine, "hf_weights", real)
    with pytest.raises(EngineError, match="cannot take weights any more"):
        engine.sync(policy, 1)
    fresh = engine_for(policy)
    assert fresh._shared is not engine._shared
    fresh.sync(policy, 1)
    greedy = fresh.sample(policy, prompts_of(tokenizer, ["1+2="]), 1, 8, None, 0.0)
    native = NativeEngine(tokenizer.pad_token_id).sample(
        policy, prompts_of(tokenizer, ["1+2="]), 1, 8, None, 0.0
    )
    assert torch.equal(greedy.tokens, native.tokens)


@needs_vllm
def test_an_engine_that_cannot_start_says_which_setting(built, tokenizer):
    """Last in the module: a failed start replaces the module's engine (it is rebuilt here)."""
    from rlvr.rollout.engines.vllm_engine import VllmEngine

    policy = fresh_policy(tokenizer)
    with pytest.raises(
        EngineError, match="max_position_embeddings 256.*rollout.vllm.max_model_len"
    ):
        VllmEngine(policy, 300, SETTINGS)
    with pytest.raises(EngineError, match=r"raise rollout\.vllm\.kv_cache_gib"):
        VllmEngine(policy, MAX_LEN, VllmConfig(kv_cache_gib=0.0001, eager=True))
    engine = engine_for(policy)  # and the process can build one again
    engine.sync(policy, 0)
    assert (
        int(engine.sample(policy, prompts_of(tokenizer, ["1+1="]), 2, 4, None, 1.0).lengths.sum())
        == 8
    )
