"""Reward-hacking and training-health monitoring.

Per-sample scanners (:func:`scan_code`, :func:`scan_answer`) flag what a sample does. Nothing here
imports torch or runs model output.
"""

from rlvr.monitor.scan import ANSWER_FLAGS, CODE_FLAGS, scan_answer, scan_code

__all__ = ["ANSWER_FLAGS", "CODE_FLAGS", "scan_answer", "scan_code"]
