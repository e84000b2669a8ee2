"""What travels with one call of a Python function, found by walking what the code really
reads, module by module.

The call itself (the function, its arguments) is pickled: inside the sandbox anything may
decode it, and pickle keeps every type. Pickle refers to functions and classes by module and
name; for the caller's own modules (see :mod:`.origins`) the walk makes those names exist
inside the sandbox:

- a module-level ``def`` or ``class`` travels as its statement (decorators included; see
  :mod:`.statements`), run there in a module of the same name, and what the statement reads
  (its decorators, defaults, bases, class body; its functions' globals; the modules they
  import) travels too, found the same way;
- any other global it reads travels as a value, pickled as it is at submit, whatever its
  type, as long as pickle can take it and the sandbox has what it refers to;
- a function that is not a module's global (a lambda, a function made inside another, a
  closure) travels as its bare source and is rebuilt with its closure, defaults and
  attributes.

The pieces run inside the sandbox in an order where each finds what it needs at its
statement's time. What cannot travel raises :class:`Unshippable` naming the thing and what
to do instead.
"""

from __future__ import annotations

import builtins
import contextlib
import heapq
import importlib
import importlib.util
import io
import pickle
import sys
import threading
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from . import origins, statements, uses
from .origins import Origin

#: The pickle protocol of what travels (the runner's Python reads any).
PROTOCOL = 5 if sys.version_info >= (3, 8) else 4

#: What the runner's bundle format is (``wasp_runner_bundle`` reads it).
FORMAT = 1

#: Kinds of pieces.
DEF, VALUE, OMIT = 0, 1, 2

#: The runner's module that rebuilds what travels.
RUNNER_BUNDLE = "wasp_runner_bundle"

Key = tuple[str, str]
_MISSING = object()


class Unshippable(TypeError):
    """Something a job needs cannot travel to the sandbox; the message says what, how the
    job reaches it (``job → helper → LOCK``), and what to do instead."""

    def __init__(self, reason: str, chain: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.chain = chain
        super().__init__(f"{' → '.join(chain)}: {reason}" if chain else reason)

    def within(self, step: str) -> Unshippable:
        """The same refusal, seen one step further from what cannot travel."""
        return type(self)(self.reason, (step, *self.chain))


class MissingModule(Unshippable, ImportError):
    """A job needs a module that wasp's Python runner does not have."""


@dataclass
class _Piece:
    key: Key
    kind: int
    data: Any
    #: Pieces that must have run before this one.
    after: set[Key] = field(default_factory=set)
    #: Its place when nothing else decides: the line of its statement, or when it was found.
    line: int = 0


class Shipment:
    """What one call sends: the bundle (modules and pieces) and the pickled call, the
    classes that travelled (a result may hold instances of those), and what the call takes
    (values put once, jobs' results)."""

    __slots__ = ("bundle", "call", "classes", "takes")

    def __init__(
        self,
        bundle: bytes,
        call: bytes,
        classes: frozenset[tuple[str, str]],
        takes: Optional[list[list[Any]]] = None,
    ) -> None:
        self.bundle = bundle
        self.call = call
        self.classes = classes
        #: The values put once and jobs' results the call takes: ``[how, native]`` each.
        self.takes = takes or []


class _Import:
    """Pickles as ``importlib.import_module(name)``: a module, inside the sandbox."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return importlib.import_module, (self.name,)


class _Attribute:
    """Pickles as ``getattr(module, name)``, looked up inside the sandbox."""

    __slots__ = ("module", "name")

    def __init__(self, module: _Import, name: str) -> None:
        self.module = module
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return getattr, (self.module, self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Pickle wants what rebuilds an object to be callable: this one is, inside the
        # sandbox, once looked up there.
        raise TypeError(f"{self.module.name}.{self.name} exists only inside the sandbox")


def sandbox_function(name: str) -> _Attribute:
    """What pickles as function ``name`` of the runner's ``wasp_runner_bundle``."""
    return _Attribute(_Import(RUNNER_BUNDLE), name)


#: The types that stand for a value put once or a job's result (``wasp.Ref``, futures):
#: each has ``_wasp_take() -> (how, native, needs, owner)`` (see ``wasp._data``).
TAKEN: set[type] = set()


class References:
    """The values put once and the jobs' results one call takes, in the order the runner
    reads them (``wasp_runner_bundle.taken(index)``), each ``[how, native]``."""

    __slots__ = ("_index", "items", "owner")

    def __init__(self, owner: object = None) -> None:
        #: The server the call goes to (``None``: not checked).
        self.owner = owner
        self.items: list[list[Any]] = []
        self._index: dict[int, int] = {}

    def add(self, how: int, native: Any) -> int:
        index = self._index.get(id(native))
        if index is None:
            index = self._index[id(native)] = len(self.items)
            self.items.append([how, native])
        return index


class _Pickler(pickle.Pickler):
    """A pickler whose references to functions, classes and modules the walk checks and
    makes travel."""

    def __init__(self, file: io.BytesIO, walk: Walk) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.walk = walk
        self.refs: set[Key] = set()

    def reducer_override(self, obj: Any) -> Any:
        return self.walk.reduce(obj, self.refs)


class Walk:
    """One submit's walk: the modules and pieces found so far."""

    def __init__(
        self,
        has_module: Callable[[str], bool],
        references: Optional[References] = None,
        *,
        takes: bool = True,
    ) -> None:
        self._has_module = has_module
        #: What the call takes (values put once, jobs' results); with ``takes=False``, a
        #: value put once, which may hold neither.
        self.references = (references or References()) if takes else None
        #: Module name -> (index, file, is a package), in the order they are created.
        self.modules: OrderedDict[str, tuple[int, Optional[str], bool]] = OrderedDict()
        self.pieces: dict[Key, _Piece] = {}
        #: Local functions: (module, statement, free variables), by code object.
        self.locals: list[tuple[str, statements.Statement, tuple[str, ...]]] = []
        self._local_index: dict[types.CodeType, int] = {}
        self._whole: set[str] = set()
        self._imports: dict[str, _Import] = {}
        self._found = 0
        #: Whether what travels depends on nothing but the globals' identities: no value
        #: that may change in place, no local function (see :meth:`plan_checks`).
        self.reusable = True

    # What travels.

    def pickle(self, value: Any) -> tuple[bytes, set[Key]]:
        """``value`` pickled, and the pieces its references need first."""
        buffer = io.BytesIO()
        pickler = _Pickler(buffer, self)
        try:
            pickler.dump(value)
        except Unshippable:
            raise
        except RecursionError:
            raise Unshippable("it nests too deeply to travel") from None
        except Exception as error:  # pickle's refusals: TypeError, PicklingError, ...
            raise Unshippable(_advice(error)) from None
        return buffer.getvalue(), pickler.refs

    def need(self, module_name: str, name: str, attrs: tuple[str, ...] = ()) -> set[Key]:
        """Makes global ``name`` of module ``module_name`` travel; returns the pieces that
        must run before a statement that reads it."""
        module = sys.modules.get(module_name)
        if module is None:
            return set()
        namespace = vars(module)
        value = namespace.get(name, _MISSING)
        if value is _MISSING or getattr(builtins, name, _MISSING) is value:
            # A built-in, or a name not defined: as it would be on the caller.
            return set()
        if isinstance(value, types.ModuleType):
            return self._module_global(module_name, name, value, attrs)
        key = (module_name, name)
        if key not in self.pieces:
            try:
                self._add(key, value)
            except Unshippable as error:
                raise error.within(_shown(module_name, name)) from None
        return {key}

    def need_soft(self, module_name: str, name: str, attrs: tuple[str, ...]) -> None:
        """Makes ``name`` travel if it can (an annotation: the runner evaluates those only
        when asked)."""
        with contextlib.suppress(Unshippable):
            self.need(module_name, name, attrs)

    def need_whole(self, module_name: str) -> None:
        """Makes every global of a user module travel that can (a module used as a value:
        what of it is read cannot be known); what cannot is left out, and says why when read."""
        if module_name in self._whole:
            return
        self._whole.add(module_name)
        module = sys.modules[module_name]
        for name in list(vars(module)):
            if name.startswith("__") and name.endswith("__"):
                continue
            try:
                self.need(module_name, name)
            except Unshippable as error:
                self.pieces[(module_name, name)] = _Piece((module_name, name), OMIT, str(error))

    def add_module(self, name: str) -> None:
        """Makes module ``name`` (and its packages) exist inside the sandbox."""
        if name in self.modules:
            return
        parent = name.rpartition(".")[0]
        if parent:
            self.add_module(parent)
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        package = hasattr(module, "__path__")
        self.modules[name] = (len(self.modules), file, package)

    def bind_module(self, module_name: str, imported: str) -> None:
        """pp's ``modules``: ``import imported`` in module ``module_name``, unless that
        module binds the name itself (the runner imported ``imported`` when it was built,
        so its package holds it)."""
        top = imported.partition(".")[0]
        module = sys.modules.get(module_name)
        if module is None or top in vars(module) or (module_name, top) in self.pieces:
            return
        self.add_module(module_name)
        self._found += 1
        data = pickle.dumps(self._import(top), protocol=PROTOCOL)
        self.pieces[(module_name, top)] = _Piece((module_name, top), VALUE, data, line=self._found)

    def require(self, module_name: str, what: str) -> None:
        """Raises unless the runner has module ``module_name``."""
        if not self._has_module(module_name):
            raise MissingModule(_missing_module(module_name, what))

    # The pickler's hook.

    def reduce(self, obj: Any, refs: set[Key]) -> Any:
        """How ``obj`` pickles (``NotImplemented``: as pickle would), checking that the
        sandbox will have what it refers to."""
        kind = type(obj)
        if kind is types.FunctionType:
            return self._reduce_function(obj, refs)
        if kind in TAKEN:
            return self._reduce_taken(obj, refs)
        if isinstance(obj, type):
            return self._reduce_class(obj, refs)
        if kind is types.ModuleType:
            return self._reduce_module(obj)
        if kind is types.BuiltinFunctionType:
            owner = getattr(obj, "__self__", None)
            if owner is None or isinstance(owner, types.ModuleType):
                module = getattr(obj, "__module__", None) or "builtins"
                self.require(module, f"{module}.{obj.__name__}")
            return NotImplemented
        if kind is types.MethodType:
            return self._reduce_method(obj)
        if getattr(obj, "__wrapped__", None) is not None:
            return self._reduce_wrapper(obj, refs)
        if kind is types.CodeType:
            raise Unshippable(
                "a code object cannot travel (the runner's Python is another version)"
            )
        return NotImplemented

    def _reduce_taken(self, obj: Any, refs: set[Key]) -> Any:
        """A value put once or a job's future: the runner's ``taken(index)``, which reads
        the value the server puts in the call's arguments in its place."""
        references = self.references
        if references is None:
            raise Unshippable(
                f"a value put once cannot hold a {describe(obj)}: pass it to the job beside "
                "the value"
            )
        how, native, needs, owner = obj._wasp_take()
        if references.owner is not None and owner is not references.owner:
            raise Unshippable(
                f"this {describe(obj)} belongs to another wasp client: only jobs of the "
                "client it came from may take it"
            )
        for module_name, name in needs:
            # What its value refers to (its classes) travels with the call.
            if name:
                refs.update(self.need(module_name, name))
            elif module_name in sys.modules:
                self.add_module(module_name)
        index = references.add(how, native)
        return sandbox_function("taken"), (index,)

    def _reduce_function(self, function: types.FunctionType, refs: set[Key]) -> Any:
        module = sys.modules.get(function.__module__ or "")
        qualname = function.__qualname__
        if (
            module is not None
            and "<locals>" not in qualname
            and _lookup(module, qualname) is function
        ):
            if origins.origin(module) is Origin.USER:
                refs.update(self.need(module.__name__, qualname.partition(".")[0]))
            else:
                self.require(module.__name__, f"{module.__name__}.{qualname}")
            return NotImplemented
        bound = _decorated_global(function)
        if bound is not None:
            refs.update(self.need(*bound))
            return _Attribute(self._import(bound[0]), bound[1]).__reduce__()
        return self._reduce_local(function, refs)

    def _reduce_wrapper(self, wrapper: Any, refs: set[Key]) -> Any:
        """A decorated global that is not a function (``functools.lru_cache``'s wrapper)
        pickles by its name: that global travels."""
        module = sys.modules.get(getattr(wrapper, "__module__", None) or "")
        qualname = getattr(wrapper, "__qualname__", None)
        if module is None or not isinstance(qualname, str) or "<locals>" in qualname:
            return NotImplemented
        if _lookup(module, qualname) is wrapper:
            if origins.origin(module) is Origin.USER:
                refs.update(self.need(module.__name__, qualname.partition(".")[0]))
            else:
                self.require(module.__name__, f"{module.__name__}.{qualname}")
        return NotImplemented

    def _reduce_method(self, method: types.MethodType) -> Any:
        """A bound method that a module holds as a global (``random.randint``, bound to
        the module's hidden instance) travels by that name: inside the sandbox it is that
        module's, not a copy of this process's instance and its state."""
        function = method.__func__
        module = sys.modules.get(getattr(function, "__module__", "") or "")
        name = getattr(function, "__name__", "")
        if (
            module is not None
            and not isinstance(method.__self__, type)
            and getattr(module, name, None) is method
            and origins.origin(module) is not Origin.USER
        ):
            self.require(module.__name__, f"{module.__name__}.{name}")
            return _Attribute(self._import(module.__name__), name).__reduce__()
        return NotImplemented

    def _reduce_local(self, function: types.FunctionType, refs: set[Key]) -> Any:
        module_name = function.__globals__.get("__name__")
        module = sys.modules.get(module_name) if isinstance(module_name, str) else None
        if (
            module is None
            or not isinstance(module_name, str)
            or vars(module) is not function.__globals__
        ):
            raise Unshippable(
                f"{function.__qualname__} was made from a module that is not loaded: "
                "define it in a module of yours"
            )
        if origins.origin(module) is not Origin.USER:
            raise Unshippable(
                f"{function.__qualname__} is a function made inside module {module_name!r}, "
                "which is not yours and cannot travel as source"
            )
        code = function.__code__
        index = self._local_index.get(code)
        if index is None:
            try:
                statement = _cached(statements.local_statement, function.__code__, function)
            except statements.SourceError as error:
                raise Unshippable(str(error)) from None
            self.add_module(module_name)
            index = len(self.locals)
            self.locals.append((module_name, statement, code.co_freevars))
            self.reusable = False
            self._local_index[code] = index
            found = _cached(uses.of_function, code, code)
            for use in found.calltime:
                self.need(module_name, use.name, use.attrs)
            for imported in found.imports:
                self._import_in(module_name, imported)
        cells = tuple(_cell_state(cell) for cell in function.__closure__ or ())
        state = (
            cells,
            function.__defaults__,
            function.__kwdefaults__,
            dict(function.__dict__) or None,
            function.__name__,
            function.__qualname__,
            function.__doc__,
        )
        bundle = self._import(RUNNER_BUNDLE)
        return (
            _Attribute(bundle, "make_local"),
            (index,),
            state,
            None,
            None,
            _Attribute(bundle, "set_local_state"),
        )

    def _reduce_class(self, cls: type, refs: set[Key]) -> Any:
        module_name = cls.__module__
        if module_name == "builtins":
            return NotImplemented
        qualname = cls.__qualname__
        if "<locals>" in qualname:
            raise Unshippable(
                f"class {qualname} is defined inside a function: define it at module level "
                "so that it can travel"
            )
        module = sys.modules.get(module_name)
        if module is None or _lookup(module, qualname) is not cls:
            raise Unshippable(
                f"this is an instance of an older definition of class {module_name}.{qualname} "
                "(the name was defined again since): make the object again"
            )
        if origins.origin(module) is Origin.USER:
            refs.update(self.need(module_name, qualname.partition(".")[0]))
        else:
            self.require(module_name, f"class {module_name}.{qualname}")
        return NotImplemented

    def _reduce_module(self, module: types.ModuleType) -> Any:
        name = module.__name__
        if origins.origin(module) is Origin.USER:
            self.add_module(name)
            self.need_whole(name)
        else:
            self.require(name, f"module {name}")
        return self._import(name).__reduce__()

    def _import(self, name: str) -> _Import:
        found = self._imports.get(name)
        if found is None:
            found = self._imports[name] = _Import(name)
        return found

    # Pieces.

    def _add(self, key: Key, value: Any) -> None:
        module_name, name = key
        definition = _definition(module_name, name, value)
        if definition is None:
            self._found += 1
            self.add_module(module_name)
            # In the table before it is pickled: what it holds may read it back.
            piece = self.pieces[key] = _Piece(key, VALUE, None, line=self._found)
            try:
                made = _made_class(value, module_name, name)
                constant = _constant(value) if made is None else None
                if constant is None and made is None:
                    self.reusable = False  # it may change in place: pickled at each submit
                piece.data, piece.after = constant or self.pickle(value if made is None else made)
            except BaseException:
                del self.pieces[key]
                raise
            return
        statement, found = definition
        self.add_module(module_name)
        piece = _Piece(key, DEF, statement, line=statement.lineno)
        self.pieces[key] = piece
        for use in found.deftime:
            piece.after.update(self.need(module_name, use.name, use.attrs))
        for use in found.calltime:
            self.need(module_name, use.name, use.attrs)
        for use in found.soft:
            self.need_soft(module_name, use.name, use.attrs)
        for imported in found.imports:
            self._import_in(module_name, imported)

    def _module_global(
        self, module_name: str, name: str, value: types.ModuleType, attrs: tuple[str, ...]
    ) -> set[Key]:
        """A global that is a module: it travels by name, and for a user module, what is
        read of it (all of it, if that is not known)."""
        key = (module_name, name)
        target = value.__name__
        if origins.origin(value) is not Origin.USER:
            try:
                self.require(target, "")
            except Unshippable as error:
                raise error.within(_shown(module_name, name)) from None
        else:
            self.add_module(target)
        if key not in self.pieces:
            self.add_module(module_name)
            self._found += 1
            data = pickle.dumps(self._import(target), protocol=PROTOCOL)
            self.pieces[key] = _Piece(key, VALUE, data, line=self._found)
        if origins.origin(value) is not Origin.USER:
            return {key}
        if not attrs:
            self.need_whole(target)
            return {key}
        inner = getattr(value, attrs[0], _MISSING)
        if isinstance(inner, types.ModuleType) and inner.__name__ == f"{target}.{attrs[0]}":
            return {key, *self._module_global(target, attrs[0], inner, attrs[1:])}
        return {key, *self.need(target, attrs[0], attrs[1:])}

    def _import_in(self, module_name: str, imported: uses.Import) -> None:
        """An ``import`` a function of ``module_name`` runs when called."""
        name = _resolve(module_name, imported)
        if name is None:
            return
        module = sys.modules.get(name)
        if module is None:
            spec = _find_spec(name)
            origin = getattr(spec, "origin", None)
            if (
                spec is None
                or origin is None
                or origins._origin_of(name, origin) is not Origin.USER
            ):
                self.require(name, f"import {name}")
                return
            # The caller's own module, not imported here yet: it must be, to travel.
            module = importlib.import_module(name)
        if origins.origin(module) is not Origin.USER:
            self.require(name, f"import {name}")
            return
        self.add_module(name)
        if not imported.names:
            self.need_whole(name)
        for attr in imported.names:
            inner = getattr(module, attr, _MISSING)
            if isinstance(inner, types.ModuleType):
                self.add_module(inner.__name__)
                self.need_whole(inner.__name__)
            else:
                self.need(name, attr)

    # The bundle.

    def bundle(self) -> bytes:
        """What the runner's ``wasp_runner_bundle.materialize`` takes."""
        modules = tuple((name, file, package) for name, (_, file, package) in self.modules.items())
        pieces = []
        for piece in self._ordered():
            module_name, name = piece.key
            index = self.modules[module_name][0]
            if piece.kind == DEF:
                statement = piece.data
                data: Any = (
                    statement.filename,
                    statement.lineno,
                    statement.source,
                    statement.flags,
                )
            else:
                data = piece.data
            pieces.append((piece.kind, index, name, data))
        local_functions = tuple(
            (
                self.modules[module_name][0],
                statement.filename,
                statement.lineno,
                statement.source,
                statement.wrapped,
                statement.flags,
                freevars,
            )
            for module_name, statement, freevars in self.locals
        )
        return pickle.dumps((FORMAT, modules, tuple(pieces), local_functions), protocol=PROTOCOL)

    def needs(self) -> tuple[Key, ...]:
        """What a value pickled by this walk refers to (for a value put once): the caller's
        globals, and its modules as ``(module, "")``. Raises :class:`Unshippable` if it
        holds a function that is not a module's global (which only its own call could
        rebuild)."""
        if self.locals:
            raise Unshippable(
                "a value put once cannot hold a lambda or a function made inside another: "
                "make it a module-level def, or pass it to the job beside the value"
            )
        found = [key for key, piece in self.pieces.items() if piece.kind != OMIT]
        found += [(name, "") for name in self.modules]
        return tuple(found)

    def plan_checks(self) -> tuple[tuple[dict[str, Any], str, Any], ...]:
        """What must still hold for this walk's bundle to be what a new walk would make:
        each global that travelled is still the same object."""
        checks = []
        for module_name, name in self.pieces:
            namespace = vars(sys.modules[module_name])
            checks.append((namespace, name, namespace.get(name, _MISSING)))
        return tuple(checks)

    def classes(self) -> frozenset[tuple[str, str]]:
        """The classes that travelled (by module and name)."""
        return frozenset(
            piece.key
            for piece in self.pieces.values()
            if piece.kind != OMIT
            and isinstance(getattr(sys.modules.get(piece.key[0]), piece.key[1], None), type)
        )

    def _ordered(self) -> list[_Piece]:
        """The pieces in an order where each runs after what its statement reads (module
        by module, in file order where nothing else decides)."""
        waiting = {
            key: {k for k in piece.after if k in self.pieces and k != key}
            for key, piece in self.pieces.items()
        }
        readers: dict[Key, list[Key]] = {}
        for key, before in waiting.items():
            for other in before:
                readers.setdefault(other, []).append(key)

        def rank(key: Key) -> tuple[int, int, str]:
            piece = self.pieces[key]
            return (self.modules[key[0]][0], piece.line, key[1])

        ready = [(rank(key), key) for key, before in waiting.items() if not before]
        heapq.heapify(ready)
        ordered: list[_Piece] = []
        done: set[Key] = set()
        while len(done) < len(waiting):
            if not ready:
                # A cycle between statements: the file's order decides.
                key = min((k for k in waiting if k not in done), key=rank)
                heapq.heappush(ready, (rank(key), key))
            _, key = heapq.heappop(ready)
            if key in done:
                continue
            done.add(key)
            ordered.append(self.pieces[key])
            for reader in readers.get(key, ()):
                before = waiting[reader]
                before.discard(key)
                if not before and reader not in done:
                    heapq.heappush(ready, (rank(reader), reader))
        return ordered


def _lookup(module: types.ModuleType, qualname: str) -> Any:
    value: Any = module
    for part in qualname.split("."):
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _unwrapped(value: Any) -> list[Any]:
    """``value``, what it wraps (``__wrapped__``, as ``functools.wraps`` and
    ``functools.lru_cache`` leave it), and the functions its closure holds (a decorator's
    wrapper made without ``functools.wraps``)."""
    found = [value]
    current = value
    for _ in range(16):
        inner = getattr(current, "__wrapped__", _MISSING)
        if inner is _MISSING:
            break
        found.append(inner)
        current = inner
    for candidate in list(found):
        for cell in getattr(candidate, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # a cell not yet bound
                found.append(cell.cell_contents)
    return found


def _definition(
    module_name: str, name: str, value: Any
) -> Optional[tuple[statements.Statement, uses.Uses]]:
    """The module-level statement that made global ``name`` of a user module, and what it
    reads; ``None`` if ``value`` is not what such a statement made (then it is a value)."""
    module = sys.modules[module_name]
    if origins.origin(module) is not Origin.USER:
        return None
    for candidate in _unwrapped(value):
        if isinstance(candidate, type):
            if (
                candidate is value
                and candidate.__module__ == module_name
                and candidate.__qualname__ == name
                and statements.has_class_statement(candidate, getattr(module, "__file__", None))
            ):
                found: tuple[statements.Statement, uses.Uses] = _cached(
                    _class_definition, candidate, candidate, getattr(module, "__file__", None)
                )
                return found
        elif (
            isinstance(candidate, types.FunctionType)
            and candidate.__module__ == module_name
            and candidate.__qualname__ == name
            and candidate.__code__.co_name == name
        ):
            made: tuple[statements.Statement, uses.Uses] = _cached(
                _function_definition, candidate.__code__, candidate
            )
            return made
    return None


class _Recipe:
    """Pickles as a call that makes a class again inside the sandbox (a class made by a
    call, not a statement: ``namedtuple(...)``, ``Enum("Color", ...)``)."""

    __slots__ = ("args", "call")

    def __init__(self, call: Any, args: tuple[Any, ...]) -> None:
        self.call = call
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.call, self.args


def _made_class(value: Any, module_name: str, name: str) -> Optional[_Recipe]:
    """How a class of the caller's that no class statement made is made again; ``None``
    for what is not such a class. Raises for a class wasp cannot make again."""
    if not isinstance(value, type) or value.__module__ != module_name or value.__qualname__ != name:
        return None
    import collections
    import enum
    import functools

    named: Any = value
    if value.__bases__ == (tuple,) and hasattr(named, "_fields") and hasattr(named, "_make"):
        given = named._field_defaults
        defaults = tuple(given[field] for field in named._fields if field in given)
        make = functools.partial(
            collections.namedtuple, defaults=defaults or None, module=module_name
        )
        return _Recipe(make, (name, named._fields))
    if issubclass(value, enum.Enum) and len(value.__bases__) == 1 and not _own_functions(value):
        members = [(member.name, member.value) for member in value]
        make = functools.partial(value.__bases__[0], module=module_name, qualname=name)
        return _Recipe(make, (name, members))
    raise Unshippable(
        f"class {name} was made by a call, not a class statement, and wasp cannot make it "
        "again: define it with a class statement"
    )


def _own_functions(cls: type) -> bool:
    return any(
        isinstance(v, (types.FunctionType, staticmethod, classmethod, property))
        for v in vars(cls).values()
    )


def _function_definition(function: types.FunctionType) -> tuple[statements.Statement, uses.Uses]:
    try:
        statement = statements.global_statement(function)
    except statements.SourceError as error:
        raise Unshippable(str(error)) from None
    return statement, uses.of_statement(statement.node, statement.code)


def _class_definition(cls: type, filename: Optional[str]) -> tuple[statements.Statement, uses.Uses]:
    try:
        statement = statements.class_statement(cls, filename)
    except statements.SourceError as error:
        raise Unshippable(str(error)) from None
    return statement, uses.of_statement(statement.node, statement.code)


def _decorated_global(function: types.FunctionType) -> Optional[Key]:
    """The module global that ``function`` is, if a decorator without ``functools.wraps``
    made it from a module-level ``def``."""
    for candidate in _unwrapped(function)[1:]:
        if not isinstance(candidate, types.FunctionType) or "<locals>" in candidate.__qualname__:
            continue
        module = sys.modules.get(candidate.__module__ or "")
        if (
            module is not None
            and getattr(module, candidate.__qualname__, None) is function
            and origins.origin(module) is Origin.USER
        ):
            return module.__name__, candidate.__qualname__
    return None


def _cell_state(cell: types.CellType) -> tuple[Any, ...]:
    try:
        return (cell.cell_contents,)
    except ValueError:
        return ()  # a cell not yet bound


def _resolve(module_name: str, imported: uses.Import) -> Optional[str]:
    if not imported.level:
        return imported.module
    module = sys.modules.get(module_name)
    package = getattr(module, "__package__", None) or ""
    try:
        return importlib.util.resolve_name("." * imported.level + imported.module, package)
    except (ImportError, ValueError):
        return None


def _find_spec(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None


# Analyses cached per code object or class: a submit of the same function again costs a
# dictionary lookup, not a parse.
_analyses: OrderedDict[tuple[Any, int], tuple[Any, Any]] = OrderedDict()
_analyses_lock = threading.Lock()
_MAX_ANALYSES = 4096


def _cached(make: Callable[..., Any], owner: Any, *args: Any) -> Any:
    key = (make, id(owner))
    with _analyses_lock:
        found = _analyses.get(key)
        if found is not None and found[0] is owner:
            _analyses.move_to_end(key)
            return found[1]
    result = make(*args)
    with _analyses_lock:
        _analyses[key] = (owner, result)
        while len(_analyses) > _MAX_ANALYSES:
            _analyses.popitem(last=False)
    return result


# Constants (ints, strings, tuples and frozensets of them...) pickled once: a global tuple
# of 50,000 numbers costs a dictionary lookup per submit, not a pickling.
_constants: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()
_constants_size = 0
_MAX_CONSTANTS_SIZE = 64 << 20
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def _constant(value: Any) -> Optional[tuple[bytes, set[Key]]]:
    """``value`` pickled, if it is a constant (it refers to nothing, and cannot change)."""
    global _constants_size
    key = id(value)
    with _analyses_lock:
        found = _constants.get(key)
        if found is not None and found[0] is value:
            _constants.move_to_end(key)
            return found[1], set()
    if not _immutable(value, 0):
        return None
    data = pickle.dumps(value, protocol=PROTOCOL)
    with _analyses_lock:
        _constants[key] = (value, data)
        _constants_size += len(data)
        while _constants_size > _MAX_CONSTANTS_SIZE and len(_constants) > 1:
            _, (_, dropped) = _constants.popitem(last=False)
            _constants_size -= len(dropped)
    return data, set()


def _immutable(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind in (tuple, frozenset) and depth < 32:
        return all(_immutable(item, depth + 1) for item in value)
    return False


def _shown(module_name: str, name: str) -> str:
    """A global as messages show it: ``name`` in the script, ``module.name`` elsewhere."""
    return name if module_name == "__main__" else f"{module_name}.{name}"


def _missing_module(module_name: str, what: str) -> str:
    top = module_name.partition(".")[0]
    what = f"{what}: " if what else ""
    if origins.is_standard(module_name):
        return (
            f"{what}the standard module {module_name!r} is not in wasp's Python runner (the "
            "sandbox has no files, processes or network; see wasp.runner.MODULES): do that "
            "part here and pass its result to the job"
        )
    if _find_spec(top) is None:
        return (
            f"{what}module {top!r} is neither installed here nor in wasp's Python runner "
            "(see wasp.runner.MODULES)"
        )
    return (
        f"{what}module {top!r} is an installed package that this runner lacks: give the "
        f"client packages=[{top!r}] (pure-Python packages: see wasp.runner), or do that part "
        "here and pass its result to the job"
    )


_ADVICE = (
    ("_io.", "an open file or stream: read it here and pass its contents"),
    ("_thread.", "a lock or thread state, which has no meaning in another process"),
    ("generator", "a generator: pass a list of its items"),
    ("socket", "a socket: the sandbox has no network"),
    ("_thread.lock", "a lock"),
    ("frame", "a frame"),
)


def _advice(error: BaseException) -> str:
    text = str(error)
    for marker, advice in _ADVICE:
        if marker in text:
            return f"{text} ({advice})"
    return text


def describe(value: Any) -> str:
    """A short description of ``value`` for messages."""
    kind = type(value)
    return (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )


def is_user_value(value: Union[type, types.FunctionType]) -> bool:
    """Whether a function or class comes from a module of the caller's."""
    module = sys.modules.get(getattr(value, "__module__", "") or "")
    return module is not None and origins.origin(module) is Origin.USER
