"""Inside the sandbox: the caller's modules rebuilt from what travelled with a job
(``wasp._ship`` on the caller made it; this file is its other half).

A bundle is ``(format, modules, pieces, locals)``:

- ``modules``: ``(name, file, is_package)`` of each of the caller's modules the job needs,
  made empty here, under their own names (``__main__`` for the script);
- ``pieces``, in the order they run: ``(DEF, module, name, (file, line, source, flags))``
  runs a ``def`` or ``class`` statement in its module, with its file's name and line numbers;
  ``(VALUE, module, name, pickled)`` sets a global to its value at submit;
  ``(OMIT, module, name, reason)`` records a global that could not travel (a module sent
  whole), so that reading it says why;
- ``locals``: ``(module, file, line, source, wrapped, flags, freevars)`` of each function
  that is not a module's global (a lambda, a closure), which pickled values rebuild with
  :func:`make_local` and :func:`set_local_state`.
"""

import linecache
import pickle
import sys
import types

import wasp_factory

DEF, VALUE, OMIT = 0, 1, 2

#: The bundle format this runner reads.
FORMAT = 1

#: The local functions of the bundle being rebuilt: (module, file, line, source, wrapped,
#: flags, freevars), and the factories made from them.
_locals = []
_factories = {}

#: Files whose lines travelled, for tracebacks: file -> {line: text}.
shipped_lines = {}

#: Globals that could not travel: (module, name) -> why.
omitted = {}


def materialize(data):
    """Rebuilds the caller's modules from ``data``; returns them by name."""
    fmt, modules, pieces, local_functions = pickle.loads(data)
    if fmt != FORMAT:
        raise RuntimeError(
            f"this job was prepared for another version of wasp's Python runner (format "
            f"{fmt}, the runner reads {FORMAT}): use the runner of the caller's wasp"
        )
    made = [_module(name, file, package) for name, file, package in modules]
    _locals[:] = [(made[index], *rest) for index, *rest in local_functions]
    _factories.clear()
    omitted.clear()
    for _, file, line, source, _, _, _ in local_functions:
        _note_lines(file, line, source)
    for kind, index, name, data in pieces:
        module = made[index]
        if kind == DEF:
            file, line, source, flags = data
            _note_lines(file, line, source)
            exec(wasp_factory.compile_global(source, line, file, flags), vars(module))
        elif kind == VALUE:
            vars(module)[name] = pickle.loads(data)
        else:
            omitted[(module.__name__, name)] = data
    _install_lines()
    return {module.__name__: module for module in made}


def _module(name, file, package):
    module = types.ModuleType(name)
    if file:
        module.__file__ = file
    if package:
        module.__path__ = []
    module.__package__ = name if package else name.rpartition(".")[0]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def make_local(index):
    """A local function of the bundle (see the module's doc), its closure still empty."""
    factory = _factories.get(index)
    if factory is None:
        module, file, line, source, wrapped, flags, freevars = _locals[index]
        node = wasp_factory.parse(source, line, wrapped, file)
        namespace = vars(module)
        exec(wasp_factory.compile_local(node, freevars, file, flags), namespace)
        factory = _factories[index] = namespace.pop(wasp_factory.FACTORY)
    return factory()


def set_local_state(function, state):
    """Gives a local function its closure, defaults and attributes."""
    cells, defaults, kwdefaults, attributes, name, qualname, doc = state
    for cell, value in zip(function.__closure__ or (), cells):
        if value:
            cell.cell_contents = value[0]
    function.__defaults__ = defaults
    function.__kwdefaults__ = kwdefaults
    if attributes:
        function.__dict__.update(attributes)
    function.__name__ = name
    function.__qualname__ = qualname
    function.__doc__ = doc
    return function


def _note_lines(file, line, source):
    lines = shipped_lines.setdefault(file, {})
    for offset, text in enumerate(source.splitlines(True)):
        lines[line + offset] = text


def _install_lines():
    """Puts the lines that travelled in the line cache, at their numbers: tracebacks show
    the caller's code."""
    for file, lines in shipped_lines.items():
        last = max(lines, default=0)
        text = [lines.get(number, "\n") for number in range(1, last + 1)]
        linecache.cache[file] = (sum(map(len, text)), None, text, file)


def run_chunk(function, chunk):
    """A chunk of ``map``'s calls in one job (``Client.map(..., chunksize=N)``)."""
    return [function(*args) for args in chunk]
