"""A program, read once for every code check: its syntax tree, each node's parent, and a resolver
from expressions to qualified names.

Names are resolved through imports (``from os import _exit as bye``), simple aliases
(``e = sys.exit``), ``getattr(module, "constant")``, ``__import__("x")`` and
``module.__dict__["x"]``, so that a check asks about ``sys.exit`` and finds it however it is
spelled. Nothing here recurses on the tree or runs the program.
"""

from __future__ import annotations

import ast
import builtins
import warnings
from collections.abc import Iterator, Sequence

from rlvr.monitor.flags import MAX_SCAN_CHARS

BUILTIN_NAMES = frozenset(dir(builtins))
_MAX_CHAIN = 64  # attribute chains longer than this are not resolved


def parse_program(source: str) -> ast.Module | None:
    """The syntax tree of ``source``, or None when it is too long or not Python. Reading it
    warns of nothing and runs nothing."""
    if len(source) > MAX_SCAN_CHARS:
        return None
    with warnings.catch_warnings():  # invalid escapes and the like: not ours to report
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError):
            pass
        # a completion that gives only a function body (HumanEval style): read it as one
        if source[:1] in (" ", "\t"):
            try:
                return ast.parse("def _completion():\n" + source)
            except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError):
                pass
    return None


def under(name: str | None, prefixes: Sequence[str] | frozenset[str]) -> bool:
    """Whether ``name`` is one of ``prefixes`` or lies below one (``os.path`` below ``os``)."""
    if not name:
        return False
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class Program:
    """A parsed program with what every check needs: its nodes, their parents, and a resolver
    from expressions to qualified names. Everything here is iterative: a deep tree must not make
    the scanner itself recurse. ``star_names`` are the qualified names that ``from os import *``
    is taken to bring in unqualified (those the checks look for)."""

    def __init__(self, tree: ast.Module, star_names: frozenset[str]) -> None:
        self.tree = tree
        self.nodes = list(ast.walk(tree))
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in self.nodes:
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.aliases: dict[str, str] = {}
        self.imported: set[str] = set()  # every module or module member imported
        self.roots: set[str] = set()  # top-level packages imported (``os`` for ``os.path``)
        self._read_imports(star_names)
        self._read_aliases()
        self.references = list(self._references())
        self.names = self.imported | {q for _, q in self.references}
        self.strings = [
            n.value for n in self.nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        self.main_guards = [
            stmt
            for stmt in tree.body
            if isinstance(stmt, ast.If) and _is_main_guard(stmt.test) and stmt.body
        ]
        self.main_guard_tails = {guard.body[-1] for guard in self.main_guards}

    # -- names ----------------------------------------------------------------------------------

    def _read_imports(self, star_names: frozenset[str]) -> None:
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imported.add(a.name)
                    root = a.name.split(".")[0]
                    self.roots.add(root)
                    if a.asname:
                        self.aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                self.roots.add(node.module.split(".")[0])
                for a in node.names:
                    if a.name == "*":
                        self.imported.add(node.module)
                        for known in star_names:
                            head, _, last = known.rpartition(".")
                            if head == node.module:
                                self.aliases.setdefault(last, known)
                        continue
                    full = f"{node.module}.{a.name}"
                    self.imported.add(full)
                    self.aliases[a.asname or a.name] = full
            elif isinstance(node, ast.Call) and node.args and is_str(node.args[0]):
                if self._dotted(node.func) in ("__import__", "importlib.import_module"):
                    module = node.args[0].value  # type: ignore[attr-defined]
                    self.imported.add(module)
                    self.roots.add(module.split(".")[0])

    def _read_aliases(self) -> None:
        """``bye = sys.exit`` makes ``bye()`` a call of ``sys.exit``: simple assignments of a
        resolvable name, in source order."""
        assigns = [
            n
            for n in self.nodes
            if isinstance(n, ast.Assign)
            and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name)
            and isinstance(n.value, ast.Name | ast.Attribute | ast.Call | ast.Subscript)
        ]
        assigns.sort(key=lambda n: (n.lineno, n.col_offset))
        for node in assigns:
            target = node.targets[0].id  # type: ignore[attr-defined]
            name = self.qualname(node.value)
            if (
                name
                and name != target
                and ("." in name or name in BUILTIN_NAMES or self.is_module(name))
            ):
                self.aliases[target] = name

    def qualname(self, node: ast.AST) -> str | None:
        """``os.path.join`` for ``p.join`` after ``import os.path as p``; None when the expression
        is not a (possibly disguised) dotted name."""
        attrs: list[str] = []
        base: str | None = None
        for _ in range(_MAX_CHAIN):
            if isinstance(node, ast.Attribute):
                attrs.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Name):
                base = self.aliases.get(node.id, node.id)
                break
            elif isinstance(node, ast.Call):
                func = self._dotted(node.func)
                first = node.args[0] if node.args else None
                if func in ("__import__", "importlib.import_module") and is_str(first):
                    base = first.value  # type: ignore[union-attr]
                    break
                if func == "getattr" and len(node.args) >= 2 and is_str(node.args[1]):
                    attrs.append(node.args[1].value)  # type: ignore[attr-defined]
                    node = node.args[0]
                elif func == "vars" and first is not None:
                    node = first  # vars(os)["_exit"]: the subscript below adds the name
                else:
                    return None
            elif isinstance(node, ast.Subscript) and is_str(node.slice):
                if isinstance(node.value, ast.Attribute) and node.value.attr == "__dict__":
                    attrs.append(node.slice.value)  # type: ignore[attr-defined]
                    node = node.value.value
                elif isinstance(node.value, ast.Call) and self._dotted(node.value.func) == "vars":
                    attrs.append(node.slice.value)  # type: ignore[attr-defined]
                    node = node.value
                else:
                    return None
            else:
                return None
        if base is None:
            return None
        return ".".join([base, *reversed(attrs)])

    def _dotted(self, node: ast.AST) -> str | None:
        """A plain ``a.b.c`` chain, resolved through the aliases (no calls)."""
        attrs: list[str] = []
        for _ in range(_MAX_CHAIN):
            if isinstance(node, ast.Attribute):
                attrs.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Name):
                return ".".join([self.aliases.get(node.id, node.id), *reversed(attrs)])
            else:
                return None
        return None

    def _references(self) -> Iterator[tuple[ast.AST, str]]:
        """Every read of a module member or a builtin, with its qualified name. A local variable
        that happens to be called ``requests`` or ``inspect`` is not the module: names whose root
        was never imported (and is no builtin) are left out."""
        for node in self.nodes:
            if isinstance(node, ast.Name | ast.Attribute) and not isinstance(node.ctx, ast.Load):
                continue
            if isinstance(node, ast.Name | ast.Attribute | ast.Call | ast.Subscript):
                name = self.qualname(node)
                if name and (self.is_module(name) or name.split(".")[0] in BUILTIN_NAMES):
                    yield node, name

    def uses(self, prefixes: Sequence[str] | frozenset[str]) -> bool:
        return any(under(name, prefixes) for name in self.names)

    def calls(self) -> Iterator[tuple[ast.Call, str]]:
        for node in self.nodes:
            if isinstance(node, ast.Call):
                name = self.qualname(node.func)
                if name:
                    yield node, name

    def is_module(self, name: str | None) -> bool:
        """Whether ``name`` (qualified) lives in an imported module (not a local variable)."""
        return bool(name) and name.split(".")[0] in self.roots  # type: ignore[union-attr]

    # -- structure ------------------------------------------------------------------------------

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parents:
            node = self.parents[node]
            yield node

    def ends_main_guard(self, node: ast.AST) -> bool:
        """Whether ``node`` is in the last statement of an ``if __name__ == "__main__":`` block:
        ``sys.exit(main())`` there ends a script after all its work, and never runs under a test
        harness."""
        return node in self.main_guard_tails or any(
            a in self.main_guard_tails for a in self.ancestors(node)
        )

    def in_self_test(self, node: ast.AST) -> bool:
        """Whether ``node`` is part of the program's own checks (an ``assert``, or the main
        guard), where repeating the visible tests (``assert f(3) == 4``) is no special-casing."""
        return any(isinstance(a, ast.Assert) or a in self.main_guards for a in self.ancestors(node))

    def module_level_bindings(self) -> Iterator[str]:
        """Names bound at module level (through if/for/while/with/try, not inside def/class)."""
        stack: list[ast.AST] = list(self.tree.body)
        while stack:
            stmt = stack.pop()
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield stmt.name
                continue
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                for a in stmt.names:
                    if a.name != "*":
                        yield a.asname or a.name.split(".")[0]
                continue
            targets: list[ast.AST] = []
            if isinstance(stmt, ast.Assign):
                targets = list(stmt.targets)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor):
                targets = [stmt.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        yield n.id
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(stmt, field, []) or [])
            if isinstance(stmt, ast.ExceptHandler) and stmt.name:
                yield stmt.name


def is_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_main_guard(test: ast.AST) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = [test.left, test.comparators[0]]
    return (
        isinstance(test.ops[0], ast.Eq)
        and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
        and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    )


def strings_in(node: ast.AST) -> list[str]:
    """The string (and bytes) constants inside ``node``, f-string parts included."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
        elif isinstance(n, ast.Constant) and isinstance(n.value, bytes):
            out.append(n.value.decode("latin-1"))
    return out


def stores(p: Program) -> Iterator[tuple[ast.AST, str | None, str]]:
    """Every write into an object's attributes: ``obj.attr = …``, ``del obj.attr``,
    ``setattr(obj, "attr", …)`` and ``delattr``; as (node, qualified name of obj, attr)."""
    for node in p.nodes:
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            yield node, p.qualname(node.value), node.attr
        elif isinstance(node, ast.Call) and p.qualname(node.func) in ("setattr", "delattr"):
            if node.args:
                attr = node.args[1].value if len(node.args) > 1 and is_str(node.args[1]) else "?"
                yield node, p.qualname(node.args[0]), attr  # type: ignore[union-attr]
