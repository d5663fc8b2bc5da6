"""rlvr and the environment standards others use, both ways:

- in: ``--env vf:ID`` (a verifiers 0.4 taskset, ``verifiers_env``) and ``--env openenv:URL``
  / ``openenv:PACKAGE`` (an OpenEnv server, ``openenv_env``), resolved by ``external``, their
  rewards audited with rlvr's known hacks (``audit``); verifiers' episodes are served by rlvr's
  engine through a token-level generate endpoint (``generate_server``);
- out: rlvr's tasks and environments as OpenEnv servers (``serve``, ``rlvr serve-env``), and as
  a verifiers taskset (``rlvr.integrations.vf_taskset``).

Importing this package registers the ``vf:`` and ``openenv:`` prefixes with ``rlvr.envs``;
verifiers and openenv-core themselves are imported only when such an environment is used
(``pip install "rlvr[envs]"``). It sits above ``wiring``, ``rollout`` and ``eval``, which it uses:
nothing below it imports it (docs/architecture.md).
"""

from rlvr.envs.base import register_env_prefix
from rlvr.interop.external import PREFIXES, family

for _prefix in PREFIXES:
    register_env_prefix(_prefix, family)
