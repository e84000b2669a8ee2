"""wasp's Python runner: the program inside the sandbox (a WebAssembly component built by
componentize-py; see ``wasp.runner``). It never runs on the host.

Each job is one call of ``python(args)``, in a fresh instance (or one kept from an earlier
job of the same caller, with ``reuse_instances``). ``args`` is a MessagePack array, one of:

- ``[format, bundle, call]`` or ``[format, bundle, call, taken]`` (a Python function
  submitted by the ``wasp`` package): the bundle rebuilds the caller's modules that the
  call needs (``wasp_runner_bundle``), then ``call``, pickled, is ``(function, args,
  kwargs)``, in which ``wasp_runner_bundle.taken(i)`` stands for ``taken[i]``: ``[how,
  value]``, a value put once or another job's result, put there by the server (see
  ``wasp_runner_bundle.taken``); the result comes back encoded by
  ``wasp_runner_codec``, and an exception as its traceback followed by a line with its type,
  arguments and attributes (see :func:`_failure`);
- ``[source, function, args, modules]`` (a ``.py`` file run by ``wasp run``/``wasp map``):
  the file's source runs whole in a fresh namespace, then ``function(*args)``; the result
  comes back as plain MessagePack, an exception as its traceback.

Only the modules imported here, when the component is built, exist inside the sandbox: the
build snapshots the interpreter after this file's top level has run.
"""

import base64
import builtins
import errno
import importlib
import io
import linecache
import os
import pickle
import random
import sys
import traceback

import msgpack
import wasp_runner_bundle
import wasp_runner_codec
import wasp_runner_modules
import wit_world
from componentize_py_types import Err

for _name in wasp_runner_modules.MODULES:
    importlib.import_module(_name)
#: The packages' modules that did not import when the runner was built, and why.
UNIMPORTED = {}
for _name in wasp_runner_modules.OPTIONAL:
    try:
        importlib.import_module(_name)
    except Exception as _error:  # a package's module that needs what the sandbox lacks
        sys.modules.pop(_name, None)
        UNIMPORTED[_name] = f"{type(_error).__name__}: {_error}"

#: What opening a file says: there are none, whatever exists on the caller's machine.
NO_FILES = (
    "the sandbox has no files: a wasp job cannot open files (read the file on the caller "
    "and pass its contents to the job)"
)
_open = builtins.open
_os_open = os.open


def _no_files(file, *args, **kwargs):
    if isinstance(file, int):
        return _open(file, *args, **kwargs)  # its own standard streams
    raise FileNotFoundError(errno.ENOENT, NO_FILES, file)


def _no_os_files(path, *args, **kwargs):
    raise FileNotFoundError(errno.ENOENT, NO_FILES, path)


builtins.open = io.open = _no_files
os.open = _no_os_files

#: What separates a failed call's traceback from the line that describes its exception.
MARKER = "\n\x1ewasp-exception "

#: The file name of a ``.py`` file's source in tracebacks.
SCRIPT_NAME = "<wasp job>"

#: Nesting deeper than this cannot cross (the caller's limit too).
MAX_DEPTH = 128

#: The most bundles an instance kept between jobs keeps the modules of.
MAX_KEPT = 16

#: The modules of the bundles this instance rebuilt, most recent last (an instance kept
#: between jobs runs a function again without rebuilding its modules).
_kept = {}

#: ``random``'s functions, bound to its hidden instance, as the module has them.
_RANDOM = {
    name: getattr(random, name)
    for name in dir(random)
    if getattr(getattr(random, name), "__self__", None) is random._inst
}


def _lazy_random(name):
    def draw(*args, **kwargs):
        if name == "seed" and not args and not kwargs:
            # A seed from entropy (componentize-py asks for one in every new instance) is
            # what the first draw takes anyway: until then, no entropy is read, and a job
            # that draws none stays deterministic (its result may be cached).
            return None
        # Seeding (or setting the state) replaces what the first draw would have seeded.
        _seed_random(fresh=name not in ("seed", "setstate"))
        return _RANDOM[name](*args, **kwargs)

    draw.__name__ = draw.__qualname__ = name
    return draw


def _seed_random(fresh):
    """Seeds ``random`` from the sandbox's entropy, the first time a job draws: every job
    gets its own numbers (the interpreter's snapshot holds one state, which every fresh
    instance would otherwise repeat), and a job that draws none reads no entropy."""
    for name, function in _RANDOM.items():
        setattr(random, name, function)
    if fresh:
        _RANDOM["seed"]()


#: The lazy stand-ins of ``random``'s functions, made once (every job installs them).
_LAZY_RANDOM = {name: _lazy_random(name) for name in _RANDOM}


def _unseed_random():
    for name, draw in _LAZY_RANDOM.items():
        setattr(random, name, draw)


_unseed_random()


def _run_call(request):
    bundle, call = request[1], request[2]
    wasp_runner_bundle.begin(request[3] if len(request) > 3 else ())
    modules = _kept.pop(bundle, None)
    if modules is None:
        modules = wasp_runner_bundle.materialize(bundle)
        while len(_kept) >= MAX_KEPT:
            _kept.pop(next(iter(_kept)))
    else:
        sys.modules.update(modules)
    if not wasp_runner_bundle.taken_count():
        # Modules whose globals hold values this job took are not kept: another job's
        # bundle of the same bytes takes other values.
        _kept[bundle] = modules
    function, args, kwargs = pickle.loads(call)
    result = function(*args, **kwargs)
    try:
        return wasp_runner_codec.encode(result)
    except wasp_runner_codec.Uncrossable as error:
        raise TypeError(f"the job's result cannot cross back to the caller: {error}") from None


def _run_script(request):
    source, function, args, modules = request
    linecache.cache[SCRIPT_NAME] = (len(source), None, source.splitlines(True), SCRIPT_NAME)
    namespace = _kept.pop(source, None)
    if namespace is None:
        namespace = {"__name__": "__wasp_job__", "__builtins__": __builtins__}
        for name in modules:
            importlib.import_module(name)
            top = name.partition(".")[0]
            namespace[top] = sys.modules[top]
        exec(compile(source, SCRIPT_NAME, "exec"), namespace)
        while len(_kept) >= MAX_KEPT:
            _kept.pop(next(iter(_kept)))
    _kept[source] = namespace
    result = namespace[function](*args)
    try:
        return msgpack.packb(result, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(
            f"the job's result cannot cross back to the caller ({error}): return "
            "None, bool, int, float, str, bytes, lists, tuples and dicts of them"
        ) from None


def _job_traceback(error, files):
    """The traceback of ``error`` from the job's first frame on (the runner's own frames
    say nothing to the job's author), or all of it if the job's code never ran."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename not in files:
        frames = frames.tb_next
    if frames is None:
        frames = error.__traceback__
    return "".join(traceback.format_exception(type(error), error, frames))


def _failure(error):
    """A failed call's error text: the traceback, then the exception described for the
    caller (which raises an exception of the same type, with the same arguments and
    attributes, where it can): ``MARKER`` and, in base64, the MessagePack array
    ``[module, qualname, builtin base, args, attributes, str, exit status]``, where args and
    attributes are encoded by ``wasp_runner_codec`` (nil if they cannot cross)."""
    text = _job_traceback(error, wasp_runner_bundle.shipped_lines)
    cls = type(error)
    builtin = next(
        (base.__name__ for base in cls.__mro__ if base.__module__ == "builtins"),
        "BaseException",
    )
    status = error.code if isinstance(error, SystemExit) else None
    if status is not None and not isinstance(status, int):
        status = 1
    described = [
        cls.__module__,
        cls.__qualname__,
        builtin,
        _encoded(error.args),
        _encoded(dict(getattr(error, "__dict__", {}))),
        _text(error),
        status,
    ]
    return text + MARKER + base64.b64encode(wasp_runner_codec.encode(described)).decode()


def _encoded(value):
    try:
        return wasp_runner_codec.encode(value)
    except (wasp_runner_codec.Uncrossable, RecursionError, ValueError, TypeError):
        return None


def _text(error):
    try:
        return str(error)
    except BaseException:
        return f"<{type(error).__name__}: str() raised>"


def _bin(data, at):
    """The MessagePack bin at ``at`` in ``data`` and where it ends, or ``None``."""
    tag = data[at]
    if tag == 0xC4:
        start, length = at + 2, data[at + 1]
    elif tag == 0xC5:
        start, length = at + 3, int.from_bytes(data[at + 1 : at + 3], "big")
    elif tag == 0xC6:
        start, length = at + 5, int.from_bytes(data[at + 1 : at + 5], "big")
    else:
        return None
    end = start + length
    return (data[start:end], end) if end <= len(data) else None


def _read_call(args):
    """The usual request, ``[1, bundle, call]``, read directly, or ``None`` if ``args`` is
    anything else: msgpack is pure Python in here, and its unpacker costs a short job more
    than the job (about 12 of a kept instance's 36 us)."""
    try:
        if args[0] != 0x93 or args[1] != 1:
            return None
        bundle = _bin(args, 2)
        call = bundle and _bin(args, bundle[1])
    except IndexError:
        return None
    if not call or call[1] != len(args):
        return None
    return [1, bundle[0], call[0]]


def _read_request(args):
    request = _read_call(args)
    if request is None:
        request = msgpack.unpackb(args, raw=False, strict_map_key=False)
    return request


class WitWorld(wit_world.WitWorld):
    def python(self, args: bytes) -> bytes:
        _unseed_random()
        try:
            request = _read_request(args)
        except BaseException as error:
            raise Err(f"wasp's Python runner could not read the job's arguments: {error}") from None
        if request == [0]:
            # What the caller asks once per runner: which modules exist in here, and which
            # of the packages' did not import when it was built.
            return msgpack.packb([sorted(sys.modules), UNIMPORTED])
        if request and isinstance(request[0], int):
            try:
                return _run_call(request)
            except BaseException as error:  # whatever the job raises goes back, described
                raise Err(_failure(error)) from None
            finally:
                wasp_runner_bundle.begin(())  # an instance kept holds no job's values
        try:
            return _run_script(request)
        except BaseException as error:  # whatever the job raises goes back, as text
            raise Err(_job_traceback(error, {SCRIPT_NAME})) from None
