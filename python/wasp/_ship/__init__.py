"""Python functions as jobs: what travels with a call to wasp's Python runner, checked at
``submit``.

A call travels as the runner's arguments ``[FORMAT, bundle, call]``: ``call`` is
``(function, args, kwargs)`` pickled, and ``bundle`` rebuilds, inside the sandbox, the parts
of the caller's own modules the call needs, module by module (see :mod:`.walk`). A call that
takes values put once or other jobs' results has a fourth item, ``[[how, reference], ...]``
(see ``wasp._data``), which the server replaces with the values. Values keep
their types on the way in. What cannot travel raises ``TypeError`` at submit (a subclass,
:class:`Unshippable`), naming it and saying what to do instead.
"""

from __future__ import annotations

import functools
import inspect
import io
import pickle
import sys
import threading
import types
from typing import Any, Callable, Optional

from .. import runner
from . import origins
from .walk import (
    FORMAT,
    PROTOCOL,
    TAKEN,
    MissingModule,
    References,
    Shipment,
    Unshippable,
    Walk,
    describe,
)

__all__ = [
    "FORMAT",
    "FORMAT_CALL",
    "MissingModule",
    "References",
    "Shipment",
    "Unshippable",
    "check_callable",
    "describe",
    "prepare",
    "put_value",
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
    has_module: Optional[Callable[[str], bool]] = None,
    owner: object = None,
) -> Shipment:
    """What travels for ``function(*args, **kwargs)``, with pp's ``depfuncs`` (made to
    travel even if nothing reads them) and ``modules`` (imported into the function's
    module, as pp does), to a runner that has the modules ``has_module`` says (by
    default, the default runner's), on server ``owner`` (the values put once and futures
    the call takes must be its own)."""
    has_module = has_module or runner.has_module
    key = _plan_key(function, has_module, depfuncs, modules)
    shipment = _from_plan(key, function, args, kwargs, has_module)
    if shipment is not None:
        return shipment
    check_callable(function)
    walk = Walk(has_module, References(owner))
    try:
        call, _ = walk.pickle((function, args, kwargs))
    except Unshippable as error:
        raise _located(function, args, kwargs, error, has_module) from None
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
    references = walk.references
    takes = references.items if references is not None else []
    shipment = Shipment(walk.bundle(), call, walk.classes(), takes)
    if walk.reusable:
        _remember(key, function, _Plan(shipment.bundle, shipment.classes, walk))
    return shipment


def put_value(
    value: Any, has_module: Optional[Callable[[str], bool]] = None
) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """``value`` pickled once, to be put (``Client.put``), and the caller's globals it
    refers to (its classes), which travel with each call that takes it. Raises
    :class:`Unshippable` for what cannot travel."""
    walk = Walk(has_module or runner.has_module, takes=False)
    data, _ = walk.pickle(value)
    return data, walk.needs()


class _Plan:
    """A walk's bundle, kept for the next submit of the same function: valid while every
    global that travelled is still the same object (what travelled is then the same; values
    that may change in place make a walk not kept at all)."""

    __slots__ = ("bundle", "checks", "classes", "keys")

    def __init__(self, bundle: bytes, classes: frozenset[tuple[str, str]], walk: Walk) -> None:
        self.bundle = bundle
        self.classes = classes
        self.keys = frozenset(walk.pieces)
        self.checks = walk.plan_checks()

    def holds(self) -> bool:
        return all(namespace.get(name) is value for namespace, name, value in self.checks)


#: Plans by what was submitted: (function, has_module's owner, depfuncs, modules).
_plans: dict[tuple[Any, ...], tuple[Any, _Plan]] = {}
_plans_lock = threading.Lock()
_MAX_PLANS = 1024


def _plan_key(
    function: Any,
    has_module: Callable[[str], bool],
    depfuncs: tuple[Any, ...],
    modules: tuple[str, ...],
) -> tuple[Any, ...]:
    owner = getattr(has_module, "__self__", has_module)
    return (id(function), id(owner), tuple(map(id, depfuncs)), tuple(modules))


def _remember(key: tuple[Any, ...], function: Any, plan: _Plan) -> None:
    with _plans_lock:
        if len(_plans) >= _MAX_PLANS:
            _plans.pop(next(iter(_plans)))
        _plans[key] = (function, plan)


def _from_plan(
    key: tuple[Any, ...],
    function: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    has_module: Callable[[str], bool],
) -> Optional[Shipment]:
    """The shipment of a function submitted before, if its plan still holds and the call
    needs nothing beyond it; else ``None`` (a full walk)."""
    found = _plans.get(key)
    if found is None or found[0] is not function or not found[1].holds():
        return None
    plan = found[1]
    if (
        type(function) is types.FunctionType
        and all(type(arg) in _ATOMIC for arg in args)
        and all(type(arg) in _ATOMIC for arg in kwargs.values())
    ):
        # Nothing in the call but the function the plan was made for and values that hold
        # no reference: what _PlanPickler would write, without its hook for every object.
        try:
            call = pickle.dumps((function, args, kwargs), protocol=PROTOCOL)
        except Exception:  # e.g. a function that pickle cannot name: the full walk says
            return None
        return Shipment(plan.bundle, call, plan.classes)
    buffer = io.BytesIO()
    try:
        _PlanPickler(buffer, plan, has_module).dump((function, args, kwargs))
    except Exception:  # something the plan lacks (or cannot travel): the full walk says
        return None
    return Shipment(plan.bundle, buffer.getvalue(), plan.classes)


#: The types of values that refer to nothing pickle would look up (exact types only).
_ATOMIC = frozenset((int, float, complex, str, bytes, bool, type(None)))


class _OutsideThePlan(Exception):
    pass


class _PlanPickler(pickle.Pickler):
    """Pickles a call whose references must all be in a plan (or the runner's by name)."""

    def __init__(self, file: io.BytesIO, plan: _Plan, has_module: Callable[[str], bool]) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.plan = plan
        self.has_module = has_module

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in TAKEN:  # a value put once or a job's future: the full walk takes it
            raise _OutsideThePlan
        if (
            kind is types.FunctionType
            or isinstance(obj, type)
            or getattr(obj, "__wrapped__", None) is not None
        ):
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", None)
            if (
                not isinstance(module, str)
                or not isinstance(qualname, str)
                or "<locals>" in qualname
            ):
                raise _OutsideThePlan
            if (module, qualname.partition(".")[0]) in self.plan.keys or module == "builtins":
                return NotImplemented
            found = sys.modules.get(module)
            if (
                found is None
                or origins.origin(found) is origins.Origin.USER
                or not self.has_module(module)
            ):
                raise _OutsideThePlan
            return NotImplemented
        if kind in (types.ModuleType, types.MethodType, types.BuiltinFunctionType, types.CodeType):
            raise _OutsideThePlan
        return NotImplemented


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
    function: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Unshippable,
    has_module: Callable[[str], bool],
) -> Unshippable:
    """``error``, saying where in the call what cannot travel is."""
    name = getattr(function, "__qualname__", None) or repr(function)
    fails = functools.partial(_fails, has_module=has_module)
    if fails(function) is not None:
        return error if error.chain else error.within(name)
    places: list[tuple[str, Any]] = [(f"args[{i}]", value) for i, value in enumerate(args)]
    places += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
    for place, value in places:
        if fails(value) is not None:
            place, value = _narrow(place, value, 0, fails)
            return error.within(f"{place} ({describe(value)})")
    return error.within(f"the call of {name}")


def _fails(value: Any, has_module: Callable[[str], bool]) -> Optional[str]:
    try:
        Walk(has_module).pickle(value)
    except Unshippable as error:
        return str(error)
    except Exception as error:  # anything pickling raised: it cannot travel
        return str(error)
    return None


def _narrow(
    place: str, value: Any, depth: int, fails: Callable[[Any], Optional[str]]
) -> tuple[str, Any]:
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
        if fails(child) is not None:
            return _narrow(child_place, child, depth + 1, fails)
    return place, value
