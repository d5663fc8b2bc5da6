"""VerifierPool: order, errors, timeouts, inline vs threads; ProcessWorkers: hard kill."""

from __future__ import annotations

import math
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.verifiers import Verdict, get_verifier
from rlvr.verifiers.pool import ProcessWorkers, VerifierPool, WorkerCrashed, WorkerTimeout


class Echo:
    """Correct when the response equals the reference; records the threads it ran on."""

    name = "echo"

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def verify(self, response: str, reference: object) -> Verdict:
        self.threads.add(threading.get_ident())
        if response == "raise":
            raise RuntimeError("boom")
        if response == "hang":
            time.sleep(3)
        if response == "not a verdict":
            return 1.0  # type: ignore[return-value]
        ok = response == reference
        return Verdict(float(ok), "correct" if ok else "wrong")


class InlineEcho(Echo):
    runs_in_process = True


def test_order_is_preserved_and_threads_are_used() -> None:
    verifier = Echo()
    responses = [str(i) for i in range(40)]
    references = [str(i) if i % 3 else "x" for i in range(40)]
    with VerifierPool(workers=4) as pool:
        verdicts = pool.score(verifier, responses, references)
    assert [v.score for v in verdicts] == [0.0 if i % 3 == 0 else 1.0 for i in range(40)]
    assert threading.get_ident() not in verifier.threads


def test_inline_verifiers_run_in_the_callers_thread() -> None:
    verifier = InlineEcho()
    verdicts = VerifierPool(workers=4).score(verifier, ["a", "b"], ["a", "a"])
    assert [v.status for v in verdicts] == ["correct", "wrong"]
    assert verifier.threads == {threading.get_ident()}


@pytest.mark.parametrize("cls", [Echo, InlineEcho])
def test_exceptions_and_bad_returns_become_error_verdicts(cls: type[Echo]) -> None:
    verdicts = VerifierPool(workers=2).score(
        cls(), ["raise", "ok", "not a verdict"], ["", "ok", ""]
    )
    assert verdicts[0].status == "error" and "RuntimeError: boom" in verdicts[0].detail
    assert verdicts[1].correct
    assert verdicts[2].status == "error" and "not a Verdict" in verdicts[2].detail


def test_a_hung_check_times_out_and_the_rest_still_finish() -> None:
    pool = VerifierPool(workers=1, timeout_s=0.3)
    verdicts = pool.score(Echo(), ["hang", "a", "b"], ["", "a", "b"])
    assert verdicts[0].status == "timeout" and verdicts[0].score == 0.0
    assert [v.status for v in verdicts[1:]] == ["correct", "correct"]


def test_empty_batch_and_mismatched_lengths() -> None:
    pool = VerifierPool()
    assert pool.score(Echo(), [], []) == []
    assert pool.workers >= 1
    with pytest.raises(ValueError, match="2 responses but 1 references"):
        pool.score(Echo(), ["a", "b"], ["a"])
    pool.close()
    with pytest.raises(RuntimeError, match="after close"):
        pool.score(Echo(), [], [])


def test_arithmetic_through_the_pool() -> None:
    verdicts = VerifierPool(workers=2).score(
        get_verifier("arithmetic"), ["<answer>4</answer>", "\\boxed{5}"], [4, 4]
    )
    assert [v.score for v in verdicts] == [1.0, 0.0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["raise", "not a verdict", "a", "b", ""]), max_size=8))
def test_property_scores_lie_in_unit_interval_and_never_raise(responses: list[str]) -> None:
    verdicts = VerifierPool(workers=3).score(Echo(), responses, ["a"] * len(responses))
    assert len(verdicts) == len(responses)
    assert all(0.0 <= v.score <= 1.0 for v in verdicts)


def test_process_workers_kill_on_timeout_and_recover() -> None:
    workers = ProcessWorkers()
    try:
        assert workers.call(math.factorial, (5,), 30) == 120
        with pytest.raises(WorkerTimeout):  # a 30 s sleep, killed at 0.3 s
            workers.call(time.sleep, (30,), 0.3)
        with pytest.raises(WorkerCrashed, match="ValueError"):
            workers.call(math.factorial, (-1,), 30)
        assert workers.call(math.factorial, (4,), 30) == 24  # a fresh child took over
    finally:
        workers.close()
