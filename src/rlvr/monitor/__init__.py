"""Reward-hacking and training-health monitoring.

Per-sample scanners (:func:`scan_code`, :func:`scan_answer`) flag what a sample does; step
detectors (:class:`StepMonitor`, :func:`run_detectors`) watch a run's metrics against a baseline
from its first steps. Nothing here imports torch or runs model output.
"""

from rlvr.config import MonitorConfig
from rlvr.monitor.detectors import DETECTORS, Alert, StepMonitor, run_detectors
from rlvr.monitor.scan import ANSWER_FLAGS, CODE_FLAGS, scan_answer, scan_code

__all__ = [
    "ANSWER_FLAGS",
    "CODE_FLAGS",
    "DETECTORS",
    "Alert",
    "MonitorConfig",
    "StepMonitor",
    "run_detectors",
    "scan_answer",
    "scan_code",
]
