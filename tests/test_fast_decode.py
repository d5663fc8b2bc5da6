"""fast_decode reproduces the HF decode loop: same tokens (greedy and seeded sampling), logits
equal to float rounding, for Llama and Qwen2 (q/k/v biases) with grouped-query attention."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlvr.models.tiny import build_tokenizer
from rlvr.rollout import fast_decode
from rlvr.rollout.generate import encode_prompts, generate, hf_decode, use_fast_decode
from rlvr.rollout.sampling import Sampler, keyed_uniform, sample_key

PROMPTS = ["12+34=", "5+6=", "999+100=", "7="]


def tiny(kind: str, tok, seed: int = 3):
    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.3,
    )  # fmt: skip  (wide init: varied greedy tokens)
    torch.manual_seed(seed)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True)).eval()
    model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=False)).eval()
    with torch.no_grad():  # random init leaves the q/k/v biases at zero; make them count
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    return model


def both_paths(model, tok, group_size, steps, temperature, seed=0):
    ids, mask = encode_prompts(tok, PROMPTS, torch.device("cpu"))
    out, seen = [], []
    for decode in (hf_decode, fast_decode.decode):
        gen = torch.Generator().manual_seed(seed)
        logits = []

        sampler = Sampler(temperature, 1.0, gen)

        def pick(x, rows, t, logits=logits, sampler=sampler):
            logits.append(x.clone())
            return sampler(x, rows, t)

        with torch.no_grad():
            out.append(decode(model, ids, mask, group_size, steps, pick, tok.eos_token_id))
        seen.append(logits)
    return out, seen


@pytest.fixture(params=["llama", "qwen2"])
def model_tok(request):
    tok = build_tokenizer()
    model = tiny(request.param, tok)
    assert use_fast_decode(model, 64), fast_decode.unsupported(model, 64)
    # Make a token the model emits early the EOS, so rows finish at different steps.
    # Make the token whose first appearance varies most across rows the EOS, so rows finish at
    # different steps (greedy, random weights).
    (probe, _), _ = both_paths(model, tok, 1, 8, 0.0)
    tokens = probe[0]

    def spread(t):
        hit = tokens == t
        return len(set(torch.where(hit.any(1), hit.int().argmax(1), 99).tolist()))

    tok.eos_token = tok.convert_ids_to_tokens(max(tokens.unique().tolist(), key=spread))
    return model, tok


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_tokens_and_logits_match_the_hf_loop(model_tok, temperature):
    model, tok = model_tok
    (hf, fast), (hf_logits, fast_logits) = both_paths(model, tok, 3, 16, temperature)
    tokens, lengths, finished, logprobs = hf
    assert lengths.min() < lengths.max() and finished.any()  # ragged finishes exercised
    assert torch.equal(lengths, fast[1]) and torch.equal(finished, fast[2])
    steps = torch.arange(tokens.shape[1]) < lengths[:, None]
    assert torch.equal(tokens[steps], fast[0][steps])
    torch.testing.assert_close(logprobs[steps], fast[3][steps], atol=1e-4, rtol=0)
    assert len(hf_logits) == len(fast_logits)
    for a, b in zip(hf_logits, fast_logits, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_generate_is_the_same_rollout_either_way(model_tok, monkeypatch):
    model, tok = model_tok
    monkeypatch.setenv("RLVR_DECODE_THREADS", "1")  # one shard: one generator, the same draws
    ros = []
    for flag in ("0", "1"):
        monkeypatch.setenv("RLVR_FAST_DECODE", flag)
        gen = torch.Generator().manual_seed(7)
        ros.append(generate(model, tok, PROMPTS, 4, 12, temperature=1.0, generator=gen))
    hf, fast = ros
    assert torch.equal(hf.input_ids, fast.input_ids) and hf.texts == fast.texts
    assert torch.equal(hf.completion_mask, fast.completion_mask)
    assert not fast.input_ids.is_inference()  # rollouts feed the update's autograd


def test_sharded_decoding_is_seeded_and_greedy_equal(model_tok, monkeypatch):
    """On CPU the batch is decoded in one shard per thread; each shard draws from its own
    generator seeded from the caller's, so a seeded run repeats exactly."""
    model, tok = model_tok
    monkeypatch.setenv("RLVR_DECODE_THREADS", "2")
    from rlvr.rollout.generate import decode_shards

    assert decode_shards(model, True, len(PROMPTS)) == 2
    torch.set_num_threads(2)
    runs = [
        generate(model, tok, PROMPTS, 3, 12, temperature=1.0,
                 generator=torch.Generator().manual_seed(seed))
        for seed in (5, 5, 6)
    ]  # fmt: skip
    assert runs[0].texts == runs[1].texts and torch.equal(runs[0].input_ids, runs[1].input_ids)
    assert runs[0].texts != runs[2].texts
    greedy = [generate(model, tok, PROMPTS, 2, 12, temperature=0.0)]
    monkeypatch.setenv("RLVR_DECODE_THREADS", "1")
    greedy.append(generate(model, tok, PROMPTS, 2, 12, temperature=0.0))
    assert greedy[0].texts == greedy[1].texts
    assert torch.equal(greedy[0].completion_mask, greedy[1].completion_mask)
    assert torch.get_num_threads() == 2  # the shards' single-thread setting does not leak


def test_greedy_matches_a_naive_step_by_step_loop(model_tok):
    model, tok = model_tok
    ro = generate(model, tok, PROMPTS, group_size=2, max_new_tokens=10, temperature=0.0)
    assert ro.completion_lengths.min() < ro.completion_lengths.max()
    for i in range(len(ro)):
        seq = tok(PROMPTS[i // 2])["input_ids"]
        with torch.no_grad():
            for _ in range(10):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
                if seq[-1] == tok.eos_token_id:
                    break
        assert ro.input_ids[i][ro.attention_mask[i].bool()].tolist() == seq, f"row {i}"


def test_unsupported_models_fall_back():
    tok = build_tokenizer()
    model = tiny("llama", tok)
    model.config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}
    assert "rope_type" in fast_decode.unsupported(model, 64)
    qwen = tiny("qwen2", tok)
    qwen.config.use_sliding_window, qwen.config.sliding_window = True, 16
    assert "sliding" in fast_decode.unsupported(qwen, 64)
    assert fast_decode.unsupported(qwen, 8) is None


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_sampler_draws_from_the_tempered_softmax(top_p, keyed):
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(20000, 1)
    probs = torch.softmax(logits[0] / 0.7, dim=-1)
    if top_p < 1.0:  # the nucleus: the smallest prefix of sorted tokens reaching top_p
        keep = probs.cumsum(0) - probs < top_p
        probs = probs * keep / (probs * keep).sum()
    keys = torch.tensor([sample_key("test", i) for i in range(20000)]) if keyed else None
    sampler = Sampler(0.7, top_p, torch.Generator().manual_seed(0), keys)
    draws, logp = sampler(logits, torch.arange(20000), 3)
    expected_logp = torch.log_softmax(logits / 0.7, -1).gather(1, draws[:, None])[:, 0]
    torch.testing.assert_close(logp, expected_logp)
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    torch.testing.assert_close(freq, probs, atol=0.012, rtol=0)
    assert (freq[probs == 0] == 0).all()


def test_keyed_uniforms_depend_on_key_position_and_column_only():
    keys = torch.tensor([sample_key(0, 1, "p", g) for g in range(64)])
    u = keyed_uniform(keys, 5, 100)
    assert u.dtype == torch.float64 and float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    torch.testing.assert_close(keyed_uniform(keys[10:20], 5, 100), u[10:20], rtol=0, atol=0)
    assert not torch.equal(keyed_uniform(keys, 6, 100), u)  # another position, other noise
    assert sample_key(0, 1, "p", 3) == sample_key(0, 1, "p", 3) != sample_key(0, 1, "p", 4)


def test_keyed_rollouts_do_not_depend_on_batch_shards_or_order(model_tok, monkeypatch):
    """The same (prompt, key) gives the same completion whether decoded alone, in a bigger batch,
    in another order, or in shards on several threads."""
    model, tok = model_tok
    keys = {(p, g): sample_key("run", p, g) for p in PROMPTS for g in range(3)}

    def rollout(prompts, threads):
        monkeypatch.setenv("RLVR_DECODE_THREADS", str(threads))
        k = torch.tensor([keys[p, g] for p in prompts for g in range(3)])
        ro = generate(model, tok, prompts, 3, 12, temperature=1.0, keys=k)
        return {(p, g): ro.texts[i * 3 + g] for i, p in enumerate(prompts) for g in range(3)}

    torch.set_num_threads(2)
    alone = {}
    for p in PROMPTS:
        alone.update(rollout([p], 1))
    assert rollout(PROMPTS, 1) == alone
    assert rollout(PROMPTS[::-1], 2) == alone
    assert len(set(alone.values())) > len(PROMPTS)  # the samples of a group differ
