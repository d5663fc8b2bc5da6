"""A sandbox for running a model's Python code against tests it cannot see or subvert.

Layout, one job each: ``wire`` (plain data across processes), ``jail`` (namespaces, cgroups,
rlimits, uid), ``candidate`` (the untrusted process), ``grader`` (the trusted test process),
``server`` (the fork server and per-job runner), ``client`` (used by rlvr). Only the standard
library: the server loads this directory on its own, without rlvr or torch.
"""

from .client import IsolationUnavailable, Sandbox, SandboxError

__all__ = ["IsolationUnavailable", "Sandbox", "SandboxError"]
