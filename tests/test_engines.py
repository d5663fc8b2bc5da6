"""The rollout engine seam, engine-agnostic: which engine runs and why, the correction of the
engine/learner mismatch (the formula by hand, and what equal log-probs leave unchanged), the
mismatch metrics, the versioned sync in the RL loop and its refusal of a stale batch. The vLLM
engine itself is tested in tests/test_vllm_engine.py."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from rlvr.algorithms import LossSettings, policy_loss
from rlvr.rollout import engines
from rlvr.rollout.engines import EngineError, NativeEngine, StaleWeights, choose_engine
from rlvr.train.grpo import engine_mismatch

# -- which engine, and why -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    from rlvr.models.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    return build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2), tokenizer


def test_auto_without_vllm_is_rlvr_and_says_why(tiny, monkeypatch) -> None:
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    name, why = choose_engine("auto", tiny[0])
    assert name == "rlvr" and "not installed" in why and "make setup-vllm" in why


def test_asking_for_vllm_without_it_names_the_install(tiny, monkeypatch) -> None:
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    with pytest.raises(EngineError, match="make setup-vllm"):
        choose_engine("vllm", tiny[0])


def test_auto_follows_the_cpu_crossover(tiny, monkeypatch) -> None:
    monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    name, why = choose_engine("auto", tiny[0])  # a few thousand parameters: below it
    assert name == "rlvr" and "below the CPU crossover" in why
    monkeypatch.setattr(engines, "CPU_CROSSOVER_PARAMS", 10)
    name, why = choose_engine("auto", tiny[0])
    assert name == "vllm" and "at or above" in why
    assert choose_engine("rlvr", tiny[0]) == ("rlvr", "rollout.engine: rlvr")


def test_the_engine_setting_is_validated() -> None:
    from rlvr.config import ConfigError, load_config

    assert load_config(overrides=["rollout.engine=vllm"]).rollout.engine == "vllm"
    with pytest.raises(ConfigError, match="rollout.engine"):
        load_config(overrides=["rollout.engine=sglang"])


# -- the correction, by hand -------------------------------------------------------------------


def test_equal_log_probs_give_exactly_the_uncorrected_loss_and_gradient() -> None:
    old = torch.tensor([[-0.6, -1.0, -2.0], [-0.3, -0.9, -0.1]])
    adv, mask = torch.tensor([0.8, -0.5]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    grads, losses = [], []
    for behaviour in (None, old.clone()):
        for correction in ("truncate", "mask"):
            logp = (old + torch.tensor([[0.05, -0.1, 0.3], [0.2, 0.0, -0.4]])).requires_grad_()
            s = LossSettings(importance_correction=correction, sequence_band=1.5)
            loss, _ = policy_loss(logp, old, adv, mask, s, behaviour_logp=behaviour)
            loss.backward()
            losses.append(float(loss.detach()))
            grads.append(logp.grad)
    assert len(set(losses)) == 1
    assert all(torch.equal(g, grads[0]) for g in grads)


def test_a_synthetic_mismatch_gives_the_formulas_weights() -> None:
    """Per token w = pi_old / pi_engine; truncate: min(w, C); mask: w where w <= C, else 0. With
    ratio 1 (pi_theta = pi_old) and A = 1, the sequence-mean loss is -mean(w) over the tokens."""
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    engine = old - torch.tensor([[math.log(0.5), math.log(1.5), math.log(4.0)]])  # w = .5 1.5 4
    for correction, w in (("truncate", [0.5, 1.5, 2.0]), ("mask", [0.5, 1.5, 0.0])):
        logp = old.clone().requires_grad_()
        s = LossSettings(importance_correction=correction, importance_clip=2.0)
        loss, m = policy_loss(logp, old, torch.ones(1), torch.ones(1, 3), s, behaviour_logp=engine)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(-sum(w) / 3)
        torch.testing.assert_close(logp.grad, torch.tensor([[-x / 3 for x in w]]))
        assert m["importance/weight_mean"] == pytest.approx(sum(w) / 3)
        assert m["importance/clipped_frac"] == pytest.approx(1 / 3)


def test_the_sequence_band_drops_whole_samples() -> None:
    """Sample 0's mean log-weight is 0.05 (inside log 1.1 = 0.095), sample 1's is 0.3: only
    sample 0 stays in the loss, with its token weights."""
    old = torch.zeros(2, 2)
    engine = -torch.tensor([[0.05, 0.05], [0.2, 0.4]])
    logp = old.clone().requires_grad_()
    s = LossSettings(sequence_band=1.1, importance_clip=10.0)
    loss, m = policy_loss(logp, old, torch.ones(2), torch.ones(2, 2), s, behaviour_logp=engine)
    assert float(loss.detach()) == pytest.approx(-math.exp(0.05) / 2)  # (sample 0's mean + 0) / 2
    assert m["importance/rejected_sequences"] == pytest.approx(0.5)
    loss.backward()
    assert torch.equal(logp.grad[1], torch.zeros(2))


def test_the_mismatch_metrics_by_hand() -> None:
    learner = torch.tensor([[-1.0, -2.0, -3.0]])
    engine = torch.tensor([[-1.1, -1.8, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third token is not counted
    abs_sum, k3_sum, top = engine_mismatch(learner, engine, mask)
    d = [0.1, -0.2]
    assert abs_sum == pytest.approx(0.3)
    assert k3_sum == pytest.approx(sum(math.expm1(x) - x for x in d))
    assert top == pytest.approx(math.exp(0.1))


def _batch(tiny, algo):
    from rlvr.config import RolloutConfig
    from rlvr.rollout.sources import SingleTurn
    from rlvr.tasks.arithmetic import AdditionTask
    from rlvr.train.grpo import collect_batch
    from rlvr.verifiers.base import Verdict

    model, tokenizer = tiny
    rewards = iter([1.0, 0.0] * 100)

    def score(texts, refs):
        return [
            Verdict(r, "correct" if r else "wrong") for r, _ in zip(rewards, texts, strict=False)
        ]

    r = RolloutConfig(group_size=2, max_new_tokens=6)
    source = SingleTurn(tokenizer, score, r.group_size, r.max_new_tokens, 0.7)
    examples = AdditionTask().examples("train", 4)
    return collect_batch(model, source, iter(examples), 4, algo, 0, tokenizer.pad_token_id)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_vllm_batch_is_weighted_by_the_engines_log_probs(tiny, threads, monkeypatch) -> None:
    """With ``engine_correction: auto`` a batch sampled by vLLM has every row weighted by
    pi_old / pi_engine: the update's gradient is that of the loss computed so, in one piece,
    and it logs the mismatch as token means."""
    monkeypatch.setenv("RLVR_UPDATE_THREADS", threads)
    import rlvr.train.grpo as grpo
    from rlvr.config import AlgorithmConfig, RLConfig
    from rlvr.train.logprobs import token_logprobs

    model, _ = tiny
    algo = AlgorithmConfig(beta=0.0, importance_clip=1.05)
    batch = _batch(tiny, algo)
    ro = batch.rollouts
    ro.engine = "vllm"
    g = torch.Generator().manual_seed(0)
    ro.logprobs = (ro.logprobs + 0.05 * torch.randn(ro.logprobs.shape, generator=g)) * (
        ro.completion_mask
    )
    settings = grpo.loss_settings(algo, 6)

    whole = copy.deepcopy(model).train()
    logp, _ = token_logprobs(
        whole, ro.input_ids, ro.attention_mask, ro.completion_mask.shape[1],
        temperature=ro.temperature,
    )  # fmt: skip
    loss, m = policy_loss(
        logp, logp.detach(), batch.advantages, batch.loss_mask, settings, behaviour_logp=ro.logprobs
    )
    loss.backward()
    expected = torch.cat([p.grad.flatten() for p in whole.parameters()])
    assert 0 < m["importance/clipped_frac"] < 1

    m2 = copy.deepcopy(model)
    opt = torch.optim.SGD(m2.parameters(), lr=0.0)
    opt.zero_grad = lambda set_to_none=True: None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    out = grpo.update_policy(m2, batch, opt, sched, settings, algo, RLConfig(max_grad_norm=1e9))
    got = torch.cat([p.grad.flatten() for p in m2.parameters()])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    live = batch.advantages != 0
    mask = batch.loss_mask[live]
    d = (logp.detach()[live] - ro.logprobs[live]) * mask
    assert out["rollout/mismatch_abs_logp"] == pytest.approx(float(d.abs().sum() / mask.sum()))
    assert out["rollout/mismatch_max_ratio"] == pytest.approx(float(torch.exp(d[mask > 0]).max()))
    # the same batch from rlvr's own decoders is not corrected (auto), only measured
    ro.engine = "rlvr"
    m3 = copy.deepcopy(model)
    opt = torch.optim.SGD(m3.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    out = grpo.update_policy(m3, batch, opt, sched, settings, algo, RLConfig())
    assert "importance/weight_mean" not in out and "rollout/mismatch_kl" in out


# -- the loop: versioned syncs -------------------------------------------------------------------


def _train_cfg(tmp_path, name, steps=3):
    from rlvr.config import load_config

    return load_config(
        name=name,
        out_dir=str(tmp_path),
        model={"hidden_size": 32, "num_layers": 1, "num_heads": 2},
        rollout={"group_size": 2, "max_new_tokens": 4},
        rl={"steps": steps, "prompts_per_step": 2, "eval_every": 0, "save_every": 0},
        eval={"heldout": 4, "k": 1, "samples": 1},
        logging={"progress": False, "samples_per_step": 0},
    )


def test_every_step_records_its_weight_version_and_the_sync(tmp_path) -> None:
    from rlvr import api

    cfg = _train_cfg(tmp_path, "versions")
    summary = api.train(cfg)
    rows = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rows if r["stage"] == "rl"]
    assert [r["rollout/weight_version"] for r in rl] == [0.0, 1.0, 2.0]  # moves with the updates
    assert all(r["time/weight_sync"] >= 0 for r in rl)
    # rlvr's decoders and the learner's forward agree up to float rounding
    assert all(r["rollout/mismatch_abs_logp"] < 1e-4 for r in rl)
    assert summary["rollout_engine"] == "rlvr" and summary["rollout_engine_reason"]


class _ForgetfulEngine(NativeEngine):
    """Takes the first sync and ignores the later ones: an engine left stale."""

    def sync(self, policy, version: int) -> None:
        if self.version is None:
            self.version = version


def test_a_batch_sampled_with_stale_weights_is_refused(tmp_path, monkeypatch) -> None:
    from rlvr import api, wiring
    from rlvr.rollout.prompts import pad_id

    monkeypatch.setattr(
        wiring, "build_engine", lambda cfg, tok, policy: _ForgetfulEngine(pad_id(tok))
    )
    cfg = _train_cfg(tmp_path, "stale")
    with pytest.raises(StaleWeights, match="version \\[0\\].*policy is at version 1"):
        api.train(cfg)
    rows = (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows if '"rl"' in r] == [1]  # step 2 never trained
