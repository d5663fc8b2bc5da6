"""Multi-turn episodes are token-exact: the model's tokens are kept as sampled (their log-probs
under the policy match a teacher-forced forward), environment tokens never carry loss,
sequences only grow, and GRPO gives one advantage per episode, on the model's tokens only."""

from __future__ import annotations

import importlib

import pytest
import torch

from rlvr.envs.base import Turn
from rlvr.models.tiny import build_model, build_tokenizer
from rlvr.rollout.episodes import OBS_TAGS, EpisodeLimits, EpisodeRunner, TurnCodec
from rlvr.tasks.base import Example
from rlvr.train.logprobs import rollout_logprobs
from rlvr.verifiers.base import Verdict

# the module, not the function of the same name that rlvr.rollout exports
generate_module = importlib.import_module("rlvr.rollout.generate")


class EchoEnv:
    """A stub environment: replies with something about the action, ends after ``max_turns``
    (or when the action contains ``stop_on``); the verdict rewards turns that contain a 7."""

    name = "echo"

    def __init__(self, example: Example, max_turns: int = 3, stop_on: str | None = None):
        self.example, self.max_turns, self.stop_on = example, max_turns, stop_on
        self.actions: list[str] = []

    def reset(self) -> str:
        self.actions = []
        return self.example.prompt

    def step(self, action: str) -> Turn:
        self.actions.append(action)
        done = len(self.actions) >= self.max_turns or bool(self.stop_on and self.stop_on in action)
        return Turn(f"len {len(action)}: {action[:3]}", done)

    def verdict(self) -> Verdict:
        hit = sum("7" in a for a in self.actions) / max(len(self.actions), 1)
        return Verdict(hit, "correct" if hit == 1 else ("partial" if hit else "wrong"))


PROMPTS = ["12+34=", "5+6=", "9="]


@pytest.fixture(scope="module")
def policy():
    tok = build_tokenizer(OBS_TAGS)
    model = build_model(tok, hidden_size=32, num_layers=2, num_heads=2, seed=3)
    with torch.no_grad():  # sharper than HF's init: turns of varied length, some EOS
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(8)
    return model.eval(), tok


def play(model, tok, G=3, limits=EpisodeLimits(3, 12, 80), temperature=1.0, seed=0, **env_kw):
    envs = [
        EchoEnv(Example(f"p{i}", p, None), max_turns=limits.max_turns, **env_kw)
        for i, p in enumerate(PROMPTS)
        for _ in range(G)
    ]
    runner = EpisodeRunner(tok, TurnCodec(tok), limits, workers=2)
    try:
        ro, verdicts = runner.run(
            model, envs, G, temperature, 1.0, torch.Generator().manual_seed(seed)
        )
    finally:
        runner.close()
    return ro, verdicts, envs


@pytest.mark.parametrize("packed", ["1", "0"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_teacher_forced_logprobs_equal_the_sampling_logprobs(
    policy, monkeypatch, packed, temperature
):
    model, tok = policy
    monkeypatch.setenv("RLVR_PACKED", packed)
    ro, _, _ = play(model, tok, temperature=temperature)
    turns = [sum(t["role"] == "model" for t in ep) for ep in ro.turns]
    assert max(turns) >= 2  # several turns exercised
    forced = rollout_logprobs(model, ro, micro_batch=4)
    mask = ro.completion_mask.bool()
    assert mask.sum() > 0
    torch.testing.assert_close(forced[mask], ro.logprobs[mask], atol=2e-5, rtol=0)
    assert (ro.logprobs[~mask] == 0).all()


def test_environment_tokens_never_carry_loss(policy):
    """Split each row into its turns: model segments are mask 1 and decode to the model's turn;
    environment segments are mask 0 and are exactly the codec's encoding of the reply."""
    model, tok = policy
    ro, _, envs = play(model, tok)
    codec = TurnCodec(tok)
    for r, episode in enumerate(ro.turns):
        real = ro.attention_mask[r, ro.prompt_len :].bool()
        ids = ro.completion_ids[r][real].tolist()
        mask = ro.completion_mask[r][real].tolist()
        at = 0
        for turn in episode:
            if turn["role"] == "model":
                n = 0
                while at + n < len(ids) and mask[at + n] == 1:
                    n += 1
                assert n > 0
                assert tok.decode(ids[at : at + n], skip_special_tokens=True) == turn["text"]
            else:
                reply = codec.reply_ids(turn["text"])
                n = len(reply)
                assert ids[at : at + n] == reply and mask[at : at + n] == [0] * n
            at += n
        assert at == len(ids)  # nothing else in the row
        assert episode[-1]["role"] == "model" and mask[-1] == 1  # ends on a model turn
        assert [t["text"] for t in episode if t["role"] == "model"] == envs[r].actions


def test_sequences_only_grow(policy, monkeypatch):
    """What each turn decodes from is a prefix of the finished episode (nothing re-encoded)."""
    model, tok = policy
    seen = []
    real_sample = generate_module.sample_ids  # what the rlvr engine decodes with

    def recording(model, ids, mask, group, *args, **kwargs):
        seen.append([row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)])
        return real_sample(model, ids, mask, group, *args, **kwargs)

    monkeypatch.setattr(generate_module, "sample_ids", recording)
    ro, _, _ = play(model, tok, G=2)
    finals = [ro.input_ids[r][ro.attention_mask[r].bool()].tolist() for r in range(len(ro))]
    assert len(seen) >= 2
    for prefixes in seen[1:]:  # turn 2 onwards: one row per active episode
        for prefix in prefixes:
            assert any(f[: len(prefix)] == prefix and len(f) > len(prefix) for f in finals)


def test_limits_end_episodes_on_a_model_turn(policy):
    model, tok = policy
    # a tight episode budget: replies (~12 tokens) soon leave no room for another turn
    ro, _, _ = play(model, tok, limits=EpisodeLimits(5, 6, 30))
    for r in range(len(ro)):
        real = ro.attention_mask[r, ro.prompt_len :].bool()
        assert ro.completion_mask[r][real][-1] == 1
        total = int(ro.attention_mask[r].sum())
        assert total <= 30
    assert ro.truncated.any()
    # a turn that hits max_turn_tokens without EOS ends its episode, flagged truncated
    ro, _, _ = play(model, tok, limits=EpisodeLimits(3, 2, 60))
    eos = tok.eos_token_id
    for r in range(len(ro)):
        real = ro.attention_mask[r, ro.prompt_len :].bool()
        ids, mask = ro.completion_ids[r][real].tolist(), ro.completion_mask[r][real].tolist()
        runs, current = [], []
        for t, m in zip(ids, mask, strict=True):
            if m:
                current.append(t)
            elif current:
                runs, current = [*runs, current], []
        runs.append(current)
        assert all(run[-1] == eos and len(run) <= 2 for run in runs[:-1])
        if bool(ro.truncated[r]):
            assert len(runs[-1]) == 2 and runs[-1][-1] != eos
        else:
            assert runs[-1][-1] == eos
    assert ro.truncated.any()


def test_one_advantage_per_episode_applied_to_model_tokens_only(policy):
    from rlvr.algorithms import LossSettings, compute_advantages, policy_loss

    model, tok = policy
    ro, verdicts, _ = play(model, tok)
    rewards = torch.tensor([v.score for v in verdicts])
    adv = compute_advantages("grpo", rewards, 3)
    assert adv.shape == (len(ro),)
    logp = ro.logprobs.clone().requires_grad_(True)
    loss, _ = policy_loss(
        logp, ro.logprobs, adv, ro.completion_mask, LossSettings(beta=0.0, aggregation="token")
    )
    loss.backward()
    env_positions = (ro.completion_mask == 0) & ro.attention_mask[:, ro.prompt_len :].bool()
    assert env_positions.any()
    assert (logp.grad[env_positions] == 0).all()
    model_positions = ro.completion_mask.bool()
    for r in range(len(ro)):  # every model token of a row gets the same signed weight
        g = logp.grad[r][model_positions[r]]
        if adv[r] != 0:
            assert torch.allclose(g, g[0].expand_as(g)) and torch.sign(g[0]) == -torch.sign(adv[r])


def test_chat_template_replies_are_the_templates_delta(tmp_path):
    from byo_fixtures import save_byo_model

    from rlvr.models.load import load_policy

    _, tok = load_policy(save_byo_model(tmp_path / "m"), "cpu")
    codec = TurnCodec(tok)
    reply = codec.reply_text("f(0): expected 4, got 3")
    conversation = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "f(0): expected 4, got 3"},
    ]
    full = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    first = tok.apply_chat_template(conversation[:1], tokenize=False, add_generation_prompt=True)
    # prompt + the model's turn ("A" then its EOS) + the reply = the template's rendering, where
    # the template closes the assistant turn with its own marker instead of EOS
    assert full == first + "A" + reply
    assert codec.prompt_text("hi") == first
