"""Inside the sandbox: a job's result (and its exception's arguments) as MessagePack, with
extension types for what MessagePack lacks, which the caller decodes into exactly those
types and nothing else (``python/src/values.rs``): a result is untrusted data, never
unpickled on the caller.

Extension types (the payload of each is MessagePack, but for INT, COMPLEX and BYTEARRAY):

==  ===========  ==========================================================================
1   TUPLE        array of the items
2   SET          array of the items
3   FROZENSET    array of the items
4   INT          an int beyond 64 bits: big-endian two's complement bytes
5   COMPLEX      two big-endian float64: real, imaginary
6   BYTEARRAY    the bytes
7   FRACTION     [numerator, denominator]
8   DECIMAL      str(value)
9   DATETIME     [0, y, m, d] date; [1, h, mi, s, us, fold, tz] time;
                 [2, y, m, d, h, mi, s, us, fold, tz] datetime; [3, days, s, us] timedelta;
                 tz is nil or [offset days, s, us, name or nil] (datetime.timezone only)
10  INSTANCE     [module, qualname, kind, state] of a class that travelled with the job:
                 kind 0 dataclass (state: map of its fields), 1 namedtuple (array),
                 2 enum ([name, value]: a combination of flags has no name), 3 other
                 (map of its attributes)
11  COLLECTION   [0, map] OrderedDict; [1, map] Counter; [2, array, maxlen] deque;
                 [3, factory, map] defaultdict (factory: the name of a built-in type)
==  ===========  ==========================================================================
"""

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import struct

TUPLE, SET, FROZENSET, INT, COMPLEX, BYTEARRAY = 1, 2, 3, 4, 5, 6
FRACTION, DECIMAL, DATETIME, INSTANCE, COLLECTION = 7, 8, 9, 10, 11

#: Nesting deeper than this cannot cross (the caller's limit too).
MAX_DEPTH = 128

#: The built-in types a defaultdict's factory may be.
_FACTORIES = {
    kind.__name__: kind for kind in (list, dict, set, int, float, str, tuple, bytes, frozenset)
}


class Uncrossable(TypeError):
    """A value that cannot cross back to the caller."""


def encode(value):
    """``value`` as MessagePack bytes."""
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _pack(value, out, depth):
    if depth > MAX_DEPTH:
        raise Uncrossable(f"it nests deeper than {MAX_DEPTH}")
    packer = _PACKERS.get(type(value))
    if packer is None:
        packer = _other
    packer(value, out, depth)


def _none(value, out, depth):
    out.append(0xC0)


def _bool(value, out, depth):
    out.append(0xC3 if value else 0xC2)


def _int(value, out, depth):
    if 0 <= value < 0x80:
        out.append(value)
    elif -0x20 <= value < 0:
        out.append(value & 0xFF)
    elif -(1 << 63) <= value < (1 << 63):
        out += b"\xd3" + struct.pack(">q", value)
    elif 0 <= value < (1 << 64):
        out += b"\xcf" + struct.pack(">Q", value)
    else:
        _ext(INT, _big(value), out)


def _big(value):
    length = (value.bit_length() + 8) // 8
    return value.to_bytes(length, "big", signed=True)


def _float(value, out, depth):
    out += b"\xcb" + struct.pack(">d", value)


def _str(value, out, depth):
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise Uncrossable("it holds a str that is not valid Unicode (a lone surrogate)") from None
    size = len(data)
    if size < 32:
        out.append(0xA0 | size)
    elif size < 0x100:
        out += b"\xd9" + bytes((size,))
    elif size < 0x10000:
        out += b"\xda" + struct.pack(">H", size)
    else:
        out += b"\xdb" + struct.pack(">I", size)
    out += data


def _bytes(value, out, depth):
    size = len(value)
    if size < 0x100:
        out += b"\xc4" + bytes((size,))
    elif size < 0x10000:
        out += b"\xc5" + struct.pack(">H", size)
    else:
        out += b"\xc6" + struct.pack(">I", size)
    out += value


def _array_header(size, out):
    if size < 16:
        out.append(0x90 | size)
    elif size < 0x10000:
        out += b"\xdc" + struct.pack(">H", size)
    else:
        out += b"\xdd" + struct.pack(">I", size)


def _map_header(size, out):
    if size < 16:
        out.append(0x80 | size)
    elif size < 0x10000:
        out += b"\xde" + struct.pack(">H", size)
    else:
        out += b"\xdf" + struct.pack(">I", size)


def _list(value, out, depth):
    _array_header(len(value), out)
    for item in value:
        _pack(item, out, depth + 1)


def _dict(value, out, depth):
    _map_header(len(value), out)
    for key, item in value.items():
        _pack(key, out, depth + 1)
        _pack(item, out, depth + 1)


def _ext(code, payload, out):
    size = len(payload)
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(size)
    if fixed is not None:
        out.append(fixed)
    elif size < 0x100:
        out += b"\xc7" + bytes((size,))
    elif size < 0x10000:
        out += b"\xc8" + struct.pack(">H", size)
    else:
        out += b"\xc9" + struct.pack(">I", size)
    out.append(code)
    out += payload


def _inner(value, depth):
    out = bytearray()
    _pack(value, out, depth + 1)
    return out


def _items(code):
    def pack(value, out, depth):
        inner = bytearray()
        _seq(value, inner, depth)
        _ext(code, inner, out)

    return pack


def _seq(value, out, depth):
    _array_header(len(value), out)
    for item in value:
        _pack(item, out, depth + 1)


def _complex(value, out, depth):
    _ext(COMPLEX, struct.pack(">dd", value.real, value.imag), out)


def _bytearray(value, out, depth):
    _ext(BYTEARRAY, bytes(value), out)


def _fraction(value, out, depth):
    _ext(FRACTION, _inner([value.numerator, value.denominator], depth), out)


def _decimal(value, out, depth):
    _ext(DECIMAL, _inner(str(value), depth), out)


def _tz(tzinfo):
    if tzinfo is None:
        return None
    if type(tzinfo) is not datetime.timezone:
        raise Uncrossable(
            f"it holds a time zone of type {type(tzinfo).__name__}: only datetime.timezone "
            "(a fixed offset) crosses; convert to UTC first"
        )
    offset = tzinfo.utcoffset(None)
    name = tzinfo.tzname(None)
    default = datetime.timezone(offset).tzname(None)
    return [offset.days, offset.seconds, offset.microseconds, None if name == default else name]


def _date(value, out, depth):
    _ext(DATETIME, _inner([0, value.year, value.month, value.day], depth), out)


def _time(value, out, depth):
    fields = [1, value.hour, value.minute, value.second, value.microsecond, value.fold]
    _ext(DATETIME, _inner([*fields, _tz(value.tzinfo)], depth), out)


def _datetime(value, out, depth):
    fields = [2, value.year, value.month, value.day, value.hour, value.minute, value.second]
    fields += [value.microsecond, value.fold, _tz(value.tzinfo)]
    _ext(DATETIME, _inner(fields, depth), out)


def _timedelta(value, out, depth):
    _ext(DATETIME, _inner([3, value.days, value.seconds, value.microseconds], depth), out)


def _ordered_dict(value, out, depth):
    _ext(COLLECTION, _inner([0, dict(value)], depth), out)


def _counter(value, out, depth):
    _ext(COLLECTION, _inner([1, dict(value)], depth), out)


def _deque(value, out, depth):
    _ext(COLLECTION, _inner([2, list(value), value.maxlen], depth), out)


def _defaultdict(value, out, depth):
    factory = value.default_factory
    name = getattr(factory, "__name__", None)
    if factory is not None and _FACTORIES.get(name) is not factory:
        raise Uncrossable(
            "it holds a defaultdict whose default_factory is not a built-in type (list, dict, "
            "set, int, ...): convert it to a dict first"
        )
    _ext(COLLECTION, _inner([3, name, dict(value)], depth), out)


def _other(value, out, depth):
    """Instances of the caller's classes: enum members, namedtuples, dataclasses, and
    plain objects."""
    cls = type(value)
    module, qualname = cls.__module__, cls.__qualname__
    if isinstance(value, enum.Enum):
        kind, state = 2, [value.name, value.value]
    elif isinstance(value, tuple) and hasattr(cls, "_fields"):
        kind, state = 1, list(value)
    elif dataclasses.is_dataclass(value):
        kind = 0
        state = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    elif _plain(cls):
        kind, state = 3, _attributes(value)
    else:
        raise Uncrossable(
            f"it holds a {module}.{qualname}, which cannot cross back: return None, bool, "
            "int, float, complex, str, bytes, containers of them, or instances of your own "
            "dataclasses, namedtuples, enums and classes (see python/README.md)"
        )
    if module in ("builtins", "__wasp_job__") or "<locals>" in qualname:
        raise Uncrossable(
            f"it holds an instance of {qualname}, a class defined inside a function: define "
            "it at module level"
        )
    _ext(INSTANCE, _inner([module, qualname, kind, state], depth), out)


def _plain(cls):
    """Whether instances of ``cls`` are plain objects: their state is their attributes."""
    for base in cls.__mro__[1:]:
        if base is object:
            return True
        if (
            base.__module__ == "builtins"
            and base is not BaseException
            and not issubclass(base, BaseException)
        ):
            return False
    return True


def _attributes(value):
    state = dict(getattr(value, "__dict__", {}))
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                state[name] = getattr(value, name)
    return state


_PACKERS = {
    type(None): _none,
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
    bytes: _bytes,
    list: _list,
    dict: _dict,
    tuple: _items(TUPLE),
    set: _items(SET),
    frozenset: _items(FROZENSET),
    complex: _complex,
    bytearray: _bytearray,
    fractions.Fraction: _fraction,
    decimal.Decimal: _decimal,
    datetime.date: _date,
    datetime.time: _time,
    datetime.datetime: _datetime,
    datetime.timedelta: _timedelta,
    collections.OrderedDict: _ordered_dict,
    collections.Counter: _counter,
    collections.deque: _deque,
    collections.defaultdict: _defaultdict,
}
