"""Metrics, plots and reports of a run directory."""

from rlvr.tracking.metrics import MetricsLog, read_metrics

__all__ = ["MetricsLog", "read_metrics"]
