"""Shared fixtures: one local Ray cluster for every Ray test of the session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> str:
    """A local Ray cluster with a fixed number of CPU slots (logical: the actors of a test share
    the machine's cores) and no dashboard; its address, for processes that join it. Skipped only
    where ray is not installed (``make setup-test`` installs it)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=8, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
