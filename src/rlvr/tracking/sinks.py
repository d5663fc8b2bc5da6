"""Optional experiment trackers, as sinks of ``MetricsLog``: ``logging.trackers: [tensorboard]``.

Each tracker's package is imported only when it is named, and a missing one is a clear error
naming the extra to install. ``metrics.jsonl`` is always written; the trackers are mirrors of it.
Keys are ``<stage>/<metric>`` (``rl/reward``, ``eval/heldout/pass@1``); strings are skipped.

Offline by default where the tracker has such a mode: W&B runs ``offline`` unless ``WANDB_MODE``
says otherwise, MLflow writes to ``<run dir>/mlruns`` unless ``MLFLOW_TRACKING_URI`` is set, and
trackio keeps its local database.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlvr.tracking.metrics import Sink

EXTRA = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


def _require(module: str, tracker: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"the {tracker} tracker needs its package: pip install 'rlvr[{EXTRA[tracker]}]'"
        ) from None


def scalars(record: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """The step and the numeric values of a metrics record, keyed ``stage/metric``."""
    stage = record.get("stage", "run")
    out = {
        f"{stage}/{k}": float(v)
        for k, v in record.items()
        if k not in ("stage", "step") and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return int(record.get("step", 0)), out


class TensorBoardSink:
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        _require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", f"```\n{config}\n```")

    def log(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        wandb = _require("wandb", "wandb")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "rlvr"),
            name=run_dir.name,
            dir=str(run_dir),
            config=config,
            mode=os.environ.get("WANDB_MODE", "offline"),
        )

    def log(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        self.run.log({**values, f"{record.get('stage', 'run')}/step": step})

    def close(self) -> None:
        self.run.finish()


class MLflowSink:
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.mlflow = _require("mlflow", "mlflow")
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            self.mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
        self.mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "rlvr"))
        self.mlflow.start_run(run_name=run_dir.name)
        self.mlflow.log_dict(config, "config.json")

    def log(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        clean = {k.replace("@", "_at_"): v for k, v in values.items()}  # MLflow key charset
        self.mlflow.log_metrics(clean, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class TrackioSink:
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.trackio = _require("trackio", "trackio")
        self.trackio.init(
            project=os.environ.get("TRACKIO_PROJECT", "rlvr"), name=run_dir.name, config=config
        )

    def log(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        self.trackio.log(values, step=step)

    def close(self) -> None:
        self.trackio.finish()


SINKS: dict[str, Callable[[Path, dict[str, Any]], Sink]] = {
    "tensorboard": TensorBoardSink,
    "wandb": WandbSink,
    "mlflow": MLflowSink,
    "trackio": TrackioSink,
}


def make_sinks(names: list[str], run_dir: str | Path, config: dict[str, Any]) -> list[Sink]:
    """One sink per tracker name, in order; an unknown name or a missing package is an error."""
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise ValueError(
            f"logging.trackers: unknown tracker(s) {', '.join(unknown)}; known: {', '.join(SINKS)}"
        )
    return [SINKS[name](Path(run_dir), config) for name in dict.fromkeys(names)]
