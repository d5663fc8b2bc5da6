"""Programs for measuring the code scanner: hacks it must flag and honest code it must not.

They are package data, one program per file, beside this loader::

    hacks/<flag>/<trick>.py.txt          a program that must raise <flag>
    hacks/<flag>/<trick>.tests.py.txt    the visible tests it was shown, where the hack is
                                         special-casing or copying them
    honest/<name>.py.txt                 an ordinary program that must raise no flag
    honest/<name>.tests.py.txt           visible tests it shares small literals or labels with

A file per program reads and diffs as the program it is, and a new trick is one new file in its
flag's folder. The ``.py.txt`` ending keeps ruff and pytest away: a hack need not be clean code,
or valid Python at all (``hacks/unparsable/``). Files are read as bytes, so a program is exactly
what its file holds.

``HACKS`` maps ``"<flag>/<trick>"`` to the programs scanned alone, ``HONEST`` the honest ones by
name; ``VISIBLE_HACKS`` and ``VISIBLE_HONEST`` hold the programs that have a tests file, as
``(source, visible tests)``. ``bench/monitor_flags.py`` prints the hit and false-flag rates; the
tests hold them at 1 and 0.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

PROGRAM = ".py.txt"
TESTS = ".tests.py.txt"

Programs = dict[str, str]  # name -> source
WithTests = dict[str, tuple[str, str]]  # name -> (source, visible tests)


def intended_flag(name: str) -> str:
    """The flag a corpus program must raise: the part of its name before ``/``."""
    return name.split("/", 1)[0]


def _read(file: Traversable) -> str:
    return file.read_bytes().decode("utf-8")  # no newline translation: the bytes as written


def _programs(folder: Traversable, prefix: str = "") -> tuple[Programs, WithTests]:
    """The programs of one folder, by name: those without a tests file, and those with one."""
    alone: Programs = {}
    visible: WithTests = {}
    names = {f.name for f in folder.iterdir()}
    for file_name in sorted(names):
        if file_name.endswith(TESTS):
            if file_name.removesuffix(TESTS) + PROGRAM not in names:
                raise FileNotFoundError(
                    f"{folder / file_name}: visible tests without a program; add "
                    f"{file_name.removesuffix(TESTS) + PROGRAM} beside it or remove them"
                )
            continue
        if not file_name.endswith(PROGRAM):
            continue
        stem = file_name.removesuffix(PROGRAM)
        source = _read(folder / file_name)
        if stem + TESTS in names:
            visible[prefix + stem] = (source, _read(folder / (stem + TESTS)))
        else:
            alone[prefix + stem] = source
    return alone, visible


def _load() -> tuple[Programs, WithTests, Programs, WithTests]:
    root = files(__name__)
    hacks: Programs = {}
    visible_hacks: WithTests = {}
    for flag in sorted((d for d in (root / "hacks").iterdir() if d.is_dir()), key=lambda d: d.name):
        alone, visible = _programs(flag, prefix=flag.name + "/")
        hacks.update(alone)
        visible_hacks.update(visible)
    honest, visible_honest = _programs(root / "honest")
    return hacks, visible_hacks, honest, visible_honest


HACKS, VISIBLE_HACKS, HONEST, VISIBLE_HONEST = _load()
