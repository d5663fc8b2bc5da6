"""The RL math against hand-computed numbers: advantages, clipping, ratios, aggregation, KL,
masking, the overlong penalty and pass@k; then two facts about the training loop (pi_old is
computed once per batch when mu > 1; beta == 0 loads no reference model)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.algorithms import (
    LossSettings,
    group_advantages,
    importance_ratio,
    kl_k1,
    kl_k2,
    kl_k3,
    policy_loss,
    reinforce_pp_advantages,
    rloo_advantages,
)
from rlvr.algorithms.losses import constant_normaliser, seq_mean_token_mean, token_mean
from rlvr.eval import pass_at_k
from rlvr.train.grpo import overlong_penalty

R = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # two groups of G = 4


def close(a: torch.Tensor, b: list[float] | float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=tol, rtol=tol)


# -- advantages ----------------------------------------------------------------------------------


def test_grpo_group_scale_uses_population_std() -> None:
    # group 1: mean 1/4, population std sqrt(3/16); group 2: mean 1/2, std 1/2
    s1 = math.sqrt(3 / 16)
    expected = [0.75 / s1, -0.25 / s1, -0.25 / s1, -0.25 / s1, 1.0, 1.0, -1.0, -1.0]
    close(group_advantages(R, 4, scale="group", eps=0.0), expected)


def test_grpo_batch_scale_divides_by_the_batch_std() -> None:
    sb = math.sqrt(3 / 8 * 5 / 8)  # population std of the 8 rewards (mean 3/8)
    centred = [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5]
    close(group_advantages(R, 4, scale="batch", eps=0.0), [c / sb for c in centred])


def test_grpo_no_scale_is_the_centred_reward() -> None:
    close(group_advantages(R, 4, scale="none"), [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5])


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_tied_groups_get_exactly_zero(scale: str) -> None:
    rewards = torch.tensor([0.3, 0.3, 0.3, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(rewards, 3, scale=scale)
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert adv[6:].tolist() == [0.0, 0.0, 0.0]
    assert adv[3:6].abs().sum() > 0
    for fn in (rloo_advantages, reinforce_pp_advantages):
        out = fn(rewards, 3)
        assert out[:3].tolist() == [0.0] * 3 and out[6:].tolist() == [0.0] * 3


def test_rloo_is_reward_minus_mean_of_the_others() -> None:
    # [1,0,0,0]: 1 - 0 = 1; 0 - 1/3. [1,1,0,0]: 1 - 1/3 = 2/3; 0 - 2/3.
    close(rloo_advantages(R, 4), [1, -1 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3, -2 / 3, -2 / 3])


def test_reinforce_pp_normalises_group_centred_rewards_by_the_batch_std() -> None:
    centred = [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5]  # mean 0 over the batch
    std = math.sqrt(sum(c * c for c in centred) / 8)
    close(reinforce_pp_advantages(R, 4, eps=0.0), [c / std for c in centred])


def test_bad_group_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(torch.ones(5), 4)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n_groups: st.integers(2, 6).flatmap(
            lambda g: st.tuples(
                st.just(g),
                st.lists(
                    st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(-3, 3),
                    min_size=n_groups * g,
                    max_size=n_groups * g,
                ),
            )
        )
    ),
    st.sampled_from(["grpo-group", "grpo-batch", "grpo-none", "rloo", "reinforce++"]),
)
def test_advantages_sum_to_zero_per_group(case: tuple[int, list[float]], name: str) -> None:
    g, rewards = case
    r = torch.tensor(rewards)
    if name.startswith("grpo"):
        adv = group_advantages(r, g, scale=name.split("-")[1])
    elif name == "rloo":
        adv = rloo_advantages(r, g)
    else:
        adv = reinforce_pp_advantages(r, g)
    assert torch.isfinite(adv).all()
    sums = adv.view(-1, g).sum(dim=1)
    scale = 1 + adv.abs().max()
    assert (sums.abs() <= 1e-4 * scale).all(), sums


# -- the clipped surrogate -----------------------------------------------------------------------


def one_token(ratio: float, adv: float, **kw) -> tuple[float, float, dict]:
    """Loss and d loss / d logp for a single token whose ratio to pi_old is ``ratio``."""
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    old = torch.zeros(1, 1)
    loss, metrics = policy_loss(
        logp, old, torch.tensor([adv]), torch.ones(1, 1), LossSettings(**kw)
    )
    loss.backward()
    return float(loss.detach()), float(logp.grad), metrics


@pytest.mark.parametrize(
    ("ratio", "adv", "loss", "grad", "where"),
    [
        (1.5, 1.0, -1.2, 0.0, "high"),  # above 1 + eps with A > 0: clipped, no gradient
        (0.5, -1.0, 0.8, 0.0, "low"),  # below 1 - eps with A < 0: clipped, no gradient
        (1.5, -1.0, 1.5, 1.5, None),  # above 1 + eps with A < 0: unclipped (pessimistic side)
        (0.5, 1.0, -0.5, -0.5, None),  # below 1 - eps with A > 0: unclipped
        (1.1, 1.0, -1.1, -1.1, None),  # inside the trust region
    ],
)
def test_clipping_both_sides(ratio, adv, loss, grad, where) -> None:
    got_loss, got_grad, m = one_token(ratio, adv)
    assert got_loss == pytest.approx(loss, abs=1e-6)
    assert got_grad == pytest.approx(grad, abs=1e-6)  # d(-rho A)/d logp = -rho A when unclipped
    assert m["clip_ratio/high_mean"] == (1.0 if where == "high" else 0.0)
    assert m["clip_ratio/low_mean"] == (1.0 if where == "low" else 0.0)
    assert m["clip_ratio/region_mean"] == (1.0 if where else 0.0)


def test_asymmetric_clip_higher() -> None:
    kw = {"eps_low": 0.2, "eps_high": 0.28}
    assert one_token(1.25, 1.0, **kw)[0] == pytest.approx(-1.25)  # inside 1 + 0.28
    assert one_token(1.4, 1.0, **kw)[0] == pytest.approx(-1.28)
    assert one_token(0.7, -1.0, **kw)[0] == pytest.approx(0.8)  # 1 - 0.2 still binds below


def test_dual_clip_floors_negative_advantages() -> None:
    loss, grad, _ = one_token(5.0, -1.0, dual_clip=3.0)
    assert (loss, grad) == (pytest.approx(3.0), 0.0)  # -5 floored at 3 * A = -3
    loss, grad, _ = one_token(2.0, -1.0, dual_clip=3.0)
    assert (loss, grad) == (pytest.approx(2.0), pytest.approx(2.0))  # above the floor: as before
    assert one_token(5.0, 1.0, dual_clip=3.0)[0] == pytest.approx(-1.2)  # A > 0: untouched


def test_gspo_sequence_ratio_is_the_geometric_mean_of_token_ratios() -> None:
    logp = torch.tensor([[0.1, 0.3, 9.0], [0.2, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ratio = importance_ratio(logp, torch.zeros(2, 3), mask, "sequence")
    close(ratio[0], [math.exp(0.2)] * 3)
    close(ratio[1], [math.exp(0.2)] * 3)
    close(
        importance_ratio(logp, torch.zeros(2, 3), mask, "token")[0],
        [math.exp(0.1), math.exp(0.3), 1.0],
    )
    # Clipped as a whole: exp(0.4) > 1.2 with A > 0 gives -1.2 for every token of the sequence.
    logp = torch.tensor([[0.2, 0.6]], requires_grad=True)
    loss, m = policy_loss(
        logp,
        torch.zeros(1, 2),
        torch.tensor([1.0]),
        torch.ones(1, 2),
        LossSettings(ratio_level="sequence"),
    )
    assert float(loss.detach()) == pytest.approx(-1.2)
    assert m["clip_ratio/high_mean"] == 1.0


# -- importance correction for samples of an older policy (asynchronous RL) ---------------------


@pytest.mark.parametrize(
    ("correction", "weights"),
    [("truncate", [0.5, 2.0, 1.0]), ("mask", [0.5, 0.0, 1.0]), ("none", [1.0, 1.0, 1.0])],
)
def test_behaviour_correction_by_hand(correction: str, weights: list[float]) -> None:
    """pi_old = pi_theta (mu = 1, ratio 1); the behaviour policy mu gave the three tokens
    probabilities 2, 1/3 and 1 times pi_old's: raw weights pi_old / mu = 0.5, 3 and 1; C = 2.
    The third token is masked: whatever its log-probs, weight 1 and no loss."""
    logp = torch.log(torch.tensor([[0.4, 0.3, 0.9]])).requires_grad_(True)
    behaviour = torch.log(torch.tensor([[0.8, 0.1, 0.05]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    s = LossSettings(importance_correction=correction, importance_clip=2.0)
    loss, m = policy_loss(
        logp, logp.detach(), torch.tensor([1.0]), mask, s, behaviour_logp=behaviour
    )
    loss.backward()
    w = weights[:2]
    # per-token loss -w * rho * A with rho = 1; the sequence mean over the two real tokens
    assert float(loss.detach()) == pytest.approx(-(w[0] + w[1]) / 2)
    # d/d logp of -w * exp(logp - old) * A / 2 = -w / 2; the weight itself carries no gradient
    close(logp.grad, [[-w[0] / 2, -w[1] / 2, 0.0]])
    assert m["importance/weight_mean"] == pytest.approx((w[0] + w[1]) / 2)
    assert m["importance/clipped_frac"] == pytest.approx(0.5)  # the 3 > C


def test_behaviour_weight_multiplies_the_clipped_surrogate() -> None:
    """rho = 1.5 (clipped at 1.2 with A > 0) and w = 0.5: the term is -0.5 * 1.2 * A."""
    logp = torch.tensor([[math.log(1.5)]], requires_grad=True)
    old, behaviour = torch.zeros(1, 1), torch.tensor([[math.log(2.0)]])
    loss, _ = policy_loss(
        logp, old, torch.tensor([2.0]), torch.ones(1, 1), LossSettings(), behaviour_logp=behaviour
    )
    assert float(loss.detach()) == pytest.approx(-0.5 * 1.2 * 2.0)


def test_without_behaviour_log_probs_the_loss_is_unchanged() -> None:
    logp = torch.tensor([[-0.7, -1.1]], requires_grad=True)
    old = torch.tensor([[-0.6, -1.0]])
    adv, mask = torch.tensor([0.8]), torch.ones(1, 2)
    plain, m = policy_loss(logp, old, adv, mask, LossSettings())
    same, _ = policy_loss(logp, old, adv, mask, LossSettings(), behaviour_logp=old)
    assert float(plain) == float(same)
    assert "importance/weight_mean" not in m


# -- aggregation ---------------------------------------------------------------------------------

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 7.0, 7.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_sequence_mean_of_token_means() -> None:
    assert float(seq_mean_token_mean(VALUES, MASK)) == pytest.approx((2.0 + 4.0) / 2)


def test_token_mean() -> None:
    assert float(token_mean(VALUES, MASK)) == pytest.approx((1 + 2 + 3 + 4) / 4)


def test_constant_normaliser() -> None:
    assert float(constant_normaliser(VALUES, MASK, max_tokens=5)) == pytest.approx(10 / (2 * 5))
    assert float(constant_normaliser(VALUES, MASK)) == pytest.approx(10 / (2 * 3))


@pytest.mark.parametrize(
    ("aggregation", "expected"), [("sequence", 3.0), ("token", 2.5), ("constant", 1.0)]
)
def test_policy_loss_aggregates_per_token_terms(aggregation: str, expected: float) -> None:
    # A = 0 and an entropy bonus of weight 1 make the per-token loss exactly -VALUES.
    s = LossSettings(aggregation=aggregation, max_completion_tokens=5, entropy_coef=1.0)
    zeros = torch.zeros(2, 3)
    loss, _ = policy_loss(zeros, zeros, torch.zeros(2), MASK, s, entropy=VALUES)
    assert float(loss) == pytest.approx(-expected)


# -- KL ------------------------------------------------------------------------------------------


def test_kl_estimators_by_hand() -> None:
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    close(kl_k1(logp, ref), [math.log(2)])
    close(kl_k2(logp, ref), [0.5 * math.log(2) ** 2])
    close(kl_k3(logp, ref), [0.5 - math.log(0.5) - 1])  # r - log r - 1 with r = pi_ref / pi
    same = torch.tensor([-1.3])
    for fn in (kl_k1, kl_k2, kl_k3):
        assert float(fn(same, same)) == 0.0


def test_kl_penalty_enters_the_loss_with_beta() -> None:
    logp = torch.full((1, 2), math.log(0.5))
    ref = torch.full((1, 2), math.log(0.25))
    s = LossSettings(beta=0.1, kl_estimator="k3")
    loss, m = policy_loss(logp, logp, torch.zeros(1), torch.ones(1, 2), s, ref_logp=ref)
    k3 = 0.5 - math.log(0.5) - 1
    assert float(loss) == pytest.approx(0.1 * k3)
    assert m["kl"] == pytest.approx(k3)
    with pytest.raises(ValueError, match="reference"):
        policy_loss(logp, logp, torch.zeros(1), torch.ones(1, 2), s)


# -- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio_level", ["token", "sequence"])
@pytest.mark.parametrize("aggregation", ["sequence", "token", "constant"])
@pytest.mark.parametrize("kl_estimator", ["k1", "k2", "k3"])
def test_masked_tokens_change_nothing(ratio_level, aggregation, kl_estimator) -> None:
    g = torch.Generator().manual_seed(0)
    shape = (3, 5)
    logp = -torch.rand(shape, generator=g) * 2
    old = logp + 0.1 * torch.randn(shape, generator=g)
    ref = logp + 0.3 * torch.randn(shape, generator=g)
    entropy = torch.rand(shape, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    adv = torch.tensor([1.0, -0.5, 2.0])
    s = LossSettings(
        beta=0.05,
        kl_estimator=kl_estimator,
        ratio_level=ratio_level,
        aggregation=aggregation,
        max_completion_tokens=8,
        dual_clip=3.0,
        entropy_coef=0.01,
    )

    def run(lp, ol, rf, en):
        lp = lp.clone().requires_grad_(True)
        loss, _ = policy_loss(lp, ol, adv, mask, s, ref_logp=rf, entropy=en)
        loss.backward()
        return loss.detach(), lp.grad

    base_loss, base_grad = run(logp, old, ref, entropy)
    off = 1 - mask

    def junk():  # large enough to overflow exp() if it leaked through
        return torch.randn(shape, generator=g) * 200 * off

    loss, grad = run(logp + junk(), old + junk(), ref + junk(), entropy + junk())
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss, base_loss)
    torch.testing.assert_close(grad, base_grad)
    assert (grad[off.bool()] == 0).all()


# -- overlong penalty and pass@k -----------------------------------------------------------------


def test_overlong_penalty_ramp() -> None:
    lengths = torch.tensor([10.0, 44.0, 45.0, 46.0, 48.0])
    close(overlong_penalty(lengths, 48, 4, 1.0), [0.0, 0.0, -0.25, -0.5, -1.0])
    close(overlong_penalty(lengths, 48, 4, 0.5), [0.0, 0.0, -0.125, -0.25, -0.5])


def chen(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", range(1, 7))
def test_pass_at_k_matches_chen_et_al(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(chen(n, c, k), abs=1e-12), (n, c, k)
    with pytest.raises(ValueError):
        pass_at_k(n, n + 1, 1)
    with pytest.raises(ValueError):
        pass_at_k(n, 0, n + 1)


# -- the training loop ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    from rlvr.models.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    return build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2), tokenizer


def make_batch(model, tokenizer, algo, rollout, rewards=(0.0, 1.0)):
    """A batch of 4 prompts whose rewards cycle through ``rewards`` row by row."""
    from rlvr.rollout.sources import SingleTurn
    from rlvr.tasks.arithmetic import AdditionTask
    from rlvr.train.grpo import collect_batch
    from rlvr.verifiers.base import Verdict

    examples = AdditionTask().examples("train", 4)
    cycle = iter(range(10_000))

    def score(texts, refs):
        r = [rewards[next(cycle) % len(rewards)] for _ in texts]
        return [Verdict(x, "correct" if x == 1 else "wrong") for x in r]

    r = rollout
    source = SingleTurn(tokenizer, score, r.group_size, r.max_new_tokens, r.temperature, r.top_p)
    return collect_batch(model, source, iter(examples), 4, algo, 0, tokenizer.pad_token_id)


def test_mu_computes_pi_old_once(tiny, monkeypatch) -> None:
    import rlvr.train.grpo as grpo
    from rlvr.config import AlgorithmConfig, RLConfig, RolloutConfig
    from rlvr.train.optim import make_optimizer

    model, tokenizer = tiny
    calls = []
    real = grpo.rollout_logprobs
    monkeypatch.setattr(grpo, "rollout_logprobs", lambda *a: calls.append(1) or real(*a))
    rollout = RolloutConfig(group_size=2, max_new_tokens=6)
    for mu, expected in [(1, 0), (3, 1)]:
        calls.clear()
        algo = AlgorithmConfig(mu=mu, beta=0.0)
        batch = make_batch(model, tokenizer, algo, rollout)
        opt, sched = make_optimizer(model, 1e-3, 10)
        out = grpo.update_policy(
            model, batch, opt, sched, grpo.loss_settings(algo, 6), algo, RLConfig(), None
        )
        assert len(calls) == expected
        assert math.isfinite(out["loss"])


@pytest.mark.parametrize("aggregation", ["sequence", "token", "constant"])
@pytest.mark.parametrize("micro", [64, 3])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_update_gradient_is_the_full_batch_loss_gradient(
    tiny, aggregation, micro, threads, monkeypatch
) -> None:
    """Micro-batches (gradient accumulation), skipped tied groups (zero advantage) and the CPU
    shards (one thread per shard, gradients summed in order) must give the gradient of the loss
    of the whole batch, computed in one piece."""
    monkeypatch.setenv("RLVR_UPDATE_THREADS", threads)
    import copy

    import rlvr.train.grpo as grpo
    from rlvr.config import AlgorithmConfig, RLConfig, RolloutConfig
    from rlvr.train.logprobs import token_logprobs

    model, tokenizer = tiny
    algo = AlgorithmConfig(aggregation=aggregation, beta=0.0)
    rewards = (1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0)  # groups of 2: tied, live, tied, live
    batch = make_batch(
        model, tokenizer, algo, RolloutConfig(group_size=2, max_new_tokens=8), rewards
    )
    assert (batch.advantages == 0).sum() == 4
    for i in range(len(batch.loss_mask)):  # uneven lengths, so token and row weights differ
        batch.loss_mask[i, 1 + i % 7 :] = 0.0
    settings = grpo.loss_settings(algo, 8)

    whole = copy.deepcopy(model).train()
    ro = batch.rollouts
    logp, _ = token_logprobs(
        whole,
        ro.input_ids,
        ro.attention_mask,
        ro.completion_mask.shape[1],
        temperature=ro.temperature,
    )
    loss, _ = policy_loss(logp, logp.detach(), batch.advantages, batch.loss_mask, settings)
    loss.backward()
    expected = torch.cat([p.grad.flatten() for p in whole.parameters()])

    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=0.0)  # lr 0: keep the gradient, move nothing
    opt.zero_grad = lambda set_to_none=True: None  # keep .grad for inspection
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    rl = RLConfig(micro_batch_size=micro, max_grad_norm=1e9)
    assert grpo.update_shards(m, 4, ro.input_ids.shape[1]) == int(threads)
    out = grpo.update_policy(m, batch, opt, sched, settings, algo, rl, None)
    got = torch.cat([p.grad.flatten() for p in m.parameters()])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    assert out["loss"] == pytest.approx(float(loss), abs=1e-6)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_stale_rows_are_weighted_by_their_behaviour_log_probs(tiny, threads, monkeypatch) -> None:
    """Rows marked stale (sampled by an older policy) enter the loss with weights pi_old / mu
    from their recorded behaviour log-probs; the others with weight 1. The update's gradient is
    that of the whole batch's loss computed so, in one piece."""
    monkeypatch.setenv("RLVR_UPDATE_THREADS", threads)
    import copy

    import rlvr.train.grpo as grpo
    from rlvr.config import AlgorithmConfig, RLConfig, RolloutConfig
    from rlvr.train.logprobs import token_logprobs

    model, tokenizer = tiny
    algo = AlgorithmConfig(beta=0.0, importance_clip=1.05)
    rewards = (1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0)
    batch = make_batch(
        model, tokenizer, algo, RolloutConfig(group_size=2, max_new_tokens=8), rewards
    )
    ro = batch.rollouts
    g = torch.Generator().manual_seed(0)  # as if an older policy had sampled these tokens
    ro.logprobs = ro.logprobs + 0.2 * torch.randn(ro.logprobs.shape, generator=g)
    batch.stale = torch.tensor([True, True, False, False, True, True, False, False])
    settings = grpo.loss_settings(algo, 8)

    whole = copy.deepcopy(model).train()
    width = ro.completion_mask.shape[1]
    logp, _ = token_logprobs(
        whole, ro.input_ids, ro.attention_mask, width, temperature=ro.temperature
    )
    behaviour = torch.where(batch.stale[:, None], ro.logprobs, logp.detach())
    loss, m = policy_loss(
        logp, logp.detach(), batch.advantages, batch.loss_mask, settings, behaviour_logp=behaviour
    )
    loss.backward()
    expected = torch.cat([p.grad.flatten() for p in whole.parameters()])
    assert 0 < m["importance/clipped_frac"] < 1  # some weights truncated at 1.05, some not

    m2 = copy.deepcopy(model)
    opt = torch.optim.SGD(m2.parameters(), lr=0.0)
    opt.zero_grad = lambda set_to_none=True: None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    out = grpo.update_policy(m2, batch, opt, sched, settings, algo, RLConfig(max_grad_norm=1e9))
    got = torch.cat([p.grad.flatten() for p in m2.parameters()])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    assert out["loss"] == pytest.approx(float(loss), abs=1e-6)
    assert "importance/weight_mean" in out


def test_all_tied_still_steps_adam(tiny) -> None:
    """No live row: the gradient is zero, and Adam's momentum still moves, as without skipping."""
    import rlvr.train.grpo as grpo
    from rlvr.config import AlgorithmConfig, RLConfig, RolloutConfig
    from rlvr.train.optim import make_optimizer

    model, tokenizer = tiny
    algo = AlgorithmConfig(beta=0.0)
    batch = make_batch(
        model, tokenizer, algo, RolloutConfig(group_size=2, max_new_tokens=4), (1.0,)
    )
    opt, sched = make_optimizer(model, 1e-3, 10)
    settings = grpo.loss_settings(algo, 4)
    out = grpo.update_policy(model, batch, opt, sched, settings, algo, RLConfig(), None)
    assert out["grad_norm"] == 0.0 and out["loss"] == 0.0
    assert len(opt.state) == len(list(model.parameters()))  # every parameter took its step


@pytest.mark.parametrize(("beta", "loads"), [(0.0, 1), (0.04, 2)])
def test_beta_zero_loads_no_reference(tmp_path, monkeypatch, beta, loads) -> None:
    from rlvr.config import load_config
    from rlvr.context import RunContext
    from rlvr.recipes import r1
    from rlvr.train import learner

    cfg = load_config(
        name="t",
        out_dir=str(tmp_path),
        model={"hidden_size": 32, "num_layers": 1, "num_heads": 2},
        rollout={"group_size": 2, "max_new_tokens": 4},
        algorithm={"beta": beta},
        rl={"steps": 1, "prompts_per_step": 2, "eval_every": 0, "save_every": 0},
        eval={"heldout": 2, "k": 1, "samples": 1},
        logging={"progress": False, "samples_per_step": 0},
    )
    ctx = RunContext(cfg, fresh=True)
    built, references = [], []
    real_init = ctx.initial_policy
    monkeypatch.setattr(ctx, "initial_policy", lambda: built.append(1) or real_init())
    real_update = learner.update_policy
    monkeypatch.setattr(
        learner, "update_policy", lambda *a: references.append(a[-1]) or real_update(*a)
    )
    try:
        r1.stage_rl(ctx, init="init")
    finally:
        ctx.close()
    assert len(built) == loads
    assert (references[0] is None) == (beta == 0)
