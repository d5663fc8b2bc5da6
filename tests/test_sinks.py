"""Tracker sinks: TensorBoard writes events offline; trackers whose package is absent fail with
the pip extra to install; unknown names are listed."""

from __future__ import annotations

import importlib.util

import pytest

from rlvr.tracking.metrics import MetricsLog
from rlvr.tracking.sinks import make_sinks, scalars


def test_scalars_keep_numbers_only():
    step, values = scalars({"stage": "rl", "step": 3, "reward": 0.5, "after": "rl", "ok": True})
    assert step == 3 and values == {"rl/reward": 0.5}


def test_tensorboard_sink_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, sinks=make_sinks(["tensorboard"], tmp_path, {"seed": 0}))
    for step in (1, 2):
        log.log("rl", step, reward=0.25 * step, kl=0.0)
    log.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("rl/reward")] == [0.25, 0.5]


@pytest.mark.parametrize("name", ["wandb", "mlflow", "trackio"])
def test_missing_tracker_names_its_extra(tmp_path, name):
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed; its offline mode is not exercised here")
    with pytest.raises(ImportError, match=rf"pip install 'rlvr\[{name}\]'"):
        make_sinks([name], tmp_path, {})


def test_unknown_tracker(tmp_path):
    with pytest.raises(ValueError, match="unknown tracker.*tensorboard"):
        make_sinks(["tensorbored"], tmp_path, {})
