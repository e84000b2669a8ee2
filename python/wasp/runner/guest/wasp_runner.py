"""wasp's Python runner: the program inside the sandbox (a WebAssembly component built by
componentize-py; see ``wasp._runner``). It never runs on the host.

Each job is one call of ``python(args)``, in a fresh instance: ``args`` is the MessagePack
array ``[source, function, args, modules]``. The runner imports ``modules`` (each bound to
its top-level name, as pp does), executes ``source`` in a fresh namespace, calls
``function(*args)`` and returns its result as MessagePack. An exception, or a result that
cannot cross, comes back as text: the job fails with it (wasp.JobFailed).

Only the modules imported here, when the component is built, exist inside the sandbox: the
build snapshots the interpreter after this file's top level has run.
"""

import importlib
import linecache
import sys
import traceback

import msgpack
import wasp_runner_modules
import wit_world
from componentize_py_types import Err

for _name in wasp_runner_modules.MODULES:
    importlib.import_module(_name)

#: The file name a job's source gets in tracebacks.
SOURCE_NAME = "<wasp job>"

#: Nesting deeper than this cannot cross (the client's limit too).
MAX_DEPTH = 128


def _bind_module(namespace, name):
    """Imports ``name`` and binds its top-level package in ``namespace``, as ``import``."""
    try:
        importlib.import_module(name)
    except ImportError:
        available = ", ".join(sorted(wasp_runner_modules.MODULES))
        raise ImportError(
            f"module {name!r} is not in wasp's Python runner (it has: {available})"
        ) from None
    top = name.partition(".")[0]
    namespace[top] = sys.modules[top]


#: The namespaces of the sources this instance ran, most recent last: an instance kept
#: between jobs (``reuse_instances``) calls a function again without executing its source
#: again. A fresh instance starts with none.
_namespaces = {}

#: The most sources an instance keeps the namespaces of.
MAX_NAMESPACES = 16


def _namespace(source, modules):
    key = (source, tuple(modules))
    namespace = _namespaces.pop(key, None)
    if namespace is None:
        namespace = {"__name__": "__wasp_job__", "__builtins__": __builtins__}
        for name in modules:
            _bind_module(namespace, name)
        exec(compile(source, SOURCE_NAME, "exec"), namespace)
        while len(_namespaces) >= MAX_NAMESPACES:
            _namespaces.pop(next(iter(_namespaces)))
    _namespaces[key] = namespace
    return namespace


def _run(payload):
    source, function, args, modules = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    # Tracebacks show the job's own lines.
    linecache.cache[SOURCE_NAME] = (len(source), None, source.splitlines(True), SOURCE_NAME)
    return _namespace(source, modules)[function](*args)


def _pack(value):
    try:
        return msgpack.packb(value, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(
            f"the job's result cannot cross back to the caller ({error}): return "
            "None, bool, int, float, str, bytes, lists, tuples and dicts of them"
        ) from None


def _job_traceback(error):
    """The traceback of ``error`` from the job's first frame on (the runner's own frames
    say nothing to the job's author), or all of it if the job's code never ran."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename != SOURCE_NAME:
        frames = frames.tb_next
    if frames is None:
        frames = error.__traceback__
    return "".join(traceback.format_exception(type(error), error, frames))


class WitWorld(wit_world.WitWorld):
    def python(self, args: bytes) -> bytes:
        try:
            return _pack(_run(args))
        except BaseException as error:  # whatever the job raises goes back, as text
            raise Err(_job_traceback(error)) from None
