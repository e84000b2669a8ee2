"""The source of a definition: the statement of the caller's file that made it, checked
against the live object, so that what travels is what runs here.

A module-level ``def`` or ``class`` travels as its whole statement (decorators included),
re-executed inside the sandbox in its module's namespace. A function made elsewhere (a
lambda, a function defined inside another one, a closure) travels as its bare ``def`` or
``lambda``, rebuilt inside the sandbox with its closure, defaults and attributes.

Before anything travels, its code is compiled here and compared with the code Python is
running: a file edited since it was imported, or a definition that cannot be told apart from
another, is refused rather than shipped wrong.
"""

from __future__ import annotations
import __future__

import ast
import linecache
import threading
import types
from dataclasses import dataclass
from typing import Optional, Union

from . import factory

#: The compiler flags of ``from __future__`` imports (they change how source compiles).
FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


class SourceError(TypeError):
    """A definition's source cannot be found, or is not what Python runs."""


@dataclass(frozen=True)
class Statement:
    """A definition statement of the caller's file."""

    filename: str
    #: The line of the file where ``source`` begins.
    lineno: int
    #: Its text as in the file (an indented one under ``if 1:``; a lambda alone).
    source: str
    #: Whether ``source`` holds the statement under ``if 1:``.
    wrapped: bool
    #: Its parsed form, with the file's line numbers.
    node: Union[ast.stmt, ast.expr]
    #: The flags of the file's ``from __future__`` imports.
    flags: int
    #: The code it compiles to here (a global statement's module-level code, or a local
    #: function's factory module), checked against the live object's.
    code: types.CodeType


@dataclass(frozen=True)
class _ParsedFile:
    lines: tuple[str, ...]
    text: str
    #: Definition statements by first line: (node, whether at module level).
    definitions: dict[int, list[tuple[Union[ast.stmt, ast.expr], bool]]]
    #: Module-level class statements by name.
    classes: dict[str, list[ast.ClassDef]]
    #: The names the module binds by ``import`` (they change how calls compile).
    imported: frozenset[str]


_files: dict[str, tuple[list[str], _ParsedFile]] = {}
_files_lock = threading.Lock()


def _parsed(filename: str) -> _ParsedFile:
    """The definitions of ``filename`` as Python's line cache holds it."""
    lines = linecache.getlines(filename)
    if not lines:
        raise SourceError(
            f"the source file {filename} cannot be read: define the function in a file "
            "(a function typed at the interactive prompt has no source)"
        )
    with _files_lock:
        cached = _files.get(filename)
        if cached is not None and cached[0] is lines:
            return cached[1]
    text = "".join(lines)
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as error:
        raise SourceError(f"{filename} no longer parses ({error}): restart the program") from None
    parsed = _index(tree, tuple(lines), text)
    with _files_lock:
        _files[filename] = (lines, parsed)
    return parsed


def _index(tree: ast.Module, lines: tuple[str, ...], text: str) -> _ParsedFile:
    definitions: dict[int, list[tuple[Union[ast.stmt, ast.expr], bool]]] = {}
    classes: dict[str, list[ast.ClassDef]] = {}
    imported: set[str] = set()

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, (ast.Import, ast.ImportFrom)):
                imported.update((a.asname or a.name).partition(".")[0] for a in child.names)
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                definitions.setdefault(first, []).append((child, module_level))
                if module_level and isinstance(child, ast.ClassDef):
                    classes.setdefault(child.name, []).append(child)
                visit(child, False)
            elif isinstance(child, ast.Lambda):
                definitions.setdefault(child.lineno, []).append((child, False))
                visit(child, False)
            else:
                # Statements nested in if/try/with/for at module level stay module level.
                visit(child, module_level and isinstance(child, (ast.stmt, ast.excepthandler)))

    visit(tree, True)
    imported.discard("*")
    return _ParsedFile(lines, text, definitions, classes, frozenset(imported))


def _future_flags(code: types.CodeType) -> int:
    return code.co_flags & FUTURE_FLAGS


def global_statement(function: types.FunctionType) -> Statement:
    """The module-level ``def`` statement that made ``function`` (decorators included),
    checked against its code."""
    code = function.__code__
    parsed = _parsed(code.co_filename)
    for node, module_level in parsed.definitions.get(code.co_firstlineno, ()):
        if (
            module_level
            and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name == code.co_name
        ):
            statement = _statement(parsed, code.co_filename, node, _future_flags(code), None)
            if any(same_code(inner, code) for inner in inner_codes(statement.code)):
                return statement
    raise _changed(function.__qualname__, code)


def class_statement(cls: type, filename: Optional[str]) -> Statement:
    """The module-level ``class`` statement that made ``cls``, checked against its
    methods' code."""
    methods = _methods_of(cls, filename)
    files = {code.co_filename for code in methods}
    if len(files) == 1:
        filename = next(iter(files))
    if filename is None:
        raise SourceError(
            f"the source of class {cls.__qualname__} cannot be found: define it in a file "
            "(a class typed at the interactive prompt has no source)"
        )
    parsed = _parsed(filename)
    flags = _future_flags(methods[0]) if methods else _file_flags(parsed)
    statements = [
        _statement(parsed, filename, node, flags, None)
        for node in parsed.classes.get(cls.__name__, ())
        if _holds(node, methods) and _first_line_matches(cls, node)
    ]
    if len({s.source for s in statements}) > 1:
        # Several class statements of that name: the one whose body makes what cls holds.
        statements = [s for s in statements if _body_names(s.node) == _own_names(cls)]
        if len({s.source for s in statements}) > 1:
            raise SourceError(
                f"class {cls.__qualname__} is defined more than once in {filename}, and "
                "wasp cannot tell which definition made it: give each class its own name"
            )
    changed = SourceError(
        f"the source of class {cls.__qualname__} in {filename} is not what Python is "
        "running: the file changed after it was imported, or a method was replaced after "
        "the class was made; restart the program, or define the method in the class"
    )
    if not statements:
        raise changed
    statement = statements[-1]
    body = next((c for c in inner_codes(statement.code) if c.co_name == cls.__name__), None)
    if body is None or not all(
        any(same_code(inner, code) for inner in inner_codes(body)) for code in methods
    ):
        raise changed
    return statement


def has_class_statement(cls: type, filename: Optional[str]) -> bool:
    """Whether a module-level ``class`` statement of ``cls``'s name exists in its file (a
    class made by a call, ``namedtuple(...)``, has none)."""
    methods = _methods_of(cls, filename)
    files = {code.co_filename for code in methods}
    if len(files) == 1:
        filename = next(iter(files))
    if filename is None:
        return bool(methods)
    try:
        return bool(_parsed(filename).classes.get(cls.__name__))
    except SourceError:
        return bool(methods)


def local_statement(function: types.FunctionType) -> Statement:
    """The bare ``def`` or ``lambda`` that made ``function`` (a lambda, a function defined
    inside another, or an older definition of a name since redefined), checked against its
    code once rebuilt as the sandbox will rebuild it."""
    code = function.__code__
    parsed = _parsed(code.co_filename)
    lambda_ = code.co_name == "<lambda>"
    for node, _ in parsed.definitions.get(code.co_firstlineno, ()):
        if lambda_ != isinstance(node, ast.Lambda):
            continue
        if not lambda_ and getattr(node, "name", None) != code.co_name:
            continue
        statement = _statement(
            parsed, code.co_filename, node, _future_flags(code), code.co_freevars
        )
        # Several candidates with the very same code are interchangeable: the first does.
        if any(same_code(inner, code) for inner in inner_codes(statement.code)):
            return statement
    raise _changed(function.__qualname__, code)


def _statement(
    parsed: _ParsedFile,
    filename: str,
    node: Union[ast.stmt, ast.expr],
    flags: int,
    freevars: Optional[tuple[str, ...]],
) -> Statement:
    """The statement of ``node``: global (``freevars`` is ``None``) or local."""
    if isinstance(node, ast.Lambda):
        source = ast.get_source_segment(parsed.text, node)
        if source is None:
            raise SourceError(f"the source of a lambda in {filename} cannot be read")
        lineno, wrapped = node.lineno, False
    else:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        end = node.end_lineno or node.lineno
        source = "".join(parsed.lines[first - 1 : end])
        lineno, wrapped = first, source[:1] in (" ", "\t")
        if wrapped:
            source, lineno = factory.HOLDER + source, first - 1
    parsed_node = factory.parse(source, lineno, wrapped, filename)
    if freevars is None:
        code = factory.compile_global(source, lineno, filename, flags, parsed.imported)
    else:
        code = factory.compile_local(parsed_node, freevars, filename, flags, parsed.imported)
    return Statement(filename, lineno, source, wrapped, parsed_node, flags, code)


def inner_codes(code: types.CodeType) -> list[types.CodeType]:
    """Every code object within ``code``, at any depth."""
    found = []
    pending = [code]
    while pending:
        current = pending.pop()
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                found.append(const)
                pending.append(const)
    return found


def same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Whether two code objects do the same (line numbers aside)."""
    if (
        a.co_code != b.co_code
        or a.co_names != b.co_names
        or a.co_varnames != b.co_varnames
        or a.co_freevars != b.co_freevars
        or a.co_cellvars != b.co_cellvars
        or a.co_argcount != b.co_argcount
        or a.co_posonlyargcount != b.co_posonlyargcount
        or a.co_kwonlyargcount != b.co_kwonlyargcount
        or (a.co_flags & ~FUTURE_FLAGS) != (b.co_flags & ~FUTURE_FLAGS)
        or len(a.co_consts) != len(b.co_consts)
    ):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType):
            if not isinstance(y, types.CodeType) or not same_code(x, y):
                return False
        elif type(x) is not type(y) or repr(x) != repr(y):
            return False
    return True


def _changed(name: str, code: types.CodeType) -> SourceError:
    return SourceError(
        f"the source of {name} ({code.co_filename}, line {code.co_firstlineno}) is not what "
        "Python is running: the file changed after it was imported; restart the program"
    )


def _methods_of(cls: type, filename: Optional[str]) -> list[types.CodeType]:
    """The code of the functions ``cls``'s statement defines (through staticmethod,
    classmethod, property and decorators that keep ``__wrapped__``), not those a decorator
    generated (a dataclass's ``__init__`` comes from ``<string>``)."""
    codes = []
    for value in vars(cls).values():
        for function in _functions_in(value):
            code = function.__code__
            if not function.__qualname__.startswith(cls.__qualname__ + "."):
                continue
            if filename is not None and code.co_filename != filename:
                continue
            if (
                filename is None
                and code.co_filename.startswith("<")
                and code.co_filename != "<stdin>"
            ):
                continue
            codes.append(code)
    return codes


def _functions_in(value: object) -> list[types.FunctionType]:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [
            f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
        ]
    seen = 0
    while not isinstance(value, types.FunctionType) and hasattr(value, "__wrapped__") and seen < 16:
        value = value.__wrapped__  # type: ignore[union-attr]
        seen += 1
    return [value] if isinstance(value, types.FunctionType) else []


def _holds(node: ast.ClassDef, methods: list[types.CodeType]) -> bool:
    """Whether every method's first line lies within the class statement."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    end = node.end_lineno or node.lineno
    return all(first <= code.co_firstlineno <= end for code in methods)


def _first_line_matches(cls: type, node: ast.ClassDef) -> bool:
    first = getattr(cls, "__firstlineno__", None)
    if first is None:
        return True
    lines = {node.lineno, *(d.lineno for d in node.decorator_list)}
    return first in lines


def _file_flags(parsed: _ParsedFile) -> int:
    flags = 0
    for line in parsed.lines[:64]:
        if line.startswith("from __future__ import"):
            for name in line.split("import", 1)[1].replace("(", " ").replace(")", " ").split(","):
                feature = getattr(__future__, name.strip(), None)
                if feature is not None:
                    flags |= feature.compiler_flag
    return flags


def _body_names(node: Union[ast.stmt, ast.expr]) -> set[str]:
    names = set()
    for statement in getattr(node, "body", ()):
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign):
            names.update(t.id for t in statement.targets if isinstance(t, ast.Name))
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id)
    return {name for name in names if not name.startswith("__")}


def _own_names(cls: type) -> set[str]:
    names = {name for name in vars(cls) if not name.startswith("__")}
    names.update(getattr(cls, "__annotations__", {}))
    fields = getattr(cls, "__dataclass_fields__", None)
    if fields:
        names.update(fields)
    return {name for name in names if not name.startswith("__") and not name.startswith("_abc")}
