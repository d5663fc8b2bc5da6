"""The packed training forward (each distinct prompt once, no compute on padding) gives the HF
forward's completion log-probs, entropies and gradients, for Llama and Qwen2 (q/k/v biases,
grouped-query attention), with prompts shared by several rows and ragged completions."""

import pytest
import torch
from test_fast_decode import tiny

from rlvr.models.tiny import build_tokenizer
from rlvr.rollout.generate import generate
from rlvr.train import logprobs
from rlvr.train.packed_logprobs import packed_logprobs

PROMPTS = ["12+34=", "5+6=", "999+100=", "7="]


@pytest.fixture(params=["llama", "qwen2"])
def rollout(request):
    tok = build_tokenizer()
    model = tiny(request.param, tok)
    gen = torch.Generator().manual_seed(0)
    ro = generate(model, tok, PROMPTS, group_size=3, max_new_tokens=12, temperature=1.5,
                  generator=gen)  # fmt: skip
    return model.train(), ro


def hf_and_packed(model, ro, weights):
    ids, att = ro.input_ids, ro.attention_mask
    width = ro.completion_mask.shape[1]
    out = []
    for fn in (logprobs.hf_logprobs, packed_logprobs):
        model.zero_grad()
        logp, entropy = fn(model, ids, att, width, True, 0.7)
        ((logp + 0.1 * entropy) * ro.completion_mask * weights).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        out.append((logp * ro.completion_mask, entropy * ro.completion_mask, grads))
    return out


def test_logprobs_entropies_and_gradients_match_the_hf_forward(rollout):
    model, ro = rollout
    lengths = ro.completion_lengths
    assert lengths.min() < lengths.max()  # ragged completions: right padding exercised
    assert ro.attention_mask[:, 0].min() == 0  # left-padded prompts
    weights = torch.randn(len(ro), 1, generator=torch.Generator().manual_seed(1))
    (hf_logp, hf_ent, hf_grads), (logp, ent, grads) = hf_and_packed(model, ro, weights)
    torch.testing.assert_close(logp, hf_logp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, hf_ent, atol=1e-5, rtol=1e-5)
    assert any(g.abs().max() > 0 for g in hf_grads)
    for a, b in zip(grads, hf_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_rows_that_share_a_prompt_are_encoded_once(rollout, monkeypatch):
    model, ro = rollout
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, *a, **kw):
        seen.append(q.shape[0])
        return real(q, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        packed_logprobs(model, ro.input_ids, ro.attention_mask, ro.completion_mask.shape[1])
    # per layer: one attention over the 4 distinct prompts, one over the 12 completions
    assert seen[:2] == [len(PROMPTS), len(ro)]


def test_the_hf_forward_serves_what_packing_does_not_model(rollout, monkeypatch):
    model, ro = rollout
    width = ro.completion_mask.shape[1]
    assert logprobs.use_packed(model, ro.attention_mask, width)
    right_padded = ro.attention_mask.clone()
    right_padded[0, ro.prompt_len - 1] = 0  # a prompt whose last column is padding
    assert not logprobs.use_packed(model, right_padded, width)
    monkeypatch.setenv("RLVR_PACKED", "0")
    assert not logprobs.use_packed(model, ro.attention_mask, width)
