"""Streaming parser for console training logs (every family in `families.py`).

Column families are parsed a chunk at a time with one `findall` and vectorised float
conversion; line families (fields in any order) walk the lines that carry their anchor.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from companion.errors import InputError
from companion.evidence.families import (
    FAMILIES,
    HF_DICT,
    MEGATRON,
    SEQ_PATTERN,
    SKIP_NAN,
    TOKENS_PER_STEP,
    TQDM_STEP,
    VOCAB_PATTERNS,
    Family,
)
from companion.evidence.kvlog import parse_kv
from companion.evidence.series import Floats, ParsedLog, SeriesBuilder
from companion.evidence.textio import _TEXT_BYTES, Chunk, open_text_chunks

HEADER_CHUNKS = 2
FORMAT_HINT = (
    "pass a supported log (see docs/formats.md): Megatron, NeMo, torchtitan, nanoGPT, llm.c, "
    "modded-nanogpt, HF/axolotl/TRL console, DeepSpeed-Chat, W&B CSV or run folder, "
    "trainer_state.json, trainer_log.jsonl or TensorBoard events."
)


def to_floats(col: tuple[bytes, ...] | list[bytes]) -> tuple[Floats, np.ndarray]:
    """Parse byte strings to float64; returns values and a mask of unparseable entries."""
    arr = np.array(col, dtype=np.bytes_)
    try:
        empty = arr == b""
        if empty.any():
            arr = arr.copy()
            arr[empty] = b"nan"
        return arr.astype(np.float64), np.zeros(len(col), dtype=bool)
    except ValueError:
        out = np.empty(len(col))
        bad = np.zeros(len(col), dtype=bool)
        for i, raw in enumerate(col):
            out[i], bad[i] = safe_float(raw)
        return out, bad


def safe_float(raw: bytes | str) -> tuple[float, bool]:
    """(value, failed): empty is NaN without failure; garbage is NaN with failure."""
    if not raw:
        return math.nan, False
    try:
        return float(raw), False
    except ValueError:
        return math.nan, True


def _line_of(data: bytes, line_base: int, pos: int) -> int:
    """1-based line number of a byte offset in a chunk."""
    return line_base + data.count(b"\n", 0, pos) + 1


def score(family: Family, data: bytes) -> int:
    """How many records of this family a chunk holds (for auto-detection)."""
    if family.line_mode:
        return len(family.regex.findall(data)) if family.anchor and family.anchor in data else 0
    return len(family.regex.findall(data))


def detect_family(data: bytes) -> Family | None:
    """The family with most records in this text (ties go to the earlier, stricter one)."""
    best, best_n = None, 0
    for fam in FAMILIES:
        n = score(fam, data)
        if n > best_n:
            best, best_n = fam, n
    return best


class _TextParser:
    """State carried across chunks of one file."""

    def __init__(self, path: Path, check: Callable[[], None]) -> None:
        self.path = path
        self.check = check
        self.family: Family | None = None
        self.builder = SeriesBuilder()
        self.log = ParsedLog(format="text", files=[path], series=self.builder.build())
        self.lines = 0
        self.hf_index = 0
        self.last_tqdm = math.nan

    def feed(self, chunk: Chunk, index: int) -> None:
        """Parse one chunk."""
        self.check()
        data = chunk.data
        self.lines = chunk.line_base + chunk.nlines + (not data.endswith(b"\n"))
        self._junk_lines(chunk)
        if index < HEADER_CHUNKS:
            self._header(data)
        if self.family is None:
            self.family = detect_family(data)
            if self.family is None:
                return
        if self.family is MEGATRON:
            for kind, n in SKIP_NAN.findall(data):
                if kind == b"nan":
                    self.log.nan_iterations += int(n)
                else:
                    self.log.skipped_iterations += int(n)
        if self.family.line_mode:
            self._lines(chunk, self.family)
        else:
            self._columns(chunk, self.family)

    def _junk_lines(self, chunk: Chunk) -> None:
        """Count lines holding control bytes (binary garbage spliced into the text)."""
        data = chunk.data
        if not data.translate(None, _TEXT_BYTES):
            return
        line = chunk.line_base
        for raw in data.split(b"\n"):
            line += 1
            if raw.translate(None, _TEXT_BYTES):
                self.log.note_unparseable(line)

    def _header(self, data: bytes) -> None:
        """Vocabulary, sequence length and batch tokens printed before training."""
        log = self.log
        if log.vocab is None:
            for pattern, source in VOCAB_PATTERNS:
                if (m := pattern.search(data)) is not None and 0 < int(m.group(1)) < 1 << 31:
                    log.vocab, log.vocab_source = int(m.group(1)), f"log header ({source})"
                    break
        if log.seq_length is None and (m := SEQ_PATTERN.search(data)) is not None:
            log.seq_length = int(m.group(1)) or None
        if log.tokens_per_step is None and (m := TOKENS_PER_STEP.search(data)) is not None:
            log.tokens_per_step = int(m.group(1).replace(b",", b"") or b"0") or None

    def _columns(self, chunk: Chunk, fam: Family) -> None:
        """Vectorised parse of a column family."""
        data, regex = chunk.data, fam.regex
        if fam.split and self._split_columns(chunk, fam):
            return
        anchors = data.count(fam.anchor) if fam.anchor else 0
        matches = regex.findall(data)
        if len(matches) < anchors:
            self._locate_broken(chunk, fam, anchors - len(matches))
        if not matches:
            return
        if self.log.first_line is None and (m := regex.search(data)) is not None:
            self.log.first_line = _line_of(data, chunk.line_base, m.start())
        cols = dict(zip(regex.groupindex, zip(*matches, strict=False), strict=True))
        loss, bad = to_floats(cols["loss"])
        step, bad_step = to_floats(cols["step"])
        bad |= bad_step | ~np.isfinite(step)
        if bad.any():
            self._locate_rows(chunk, fam, np.flatnonzero(bad), self.log.unparseable_lines)
            self.log.unparseable += int(bad.sum())
        keep = ~bad
        if "kind" in cols and fam.eval_kinds:
            is_eval = np.isin(np.array(cols["kind"], dtype=np.bytes_), fam.eval_kinds)
            for s, v in zip(step[keep & is_eval], loss[keep & is_eval], strict=True):
                self.log.eval_points.append((float(s), float(v)))
            keep &= ~is_eval
        nonfinite = keep & ~np.isfinite(loss)
        if nonfinite.any() and len(self.log.nonfinite_lines) < 20:
            self._locate_rows(chunk, fam, np.flatnonzero(nonfinite), self.log.nonfinite_lines)
        extra = {c: to_floats(cols[c])[0][keep] for c in ("lr", "tokens", "samples") if c in cols}
        self.builder.add_block(step=step[keep], loss=loss[keep], **extra)

    def _split_columns(self, chunk: Chunk, fam: Family) -> bool:
        """Fast path: one findall per field; False (nothing consumed) unless all align."""
        cols = {name: pattern.findall(chunk.data) for name, pattern in fam.split}
        n = len(cols["loss"])
        if n == 0 or any(len(c) != n for c in cols.values()) or b"" in cols["loss"]:
            return False
        try:
            arrays = {
                name: np.fromiter(map(float, c), dtype=np.float64, count=n)
                for name, c in cols.items()
            }
        except ValueError:
            return False
        if not np.isfinite(arrays["step"]).all():
            return False
        if self.log.first_line is None and (m := fam.regex.search(chunk.data)) is not None:
            self.log.first_line = _line_of(chunk.data, chunk.line_base, m.start())
        loss = arrays["loss"]
        if not np.isfinite(loss).all() and len(self.log.nonfinite_lines) < 20:
            rows = np.flatnonzero(~np.isfinite(loss))
            self._locate_rows(chunk, fam, rows, self.log.nonfinite_lines)
        if (pos := chunk.data.rfind(b"consumed samples:")) >= 0:
            m2 = re.match(rb"consumed samples:\s*(\d{1,18})", chunk.data[pos : pos + 64])
            if m2 is not None:
                samples = np.full(n, np.nan)
                samples[-1] = float(m2.group(1))
                arrays["samples"] = samples
        self.builder.add_block(**arrays)
        return True

    def _locate_rows(self, chunk: Chunk, fam: Family, rows: np.ndarray, out: list[int]) -> None:
        """Line numbers of the given match indices (only called when something is wrong)."""
        wanted = set(rows[: 20 - len(out)].tolist()) if len(out) < 20 else set()
        if not wanted:
            return
        for i, m in enumerate(fam.regex.finditer(chunk.data)):
            if i in wanted:
                out.append(_line_of(chunk.data, chunk.line_base, m.start()))
            if i >= max(wanted):
                break

    def _locate_broken(self, chunk: Chunk, fam: Family, count: int) -> None:
        """Lines that carry the family's anchor but do not parse."""
        assert fam.anchor is not None
        found = 0
        line = chunk.line_base
        for raw in chunk.data.split(b"\n"):
            line += 1
            if fam.anchor in raw and fam.regex.search(raw) is None:
                self.log.note_unparseable(line)
                found += 1
        if found < count:  # several anchors on one line: count the rest without line numbers
            self.log.unparseable += count - found

    def _lines(self, chunk: Chunk, fam: Family) -> None:
        """Line-mode parse: find each anchor, then its fields within that line."""
        assert fam.anchor is not None
        data = chunk.data
        tqdm = (
            [(m.start(), float(m.group(1))) for m in TQDM_STEP.finditer(data)]
            if fam is HF_DICT
            else []
        )
        tq_pos = [p for p, _ in tqdm]
        pos, line, counted_to = 0, chunk.line_base + 1, 0
        while (hit := data.find(fam.anchor, pos)) >= 0:
            # a record ends at \n or at tqdm's \r (several records can share one line)
            start = max(data.rfind(b"\n", 0, hit), data.rfind(b"\r", 0, hit)) + 1
            end = data.find(b"\n", hit)
            end = len(data) if end < 0 else end
            if (cr := data.find(b"\r", hit, end)) >= 0:
                end = cr
            if fam is HF_DICT:
                start = max(start, data.rfind(b"{", start, hit))
                cut = data.find(b"}", hit, end)
                end = end if cut < 0 else cut + 1
            line += data.count(b"\n", counted_to, hit)
            counted_to = hit
            pos = max(end, hit + len(fam.anchor))
            self._one_line(data[start:end], fam, line, tqdm, tq_pos, start)

    def _one_line(
        self,
        text: bytes,
        fam: Family,
        line: int,
        tqdm: list[tuple[int, float]],
        tq_pos: list[int],
        offset: int,
    ) -> None:
        """Parse one anchored line of a line family."""
        m = fam.regex.search(text)
        loss, bad = safe_float(m.group("loss")) if m else (math.nan, True)
        if bad:
            self.log.note_unparseable(line)
            return
        got = {
            name: float(f.group(1))
            for name, f in ((n, p.search(text)) for n, p in fam.fields)
            if f is not None and not safe_float(f.group(1))[1]
        }
        self.hf_index += 1
        if fam is HF_DICT:
            i = bisect.bisect_left(tq_pos, offset) - 1
            if i >= 0:
                self.last_tqdm = tqdm[i][1]
            step = self.last_tqdm if not math.isnan(self.last_tqdm) else float(self.hf_index)
        else:
            step = got.get("step", got.get("iter", float(self.hf_index)))
        if self.log.first_line is None:
            self.log.first_line = line
        if not math.isfinite(loss) and len(self.log.nonfinite_lines) < 20:
            self.log.nonfinite_lines.append(line)
        self.builder.add(
            step,
            loss,
            got.get("lr", math.nan),
            got.get("tokens", math.nan),
            got.get("samples", math.nan),
        )

    def finish(self) -> ParsedLog:
        """Validate and return the parsed log."""
        log = self.log
        fam = self.family
        log.records = self.lines
        if fam is None:
            raise InputError(
                f"{self.path}: no training-loss records recognised in {self.lines} lines.",
                hint=FORMAT_HINT,
            )
        log.format, log.metric, log.window_kind = fam.name, fam.metric, fam.window_kind
        log.series = self.builder.build()
        if fam is HF_DICT and math.isnan(self.last_tqdm):
            log.notes.append(
                "HF console dicts carry no step and no progress bar was found: "
                "steps are record numbers."
            )
        if fam.eval_kinds:
            log.eval_metric = fam.eval_kinds[0].decode()
        if len(log.series) == 0 and log.eval_points:
            self._eval_as_series()
        if len(log.series) == 0:
            raise InputError(
                f"{self.path}: looks like a {fam.label} but no loss value parsed "
                f"({log.unparseable} unparseable lines).",
                hint="check the file is not truncated or corrupted.",
            )
        return log

    def _eval_as_series(self) -> None:
        """Records with only evaluation losses (newer modded-nanogpt): use those."""
        log = self.log
        steps = np.array([s for s, _ in log.eval_points])
        vals = np.array([v for _, v in log.eval_points])
        b = SeriesBuilder()
        b.add_block(step=steps, loss=vals)
        log.series = b.build()
        log.metric, log.window_kind = log.eval_metric or "eval loss", "eval"
        log.notes.append("The log holds evaluation losses only; they are used as the series.")


def parse_text(
    path: Path, check: Callable[[], None] = lambda: None, chunks: Iterable[Chunk] | None = None
) -> ParsedLog:
    """Parse a console training log of any known family, streaming (or from given chunks)."""
    given = None if chunks is None else list(chunks)
    parser = _TextParser(path, check)
    for i, chunk in enumerate(open_text_chunks(path) if given is None else given):
        parser.feed(chunk, i)
    if parser.family is None or (parser.builder.count == 0 and not parser.log.eval_points):
        # No framework family claimed the file: the families are hints, not gates.
        return parse_kv(
            path, open_text_chunks(path) if given is None else given, check, FORMAT_HINT
        )
    return parser.finish()
