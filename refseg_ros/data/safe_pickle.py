"""Pickles of plain data (the REFER ``refs`` files) read without running anything from the file and
without letting the file choose how much memory is allocated.

Three layers, each for one way a hostile or broken file could hurt:

* :func:`check_opcodes` walks the opcode stream first (nothing is built). Every length field must
  fit in the file, and every memo slot must be the next free one or an earlier one: the C
  unpickler sizes its memo table from the largest slot number it is given, so a few bytes could
  otherwise ask for gigabytes.
* :class:`RestrictedUnpickler` resolves globals from a fixed table of plain constructors (no
  import, no attribute lookup). ``bytes``/``bytearray`` refuse a size argument; numpy integer,
  float and bool scalars (refs regenerated with numpy) become Python numbers through stand-ins
  that only parse bytes; everything else is refused with :class:`UnsafePickleError`.
* Python 2 byte strings are decoded as UTF-8 while unpickling; the rare ones that are not UTF-8
  are read as Latin-1 afterwards, with one warning per file.
"""
from __future__ import annotations

import codecs
import collections
import io
import pickle
import pickletools
import struct
import sys
import threading
import warnings

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "check_opcodes", "load_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something a data file never needs (a global that is not a plain
    container, string or number, a size-driven allocation, a memo slot far past the data)."""


# --- opcode walk --------------------------------------------------------------------------------
# What follows each opcode, from pickletools' own table: 1..8 = that many bytes, or one of these
# kinds (the loop below tests them in order of how often refs files use them).
_NONE, _LEN1, _BINPUT, _LONG_BINPUT, _LEN4, _LEN4_SIGNED, _LINE, _PUT, _TWO_LINES, _MEMOIZE, \
    _STOP, _LEN8, _FRAME, _UNKNOWN = 0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 99
_KIND = [_UNKNOWN] * 256
for _op in pickletools.opcodes:
    _n = 0 if _op.arg is None else _op.arg.n
    _KIND[ord(_op.code)] = _n if _n >= 0 else {
        pickletools.UP_TO_NEWLINE: _LINE, pickletools.TAKEN_FROM_ARGUMENT1: _LEN1,
        pickletools.TAKEN_FROM_ARGUMENT4: _LEN4_SIGNED, pickletools.TAKEN_FROM_ARGUMENT4U: _LEN4,
        pickletools.TAKEN_FROM_ARGUMENT8U: _LEN8}[_n]
for _code, _kind in (("q", _BINPUT), ("r", _LONG_BINPUT), ("p", _PUT), ("c", _TWO_LINES),
                     ("i", _TWO_LINES), ("\x94", _MEMOIZE), (".", _STOP), ("\x95", _FRAME)):
    _KIND[ord(_code)] = _kind


def check_opcodes(data: bytes, source: str = "<pickle>") -> None:
    """Walk ``data``'s opcodes without building anything.

    Raises :class:`UnsafePickleError` for a memo slot beyond the objects stored so far, and
    :class:`pickle.UnpicklingError` for an unknown opcode, a length past the end of the file or a
    missing end (a damaged or truncated file).
    """
    i, n, stored = 0, len(data), 0  # stored: memo writes so far, a bound on the slots in use
    kinds, find, unpack_from = _KIND, data.find, struct.unpack_from

    def refuse(what: str, unsafe: bool = False):
        if unsafe:  # the one thing here that is a way to attack, not just a broken file
            raise UnsafePickleError(f"{source}: {what} at byte {i}: this would size the memo table "
                                    "from a number in the file; refused")
        raise pickle.UnpicklingError(f"{source}: {what} at byte {i}; the file is damaged, "
                                     "truncated or not a pickle")

    try:
        while i < n:
            kind = kinds[data[i]]
            i += 1
            if kind == _NONE:
                continue
            if kind == _LEN1:
                i += 1 + data[i]
            elif kind == _BINPUT:  # one-byte slot: the table stays small whatever it says
                stored += 1
                i += 1
            elif kind <= 8:
                i += kind
            elif kind == _LONG_BINPUT:
                if unpack_from("<I", data, i)[0] > stored:
                    refuse(f"memo slot {unpack_from('<I', data, i)[0]} after {stored} stored "
                           "objects", unsafe=True)
                stored += 1
                i += 4
            elif kind == _LEN4:
                i += 4 + unpack_from("<I", data, i)[0]
            elif kind == _LEN4_SIGNED:
                size = unpack_from("<i", data, i)[0]
                if size < 0:
                    refuse(f"negative length {size}")
                i += 4 + size
            elif kind == _LINE or kind == _PUT or kind == _TWO_LINES:
                end = find(b"\n", i)
                if kind == _TWO_LINES and end >= 0:
                    end = find(b"\n", end + 1)
                if end < 0:
                    refuse("unterminated line")
                if kind == _PUT:
                    slot = int(data[i:end])
                    if not 0 <= slot <= stored:
                        refuse(f"memo slot {slot} after {stored} stored objects", unsafe=True)
                    stored += 1
                i = end + 1
            elif kind == _MEMOIZE:
                stored += 1
            elif kind == _STOP:
                return
            elif kind == _LEN8:
                i += 8 + unpack_from("<Q", data, i)[0]
            elif kind == _FRAME:
                i += 8
            else:
                refuse(f"unknown opcode 0x{data[i - 1]:02x}")
    except (IndexError, struct.error, ValueError):
        refuse("truncated or malformed argument")
    refuse("length past the end of the file" if i > n else "no STOP opcode")


# --- safe stand-ins for the few globals plain data needs -----------------------------------------
def _no_size(kind):
    def build(*args):
        if args and isinstance(args[0], int):
            raise UnsafePickleError(f"{kind.__name__}(<size>) would allocate memory chosen by the "
                                    "file; refused")
        return kind(*args)
    build.__name__ = kind.__name__
    return build


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes at protocols 0-2 as _codecs.encode(<latin-1 text>, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not how "
                                "pickle stores bytes; refused")
    return text.encode("latin-1")


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class _NumpyDType:
    """Stands in for ``numpy.dtype`` while a scalar is rebuilt; holds only kind, size and order."""

    KINDS = {f"{k}{s}": (k, s) for k, sizes in (("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)),
                                                  ("f", (2, 4, 8)), ("b", (1,))) for s in sizes}

    def __init__(self, name, align=False, copy=False):
        name = _text(name)
        if name not in self.KINDS:
            raise UnsafePickleError(f"numpy dtype {name!r}: only integer, float and bool scalars are "
                                    "read from data files")
        self.kind, self.size = self.KINDS[name]
        self.order = "<"

    def __setstate__(self, state):
        order = _text(state[1]) if isinstance(state, tuple) and len(state) > 1 else "<"
        self.order = {"=": "<" if sys.byteorder == "little" else ">"}.get(order, order)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, (bytes, str)):
        raise UnsafePickleError("numpy scalar without a plain dtype and bytes; refused")
    raw = _original_bytes(data) if isinstance(data, str) else data
    if len(raw) != dtype.size:
        raise UnsafePickleError(f"numpy scalar of {len(raw)} bytes for a {dtype.size}-byte dtype")
    if dtype.kind == "b":
        return bool(raw[0])
    if dtype.kind == "f":
        code = {2: "e", 4: "f", 8: "d"}[dtype.size]
        return float(struct.unpack((">" if dtype.order == ">" else "<") + code, raw)[0])
    return int.from_bytes(raw, "big" if dtype.order == ">" else "little",
                          signed=dtype.kind == "i")


def _refuse_array(*args):
    raise UnsafePickleError("numpy arrays are not read from data files (convert them with "
                            ".tolist() when writing the file)")


_PLAIN = {"dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
          "str": str, "unicode": str, "int": int, "long": int, "float": float, "complex": complex,
          "bool": bool, "bytes": _no_size(bytes), "bytearray": _no_size(bytearray)}
_GLOBALS = {**{(module, name): f for module in ("builtins", "__builtin__")
               for name, f in _PLAIN.items()},
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("_codecs", "encode"): _codecs_encode,
            ("numpy", "dtype"): _NumpyDType,
            **{(module, name): f for module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name, f in (("scalar", _numpy_scalar), ("_reconstruct", _refuse_array))},
            ("numpy", "ndarray"): _refuse_array}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals come from a fixed table of plain constructors and safe stand-ins.

    Python 2 pickles name the builtins module ``__builtin__``; both spellings are accepted.
    """

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str):
        found = _GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"refusing to unpickle global '{module}.{name}' in {self.source}: data files hold "
                "only containers, strings and numbers; this file may be malicious or not a data "
                "file")
        return found


# --- Python 2 strings ---------------------------------------------------------------------------
# Python 2 ``str`` values are bytes. They are decoded as UTF-8 while unpickling (at C speed); bytes
# that are not UTF-8 are kept as escape characters by this handler, which also counts them, so the
# structure is walked again only when a file really holds such strings (rare), to read those as
# Latin-1. The escapes also give numpy scalars their exact bytes back.
_ESCAPES = threading.local()


def _escape_and_count(exc: UnicodeError):
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _ESCAPES.count = getattr(_ESCAPES, "count", 0) + 1
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("refseg-py2-escape", _escape_and_count)


def _original_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Latin1Fallback:
    """Re-reads escaped strings as Latin-1 through a whole structure, each shared container once."""

    MAX_DEPTH = 200  # far deeper than any data file; keeps a crafted nesting from recursing away

    def __init__(self):
        self.changed: list[str] = []
        self.done: dict[int, object] = {}

    def __call__(self, obj, depth: int = 0):
        if isinstance(obj, str):
            try:
                obj.encode("utf-8")
                return obj
            except UnicodeEncodeError:
                try:
                    text = _original_bytes(obj).decode("latin-1")
                except UnicodeEncodeError:  # surrogates of another origin: not ours to change
                    return obj
                self.changed.append(text)
                return text
        if not isinstance(obj, (list, dict, tuple, set, frozenset)):
            return obj
        if id(obj) in self.done:
            return self.done[id(obj)]
        if depth > self.MAX_DEPTH:
            raise UnsafePickleError(f"containers nested more than {self.MAX_DEPTH} deep")
        if isinstance(obj, list):
            self.done[id(obj)] = obj  # in place: references to it stay shared
            obj[:] = [self(v, depth + 1) for v in obj]
            return obj
        if isinstance(obj, dict):
            out = type(obj)()
            self.done[id(obj)] = out
            for k, v in obj.items():
                out[self(k, depth + 1)] = self(v, depth + 1)
        else:
            out = type(obj)(self(v, depth + 1) for v in obj)
        self.done[id(obj)] = out
        return out


def load_pickle(data: bytes, source: str = "<pickle>"):
    """The object in ``data``, read by :class:`RestrictedUnpickler` after :func:`check_opcodes`.

    Python 2 byte strings come back as text: UTF-8, else Latin-1 (with one warning per file).
    Raises :class:`UnsafePickleError` (refused) or :class:`pickle.UnpicklingError` (damaged),
    both naming ``source``.
    """
    check_opcodes(data, source)
    _ESCAPES.count = 0
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source=source, encoding="utf-8",
                                  errors="refseg-py2-escape").load()
    except UnsafePickleError as exc:
        if source in str(exc):
            raise
        raise UnsafePickleError(f"{source}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError, MemoryError, RecursionError) as exc:
        raise pickle.UnpicklingError(f"{source}: cannot read the pickle ({type(exc).__name__}: "
                                     f"{exc})") from None
    if not _ESCAPES.count:
        return obj
    fallback = _Latin1Fallback()
    obj = fallback(obj)
    if fallback.changed:
        warnings.warn(f"{source}: {len(fallback.changed)} Python 2 string(s) are not UTF-8 and "
                      f"were read as Latin-1 (first: {fallback.changed[0]!r})", UnicodeWarning,
                      stacklevel=2)
    return obj
