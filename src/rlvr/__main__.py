"""``python -m rlvr``: the ``rlvr`` command, for launchers that start modules
(``torchrun --standalone --nproc-per-node 2 -m rlvr train ...``)."""

from rlvr.cli import main

main()
