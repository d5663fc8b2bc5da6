"""The Coq verifier: honest proofs score 1, each way of changing what is proved scores 0."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.verifiers.coq import CoqVerifier, proof_script, screen, strip_comments

needs_coqc = pytest.mark.skipif(
    shutil.which("coqc") is None, reason="coqc not installed (make setup-test installs coq)"
)

PLUS = {
    "statement": "Theorem plus_O : forall n : nat, n + 0 = n.",
    "preamble": "Require Import Lia.",
}
FALSE = {"statement": "Theorem bad : 1 = 2."}


def score(response: str, reference: object = PLUS, **options: object) -> tuple[float, str]:
    verdict = CoqVerifier(**options).verify(response, reference)  # type: ignore[arg-type]
    return verdict.score, verdict.status


@needs_coqc
@pytest.mark.parametrize(
    "response",
    [
        "Proof. intros n. induction n; simpl; auto. Qed.",
        "intros n. induction n.\n- reflexivity.\n- simpl. rewrite IHn. reflexivity.\nDefined.",
        "```coq\nTheorem plus_O : forall n : nat, n + 0 = n.\nProof.\n  intros. lia.\nQed.\n```",
        '<think>use lia</think><answer>Proof. (* "*)" *) intros. { lia. } Qed.</answer>',
    ],
)
def test_honest_proofs_score_one(response: str) -> None:
    assert score(response) == (1.0, "correct")


ATTACKS = {
    "admitted": "Proof. Admitted.",
    "admit tactic": "Proof. admit. Qed.",
    "new axiom": "Axiom cheat : 1 = 2. Proof. exact cheat. Qed.",
    "abort and prove easier": "Abort. Theorem bad : 1 = 1. Proof. reflexivity. Qed.",
    "qed then module redefinition": "Proof. Fail reflexivity. Qed. Module M. Theorem bad : True. "
    "Proof. exact I. Qed. End M.",
    "closes then defines": "Proof. Qed. Definition x := 0.",
    "unset guard checking": "Unset Guard Checking. Proof. Qed.",
    "bypass attribute": "#[bypass_check(universes)] Proof. Qed.",
    "local notation changing =": 'Local Notation "x = y" := True. Proof. exact I. Qed.',
    "extraction to file": 'Extraction "evil.ml" nat. Proof. Qed.',
    "redirect to file": 'Redirect "evil" Print nat. Proof. Qed.',
    "drop": "Drop. Proof. Qed.",
    "require": "Require Import Coq.Logic.Classical. Proof. Qed.",
    "set printing": "Set Printing All. Proof. Qed.",
    "keyword hidden by a comment": "Proof. (* *) Admitted. (* Qed. *)",
    "string in comment hides command": 'Proof. (* " *) " *) Admitted. (* *)',
    "keyword glued by comment": "Proof. Ad(* *)mitted.",
    "bullet before command": "Proof. - Admitted.",
    "goal selector before command": "Proof. all: Abort. Qed.",
    "restated different theorem": "Theorem bad : 1 = 1. Proof. reflexivity. Qed.",
    "trailing text": "Proof. Qed. Theorem bad",
    "idtac string spoofs output": 'Proof. idtac "Closed under the global context". Qed.',
    "native_compute": "Proof. native_compute. Qed.",
    "unterminated comment": "Proof. (* Qed.",
    # bare scripts (no Proof./Qed. frame) open no way around the screen
    "bare Admitted": "intros. Admitted.",
    "bare Admitted mid-way": "intros. Admitted. exact I.",
    "bare admit": "intros. admit.",
    "bare Abort": "Abort.",
    "bare Abort then an easier theorem": "Abort. Theorem bad : 1 = 1. reflexivity.",
    "bare Axiom": "Axiom cheat : 1 = 2. exact cheat.",
    "Qed mid-way then vernacular": "reflexivity. Qed. Definition x := 0.",
    "Qed mid-way then tactics": "auto. Qed. auto.",
    "closes the frame, opens a new definition": "Qed. Lemma easy : 1 = 1. reflexivity.",
    "Defined mid-way then a theorem": "exact I. Defined. Theorem t : True. exact I. Qed.",
    "Proof twice": "Proof. Proof. auto.",
    "Proof not first": "intros. Proof. auto. Qed.",
    "bare restated different theorem": "Theorem bad : 1 = 1. reflexivity.",
    "no final period": "intros n. induction n; simpl; congruence",
}


@needs_coqc
@pytest.mark.parametrize("attack", ATTACKS.values(), ids=list(ATTACKS))
def test_attacks_are_blocked(attack: str) -> None:
    assert score(attack, FALSE) == (0.0, "blocked")  # refused by the screen, before coqc runs


# The accepted shapes of a script (module docstring of rlvr.verifiers.coq): tactic sentences,
# ``Proof.`` optional at the start, ``Qed.``/``Defined.`` optional at the end (``Qed.`` is added).
SHAPES = {
    "frame": "Proof. intros n. induction n; simpl; congruence. Qed.",
    "no Proof": "intros n. induction n; simpl; congruence. Qed.",
    "bare": "intros n. induction n; simpl; congruence.",
    "Proof, no Qed": "Proof. intros n. induction n; simpl; congruence.",
    "Proof using": "Proof using. intros. lia. Qed.",
    "Proof with, no Qed": "Proof with auto. intros n. induction n...",
    "bare, bullets and comments": "intros n. induction n.\n- reflexivity. (* base *)\n"
    "- simpl. rewrite IHn. reflexivity.\n",
    "bare, restated statement, fenced": "```coq\nTheorem plus_O : forall n : nat, n + 0 = n.\n"
    "intros. lia.\n```",
    "bare, in answer tags": "<think>induction</think><answer>intros n. induction n; auto.</answer>",
}


@needs_coqc
@pytest.mark.parametrize("response", SHAPES.values(), ids=list(SHAPES))
def test_accepted_shapes_score_one(response: str) -> None:
    assert score(response) == (1.0, "correct")


@needs_coqc
def test_the_added_qed_still_has_to_close_the_proof() -> None:
    assert score("intros n.") == (0.0, "wrong")  # goals left: the appended Qed. fails
    assert score("intros n. reflexivity.") == (0.0, "wrong")
    reference = {"statement": "Theorem f : False.", "preamble": "Axiom cheat : False."}
    verdict = CoqVerifier().verify("destruct cheat.", reference)  # Print Assumptions decides
    assert verdict.score == 0.0 and "relies on assumptions" in verdict.detail


@needs_coqc
def test_axioms_from_the_preamble_count_against_the_proof() -> None:
    reference = {"statement": "Theorem f : False.", "preamble": "Axiom cheat : False."}
    assert score("Proof. destruct cheat. Qed.", reference) == (0.0, "wrong")
    allowed = {**reference, "allowed_axioms": ["cheat"]}
    assert score("Proof. destruct cheat. Qed.", allowed) == (1.0, "correct")


@needs_coqc
def test_wrong_proof_and_timeout() -> None:
    assert score("Proof. reflexivity. Qed.") == (0.0, "wrong")
    slow = "Proof. assert (H : 3000 * 3000 * 3000 = 27000000000) by reflexivity. Qed."
    assert score(slow, timeout_s=1.0) == (0.0, "timeout")


def test_missing_coqc_is_an_error_with_a_clear_detail() -> None:
    verdict = CoqVerifier(coqc="no-such-coqc").verify("Proof. Qed.", PLUS)
    assert verdict.status == "error" and "install" in verdict.detail


def test_bad_references() -> None:
    assert CoqVerifier().verify("Proof. Qed.", {"preamble": ""}).status == "error"
    assert CoqVerifier().verify("Proof. Qed.", "Definition x := 0.").status == "error"


def test_screen_and_helpers() -> None:
    assert strip_comments("a (* b (* c *) d *) e") == "a   e"
    assert strip_comments('a (* "*)" *) b') == "a   b"
    assert strip_comments("a (* b") is None
    assert screen("Proof. auto. Qed.")[1] is None
    assert screen("Proof. auto.") == ("Proof. auto.\nQed.", None)
    assert screen("auto. (* done *)") == ("auto.\nQed.", None)
    assert (
        proof_script("```coq\nProof. auto. Qed.\n```", "Theorem t : True.") == "Proof. auto. Qed."
    )


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet='Proof.Qed AdmitxiomSet(*)" -{}', max_size=50))
def test_property_screen_never_raises(script: str) -> None:
    clean, why = screen(script)
    assert (why is None) == bool(clean) or why is not None
