"""Python functions as jobs: what travels with a call to wasp's Python runner, checked at
``submit``.

A call travels as the runner's arguments ``[FORMAT, bundle, call]``: ``call`` is
``(function, args, kwargs)`` pickled, and ``bundle`` rebuilds, inside the sandbox, the parts
of the caller's own modules the call needs, module by module (see :mod:`.walk`). Values keep
their types on the way in. What cannot travel raises ``TypeError`` at submit (a subclass,
:class:`Unshippable`), naming it and saying what to do instead.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from typing import Any, Callable, Optional

from .. import runner
from .walk import FORMAT, MissingModule, Shipment, Unshippable, Walk, describe

__all__ = [
    "FORMAT",
    "FORMAT_CALL",
    "MissingModule",
    "Shipment",
    "Unshippable",
    "check_callable",
    "prepare",
]

#: The first item of the runner's arguments for a call (``wasp_runner`` tells a call from a
#: ``.py`` file's run by it).
FORMAT_CALL = 1

#: How deep :func:`_locate` looks for what cannot travel in an argument.
_LOCATE_DEPTH = 8


def prepare(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    depfuncs: tuple[Any, ...] = (),
    modules: tuple[str, ...] = (),
) -> Shipment:
    """What travels for ``function(*args, **kwargs)``, with pp's ``depfuncs`` (made to
    travel even if nothing reads them) and ``modules`` (imported into the function's
    module, as pp does)."""
    check_callable(function)
    walk = Walk(runner.has_module)
    try:
        call, _ = walk.pickle((function, args, kwargs))
    except Unshippable as error:
        raise _located(function, args, kwargs, error) from None
    for index, dep in enumerate(depfuncs):
        if not callable(dep):
            raise TypeError(f"depfuncs must hold functions and classes, not {dep!r}")
        try:
            walk.pickle(dep)
        except Unshippable as error:
            raise error.within(f"depfuncs[{index}]") from None
    home = _home(function)
    for name in modules:
        if not isinstance(name, str):
            raise TypeError(f"modules must hold module names, not {name!r}")
        walk.require(name, f"modules names {name!r}, which")
        if home is not None:
            walk.bind_module(home, name)
    return Shipment(walk.bundle(), call, walk.classes())


def check_callable(function: Any) -> None:
    """Raises ``TypeError`` if ``function`` cannot be a job, whatever its arguments."""
    if not callable(function):
        raise TypeError(
            "a job is a Python function (or any callable that can travel) or a function of "
            f"a wasp module (wasp.Module(path).name), not {function!r}"
        )
    inner = function
    while isinstance(inner, functools.partial):
        inner = inner.func
    inner = inspect.unwrap(inner) if isinstance(inner, types.FunctionType) else inner
    name = getattr(inner, "__qualname__", repr(inner))
    if inspect.iscoroutinefunction(inner) or inspect.isasyncgenfunction(inner):
        raise TypeError(
            f"{name} is a coroutine function: the sandbox has no event loop; make the job "
            "a plain def (await what it needs before submitting, or submit from a thread)"
        )
    if inspect.isgeneratorfunction(inner):
        raise TypeError(
            f"{name} is a generator function: a job returns its result, and a generator "
            "cannot cross back; return list(...) of what it yields"
        )


def _home(function: Any) -> Optional[str]:
    """The module whose namespace pp's ``modules`` are imported into: the function's."""
    while isinstance(function, functools.partial):
        function = function.func
    module = getattr(function, "__module__", None)
    if isinstance(function, types.FunctionType):
        module = function.__globals__.get("__name__", module)
    return module if isinstance(module, str) and module in sys.modules else None


def _located(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], error: Unshippable
) -> Unshippable:
    """``error``, saying where in the call what cannot travel is."""
    name = getattr(function, "__qualname__", None) or repr(function)
    if _fails(function) is not None:
        return error if error.chain else error.within(name)
    places: list[tuple[str, Any]] = [(f"args[{i}]", value) for i, value in enumerate(args)]
    places += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
    for place, value in places:
        if _fails(value) is not None:
            place, value = _narrow(place, value, 0)
            return error.within(f"{place} ({describe(value)})")
    return error.within(f"the call of {name}")


def _fails(value: Any) -> Optional[str]:
    try:
        Walk(runner.has_module).pickle(value)
    except Unshippable as error:
        return str(error)
    except Exception as error:  # anything pickling raised: it cannot travel
        return str(error)
    return None


def _narrow(place: str, value: Any, depth: int) -> tuple[str, Any]:
    """The innermost item of ``value`` that cannot travel."""
    if depth >= _LOCATE_DEPTH:
        return place, value
    if isinstance(value, (list, tuple)):
        children: list[tuple[str, Any]] = [(f"{place}[{i}]", item) for i, item in enumerate(value)]
    elif isinstance(value, dict):
        children = []
        for key, item in value.items():
            children.append((f"{place} key {key!r}", key))
            children.append((f"{place}[{key!r}]", item))
    elif isinstance(value, (set, frozenset)):
        children = [(f"an item of {place}", item) for item in value]
    else:
        return place, value
    for child_place, child in children:
        if _fails(child) is not None:
            return _narrow(child_place, child, depth + 1)
    return place, value
