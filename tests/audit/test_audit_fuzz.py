"""Hypothesis fuzzing of the safetensors header parser: every case is a clear error or valid."""

from __future__ import annotations

import json
import struct
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.audit.safetensors import DTYPES, parse_header
from companion.errors import InputError

_dtype = st.sampled_from([*DTYPES, "F4", "", "bf16", "I16"]) | st.text(max_size=6)
_int = st.one_of(
    st.integers(min_value=-3, max_value=64),
    st.sampled_from([2**31, 2**32, 2**40, 2**63, 2**64 + 1]),
)
_entry = st.fixed_dictionaries(
    {
        "dtype": _dtype,
        "shape": st.lists(_int, max_size=4) | st.integers() | st.none(),
        "data_offsets": st.lists(_int, min_size=0, max_size=3) | st.text(max_size=3),
    },
    optional={"extra": st.integers()},
)
_header = st.dictionaries(
    st.text(max_size=6), _entry | st.integers() | st.text(max_size=4), max_size=5
)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """A length prefix (often lying) + a header (structured or garbage) + data bytes."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=64))
    header: Any = draw(_header)
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(), max_size=2)
        )
    blob = json.dumps(header).encode()
    if kind == 1:
        blob = draw(st.binary(max_size=48)) + blob[: draw(st.integers(0, len(blob)))]
    length = draw(
        st.one_of(
            st.just(len(blob)),
            st.integers(0, 2**64 - 1),
            st.sampled_from([2**63, len(blob) + 1, len(blob) - 1]),
        )
    )
    data = b"\0" * draw(st.integers(0, 256))
    return struct.pack("<Q", length % 2**64) + blob + data


@settings(suppress_health_check=list(HealthCheck), database=None)
@given(files())
def _fuzz_case(data: bytes) -> None:
    """One case: a clear InputError, or a header whose invariants hold."""
    tracemalloc.start()
    try:
        header = parse_header(data, len(data), "fuzz")
    except InputError as exc:
        assert exc.message.startswith("fuzz: ") and exc.hint
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 * 1024 * 1024, peak  # nothing sized by the header's claims
    cursor = 0
    for begin, end in sorted((t.begin, t.end) for t in header.tensors.values()):
        assert begin == cursor
        cursor = end
    assert cursor == header.data_len == len(data) - header.data_start
    for t in header.tensors.values():
        assert t.numel * t.np_dtype.itemsize == t.end - t.begin


def test_header_parser_fuzz() -> None:
    """Each case a clear error (or a valid header), no big allocation (volume: `make fuzz`)."""
    _fuzz_case()
