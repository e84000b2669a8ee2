"""Python functions as jobs: what of a function travels to wasp's Python runner, checked at
``submit``.

A job function travels as source, as in pp: its own, that of its ``depfuncs`` and of the
other functions and classes of its module it uses (found by what it reads, so that naming
them in ``depfuncs`` is optional), an ``import`` line per module it uses, and an assignment
per global constant it reads. What cannot travel fails at ``submit`` with a ``TypeError`` (or an
``ImportError`` for a module the runner lacks) saying why:

- a lambda (its source is part of an expression), a closure (it reads variables of the
  function that made it), a built-in or C function, a coroutine function, a function whose
  source is not available (typed at the interactive prompt);
- a global it reads that is neither a module of the runner, a function or class in
  ``depfuncs``, nor a constant: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
  ``bytes``, and tuples and frozensets of them.

Global constants are read at each ``submit``: a job sees the values of when it was
submitted.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import sys
import textwrap
import threading
import types
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import runner

#: The types of constants that travel as literals.
_CONSTANT_TYPES = (type(None), bool, int, float, complex, str, bytes)

#: A definition that travels: a function or a class.
Definition = Union[types.FunctionType, type]


@dataclass(frozen=True)
class Plan:
    """What travels for one function with its depfuncs and modules: the source of the
    definitions, the imports, and the names of the global constants to read at submit."""

    name: str
    imports: str
    definitions: str
    constants: tuple[tuple[str, Any], ...]
    """(name, namespace) pairs: the constant ``name`` is read from ``namespace`` (a
    function's globals) at each submit."""

    def source(self) -> str:
        """The source to send: imports, constants (as they are now), definitions."""
        lines = [self.imports]
        for name, namespace in self.constants:
            lines.append(f"{name} = {_literal(name, namespace[name])}\n")
        lines.append(self.definitions)
        return "".join(lines)


_plans: weakref.WeakKeyDictionary[Callable[..., Any], dict[Any, Plan]] = weakref.WeakKeyDictionary()
_plans_lock = threading.Lock()


def call_of(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    depfuncs: tuple[Any, ...] = (),
    modules: tuple[str, ...] = (),
) -> tuple[Any, ...]:
    """The runner's arguments for ``func(*args)``: ``(source, name, args, modules)``.

    Raises ``TypeError`` if ``func`` or a depfunc cannot travel, ``ImportError`` if a module
    it uses is not in the runner."""
    key = (depfuncs, modules)
    with _plans_lock:
        plan = _plans.get(func, {}).get(key) if _is_weakrefable(func) else None
    if plan is None:
        plan = make_plan(func, depfuncs, modules)
        if _is_weakrefable(func):
            with _plans_lock:
                _plans.setdefault(func, {})[key] = plan
    return (plan.source(), plan.name, args, ())


def _is_weakrefable(func: object) -> bool:
    return isinstance(func, types.FunctionType)


def make_plan(
    func: Callable[..., Any], depfuncs: tuple[Any, ...], modules: tuple[str, ...]
) -> Plan:
    """Checks that ``func`` and ``depfuncs`` can travel, and what goes with them: the
    functions and classes they use (found in their globals, as ``depfuncs`` would name
    them), modules, and constants."""
    _check_function(func)
    for dep in depfuncs:
        if not isinstance(dep, (type, types.FunctionType)):
            raise TypeError(f"depfuncs must hold Python functions and classes, not {dep!r}")
        if isinstance(dep, types.FunctionType):
            _check_function(dep)
    imports: dict[str, str] = {}
    for name in modules:
        _check_module(name, f"modules names {name!r}")
        imports[name.partition(".")[0]] = f"import {name}\n"
    constants: dict[str, Any] = {}
    # Definitions in the order they were found; emitted in reverse, so that what one
    # needs (a base class) comes before it.
    found: list[Definition] = [func, *depfuncs]
    names = {definition.__name__: definition for definition in found}
    index = 0
    while index < len(found):
        definition = found[index]
        index += 1
        namespace = _globals_of(definition)
        reads, imported = _names_used(definition)
        for name in sorted(imported):
            _check_module(name, f"{definition.__qualname__} imports {name!r}")
        for name in sorted(reads - names.keys()):
            helper = _place_global(definition, name, namespace, imports, constants)
            if helper is not None:
                names[name] = helper
                found.append(helper)
    return Plan(
        name=func.__name__,
        imports="".join(imports.values()),
        definitions="".join(_source_of(definition) for definition in reversed(found)),
        constants=tuple(constants.items()),
    )


def _check_function(func: Any) -> None:
    """Raises ``TypeError`` if ``func`` is not a function whose source can travel."""
    if callable(func) and not isinstance(func, (types.FunctionType, types.MethodType)):
        raise TypeError(
            f"{func!r} is not a Python function: built-in and C functions, and other "
            "callables, cannot be shipped to the sandbox (wrap the call in a def)"
        )
    if isinstance(func, types.MethodType):
        raise TypeError(
            f"{func.__qualname__} is a bound method: it cannot be shipped with its object; "
            "use a plain function and pass what it needs as arguments"
        )
    if not isinstance(func, types.FunctionType):
        raise TypeError(f"a job is a Python function or a wasp module's job, not {func!r}")
    name = func.__qualname__
    if func.__name__ == "<lambda>":
        raise TypeError(
            f"{name} is a lambda: its source is part of an expression and cannot be shipped; "
            "define it with def"
        )
    if func.__closure__:
        names = ", ".join(func.__code__.co_freevars)
        raise TypeError(
            f"{name} is a closure: it reads variables of the function that made it "
            f"({names}), which cannot be shipped; pass them as arguments"
        )
    if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func):
        raise TypeError(f"{name} is a coroutine or generator function: a job returns its result")


def _source_of(definition: Definition) -> str:
    """The definition's source, dedented, without its decorators (which are not shipped)."""
    try:
        source = textwrap.dedent(inspect.getsource(definition))
    except (OSError, TypeError) as error:
        raise TypeError(
            f"the source of {definition.__qualname__} is not available ({error}): define "
            "it in a file (a function typed at the interactive prompt has no source)"
        ) from None
    tree = ast.parse(source)
    node = tree.body[0]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        source = "".join(source.splitlines(True)[node.lineno - 1 :])
    return source if source.endswith("\n") else source + "\n"


def _globals_of(definition: Definition) -> dict[str, Any]:
    if isinstance(definition, type):
        module = inspect.getmodule(definition)
        return vars(module) if module is not None else {}
    return definition.__globals__


def _codes_of(definition: Definition) -> list[types.CodeType]:
    """The code objects of a function, or of a class's methods."""
    if isinstance(definition, types.FunctionType):
        return [definition.__code__]
    codes = []
    for value in vars(definition).values():
        inner = getattr(value, "__func__", value)
        if isinstance(inner, types.FunctionType):
            codes.append(inner.__code__)
    return codes


def _names_used(definition: Definition) -> tuple[set[str], set[str]]:
    """The global names ``definition`` reads, and the modules it imports."""
    reads: set[str] = set()
    imported: set[str] = set()
    if isinstance(definition, type):
        # Its bases are read when the class statement runs.
        reads.update(base.__name__ for base in definition.__bases__ if base is not object)
    pending = _codes_of(definition)
    while pending:
        code = pending.pop()
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                reads.add(instruction.argval)
            elif instruction.opname == "IMPORT_NAME":
                imported.add(instruction.argval)
        pending.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return reads, imported


def _check_module(name: str, what: str) -> None:
    if name in runner.MODULES or name.partition(".")[0] in runner.MODULES:
        return
    available = ", ".join(runner.MODULES)
    raise ImportError(
        f"{what}, which wasp's Python runner does not have (the sandbox has no files to "
        f"import from); it has: {available}"
    )


def _place_global(
    definition: Definition,
    name: str,
    namespace: dict[str, Any],
    imports: dict[str, str],
    constants: dict[str, Any],
) -> Optional[Definition]:
    """Decides how global ``name`` of ``definition`` travels (an import, a constant, or a
    helper to ship, which it returns), or raises why it cannot."""
    if name not in namespace:
        # A built-in, or a name that is not defined: as it would be on the host.
        return None
    value = namespace[name]
    owner = definition.__qualname__
    if isinstance(value, types.ModuleType):
        _check_module(value.__name__, f"{owner} uses module {value.__name__!r}")
        line = f"import {value.__name__}\n"
        if value.__name__ != name:
            line = f"import {value.__name__} as {name}\n"
        imports.setdefault(name, line)
        return None
    if hasattr(builtins, name) and getattr(builtins, name) is value:
        return None
    module = getattr(value, "__module__", None)
    if (
        callable(value)
        and module in runner.MODULES
        and getattr(sys.modules.get(module), getattr(value, "__name__", ""), None) is value
    ):
        # `from math import sqrt`: imported again inside the sandbox.
        imports.setdefault(name, f"from {module} import {value.__name__} as {name}\n")
        return None
    if isinstance(value, types.FunctionType):
        try:
            _check_function(value)
        except TypeError as error:
            raise TypeError(f"{owner} calls {name}, which cannot be shipped: {error}") from None
        return value
    if isinstance(value, type):
        if module == "builtins":
            return None
        return value
    if not _is_constant(value):
        raise TypeError(
            f"{owner} reads the global {name} (a {type(value).__name__}), which cannot "
            "travel to the sandbox: pass it as an argument (only constants travel: None, "
            "bool, int, float, complex, str, bytes, and tuples and frozensets of them)"
        )
    constants.setdefault(name, namespace)
    return None


def _is_constant(value: Any, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if isinstance(value, _CONSTANT_TYPES):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(item, depth + 1) for item in value)
    return False


def _literal(name: str, value: Any) -> str:
    """``value`` as source that evaluates to it (read at submit: it may have changed)."""
    if not _is_constant(value):
        raise TypeError(
            f"the global {name} is now a {type(value).__name__}, which cannot travel to the sandbox"
        )
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value or value != value
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        same = False
    if not same:
        # nan, inf and containers of them have no literal: evaluated by float().
        text = _float_safe_repr(value)
    return text


def _float_safe_repr(value: Any) -> str:
    if isinstance(value, float):
        return f"float({repr(value)!r})"
    if isinstance(value, complex):
        return f"complex({repr(value)!r})"
    if isinstance(value, tuple):
        items = "".join(f"{_float_safe_repr(item)}, " for item in value)
        return f"({items})"
    if isinstance(value, frozenset):
        items = ", ".join(_float_safe_repr(item) for item in value)
        return f"frozenset([{items}])"
    return repr(value)
