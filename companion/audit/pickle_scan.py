"""A bounded walk over a pickle's opcodes before anything unpickles it.

`torchbin` unpickles `data.pkl` with Python's C unpickler, whose `find_class` hook stops
every global outside the allow-list. The hook cannot see the other opcodes, and a few bytes
of them can cost gigabytes: a memo index of 2^28 (`LONG_BINPUT`) makes the unpickler zero a
4 GB memo table, and 60 MB of one-byte `EMPTY_LIST`s builds 60 million lists. This walk runs
first, over the bytes alone. It allows only the opcodes that `torch.save` writes for state
dicts and training checkpoints (protocols 2 to 4), at most MAX_OPS of them, and memo indices
below the count of opcodes read so far (a pickler numbers its memo entries in order).
"""

from __future__ import annotations

from companion.errors import InputError

MAX_OPS = 1 << 20  # torch.save writes about 30 opcodes per tensor: 35,000 tensors
_MEMO = {ord("q"): 1, ord("r"): 4, ord("h"): 1, ord("j"): 4}  # BINPUT, LONG_BINPUT, *GET
_FIXED = {
    **_MEMO,
    0x80: 1, 0x95: 8,  # PROTO, FRAME
    ord("J"): 4, ord("K"): 1, ord("M"): 2, ord("G"): 8,  # BININT, BININT1, BININT2, BINFLOAT
    **dict.fromkeys(b"(}])t\x85\x86\x87suaeN\x88\x89\x94RbQ\x93", 0),
}  # fmt: skip
# MARK, EMPTY_DICT/LIST/TUPLE, TUPLE/1/2/3, SETITEM(S), APPEND(S), NONE, NEWTRUE, NEWFALSE,
# MEMOIZE, REDUCE, BUILD, BINPERSID, STACK_GLOBAL: no argument bytes
_COUNTED = {
    0x8A: 1, ord("X"): 4, 0x8C: 1, ord("C"): 1, ord("B"): 4, ord("U"): 1, ord("T"): 4,
}  # fmt: skip
# LONG1, BINUNICODE, SHORT_BINUNICODE, SHORT_BINBYTES, BINBYTES, SHORT_BINSTRING, BINSTRING:
# a little-endian length of that many bytes, then the data
_STOP, _GLOBAL = ord("."), ord("c")
_HINT = "the file may be malicious or corrupt; use a safetensors export from a trusted source."


def _refuse(source: str, what: str) -> InputError:
    """The error for a pickle this walk does not allow."""
    return InputError(f"{source}: data.pkl {what}; it was refused before unpickling.", hint=_HINT)


def _name(code: int) -> str:
    """An opcode's name, as pickletools knows it."""
    import pickletools

    return next((o.name for o in pickletools.opcodes if ord(o.code) == code), f"0x{code:02x}")


def _global_end(data: bytes, pos: int, source: str) -> int:
    """Past GLOBAL's argument, "module\\nname\\n" (each line under 512 bytes)."""
    first = data.find(b"\n", pos, pos + 512)
    second = data.find(b"\n", first + 1, first + 513) if first >= 0 else -1
    if second < 0:
        raise _refuse(source, "names a global without two short lines")
    return second + 1


def check_pickle(data: bytes, source: str) -> None:
    """Refuse a pickle with an opcode outside the allow-list, a memo index beyond its place
    or more than MAX_OPS opcodes; return when its STOP is reached within `data`."""
    pos, ops, end = 0, 0, len(data)
    while pos < end:
        code, ops = data[pos], ops + 1
        pos += 1
        if ops > MAX_OPS:
            raise _refuse(source, f"holds more than {MAX_OPS:,} pickle operations")
        size = _FIXED.get(code)
        if size is not None:
            if code in _MEMO and int.from_bytes(data[pos : pos + size], "little") >= ops:
                raise _refuse(source, f"uses a memo index beyond its {ops:,} operations")
            pos += size
        elif (prefix := _COUNTED.get(code)) is not None:
            pos += prefix + int.from_bytes(data[pos : pos + prefix], "little")
        elif code == _GLOBAL:
            pos = _global_end(data, pos, source)
        elif code == _STOP:
            return
        else:
            what = f"uses the pickle opcode {_name(code)}, which torch.save does not write"
            raise _refuse(source, what)
    raise _refuse(source, "ends before its STOP opcode")
