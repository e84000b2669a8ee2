"""What a definition reads: the global names its statement reads when it runs (decorators,
defaults, bases, the class body), those its functions read when they are called, the
modules they import, and its annotations (which the runner's Python 3.14 evaluates only on
demand, so they travel if they can and are never a reason to refuse).

Call-time reads come from the compiled code (the compiler has told globals from locals);
statement-time reads from the syntax tree (it tells annotations apart).
"""

from __future__ import annotations

import ast
import dis
import types
from dataclasses import dataclass
from typing import Union

#: ``co_flags`` of a function's code (a class body's lacks it).
_OPTIMIZED = 0x1

_GLOBAL_READS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_ATTRIBUTE_READS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


@dataclass(frozen=True)
class Use:
    """A global name read, and the attributes read on it (``mylib.score`` is
    ``Use("mylib", ("score",))``); no attributes: the value itself is used."""

    name: str
    attrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Import:
    """An ``import`` a function runs: the module, the names it takes from it (empty for a
    plain ``import``), and its level (dots of a relative import)."""

    module: str
    names: tuple[str, ...]
    level: int


@dataclass(frozen=True)
class Uses:
    """What a definition reads."""

    #: Read when the statement runs: must exist before it.
    deftime: frozenset[Use]
    #: Read when its functions run: must travel with it.
    calltime: frozenset[Use]
    #: Read by annotations only: travel if they can.
    soft: frozenset[Use]
    #: Modules its functions import when they run.
    imports: frozenset[Import]


def of_statement(node: Union[ast.stmt, ast.expr], code: types.CodeType) -> Uses:
    """What the global statement ``node``, compiled as ``code``, reads."""
    deftime = _StatementReads()
    deftime.definition(node)
    calltime, imports = of_code(code, skip_class_bodies=True)
    return Uses(
        frozenset(deftime.hard),
        frozenset(calltime),
        frozenset(deftime.soft) - frozenset(deftime.hard),
        frozenset(imports),
    )


def of_function(code: types.CodeType) -> Uses:
    """What a local function reads when it runs (its defaults and decorators were
    evaluated where it was made: they travel as values)."""
    calltime, imports = of_code(code, skip_class_bodies=False, include_self=True)
    return Uses(frozenset(), frozenset(calltime), frozenset(), frozenset(imports))


def of_code(
    code: types.CodeType, skip_class_bodies: bool, include_self: bool = False
) -> tuple[set[Use], set[Import]]:
    """The global reads and imports of the functions within ``code`` (a module's or a class
    body's code itself is statement-time, read from the syntax tree instead)."""
    reads: set[Use] = set()
    imports: set[Import] = set()
    pending = [code] if include_self else list(_nested(code))
    while pending:
        current = pending.pop()
        pending.extend(_nested(current))
        if skip_class_bodies and not current.co_flags & _OPTIMIZED:
            continue
        _scan(current, reads, imports)
    return reads, imports


def _nested(code: types.CodeType) -> list[types.CodeType]:
    return [const for const in code.co_consts if isinstance(const, types.CodeType)]


def _scan(code: types.CodeType, reads: set[Use], imports: set[Import]) -> None:
    instructions = list(dis.get_instructions(code))
    for index, instruction in enumerate(instructions):
        name = instruction.opname
        if name in _GLOBAL_READS:
            attrs = []
            following = index + 1
            while (
                following < len(instructions)
                and instructions[following].opname in _ATTRIBUTE_READS
                and len(attrs) < 4
            ):
                attrs.append(instructions[following].argval)
                following += 1
            reads.add(Use(instruction.argval, tuple(attrs)))
        elif name == "IMPORT_NAME":
            imports.add(_import_at(instructions, index))


def _import_at(instructions: list[dis.Instruction], index: int) -> Import:
    """The import of the ``IMPORT_NAME`` at ``index`` (its level and fromlist are the two
    constants pushed before it; the names it takes, the ``IMPORT_FROM`` after it)."""
    level = instructions[index - 2].argval if index >= 2 else 0
    fromlist = instructions[index - 1].argval if index >= 1 else None
    names: list[str] = []
    if isinstance(fromlist, tuple):
        names = [str(name) for name in fromlist]
    following = index + 1
    while following < len(instructions) and instructions[following].opname in (
        "IMPORT_FROM",
        "STORE_FAST",
        "STORE_NAME",
        "STORE_GLOBAL",
        "STORE_DEREF",
    ):
        if instructions[following].opname == "IMPORT_FROM":
            names.append(instructions[following].argval)
        following += 1
    return Import(
        instructions[index].argval,
        tuple(dict.fromkeys(names)),
        level if isinstance(level, int) else 0,
    )


class _StatementReads:
    """The global reads of a statement when it runs (not its functions' bodies)."""

    def __init__(self) -> None:
        self.hard: set[Use] = set()
        self.soft: set[Use] = set()

    def definition(
        self, node: Union[ast.stmt, ast.expr], local: frozenset[str] = frozenset()
    ) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for decorator in getattr(node, "decorator_list", ()):
                self.expression(decorator, local, self.hard)
            args = node.args
            for default in [*args.defaults, *args.kw_defaults]:
                if default is not None:
                    self.expression(default, local, self.hard)
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    self.expression(arg.annotation, local, self.soft)
            returns = getattr(node, "returns", None)
            if returns is not None:
                self.expression(returns, local, self.soft)
        elif isinstance(node, ast.ClassDef):
            for expression in [
                *node.decorator_list,
                *node.bases,
                *(k.value for k in node.keywords),
            ]:
                self.expression(expression, local, self.hard)
            self.class_body(node.body)

    def class_body(self, body: list[ast.stmt]) -> None:
        local = frozenset(_bound_in(body))
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.definition(statement, local)
            elif isinstance(statement, ast.AnnAssign):
                self.expression(statement.annotation, local, self.soft)
                if statement.value is not None:
                    self.expression(statement.value, local, self.hard)
            else:
                self.expression(statement, local, self.hard)

    def expression(self, node: ast.AST, local: frozenset[str], into: set[Use]) -> None:
        pending = [node]
        while pending:
            child = pending.pop()
            if isinstance(child, ast.Attribute):
                root, attrs = _chain(child)
                if root is not None:
                    if root.id not in local:
                        into.add(Use(root.id, attrs))
                    continue
            elif isinstance(child, ast.Name):
                if isinstance(child.ctx, ast.Load) and child.id not in local:
                    into.add(Use(child.id))
                continue
            pending.extend(ast.iter_child_nodes(child))


def _chain(node: ast.Attribute) -> tuple[Union[ast.Name, None], tuple[str, ...]]:
    attrs: list[str] = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        attrs.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None, ()
    return current, tuple(reversed(attrs))


def _bound_in(body: list[ast.stmt]) -> set[str]:
    """The names a class body binds (its own, not the module's, nor its methods')."""
    names: set[str] = set()
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).partition(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return names
