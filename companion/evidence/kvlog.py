"""Streaming reader for text logs no framework family claims, through the generic grammar.

Each line is a record of key-value pairs (see `kvgrammar`); tables with a header row are read
by column. Lines used and skipped are counted with their first line numbers, so a person can
check the parse; the line that set the first loss is remembered for the editor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from companion.errors import InputError
from companion.evidence.families import SEQ_PATTERN, TOKENS_PER_STEP, VOCAB_PATTERNS
from companion.evidence.kvfast import Template, columns, template
from companion.evidence.kvgrammar import (
    EPOCH_CONTEXT,
    LOSS_WORD,
    MEAN_KEYS,
    VALID_LINE,
    parse_line,
    table_header,
    table_row,
)
from companion.evidence.series import ParsedLog, SeriesBuilder
from companion.evidence.textio import Chunk

MAX_REFS = 20
MAX_TEMPLATES = 8  # shapes tried before the line-by-line path is kept
MISSES = 3
LN2 = math.log(2)
MAX_GRAD_NORMS = 4096
HEADER_BYTES = 8 << 20
KV_HINT = "no line carries a loss as `key value` (step 0, loss: 9.87 / 0 train 9.91 / ppl: 12.3)"


def _ref(refs: list[int], line: int) -> None:
    """Remember the first few line numbers."""
    if len(refs) < MAX_REFS:
        refs.append(line)


class KvParser:
    """State carried across the chunks of one file."""

    def __init__(self, path: Path, check: Callable[[], None], hint: str = "") -> None:
        self.path = path
        self.hint = f"{KV_HINT}; {hint}" if hint else KV_HINT
        self.check = check
        self.builder = SeriesBuilder()
        self.log = ParsedLog(format="text-kv", files=[path], series=self.builder.build())
        self.lines = 0
        self.index = 0
        self.context_step = math.nan
        self.table: list[str | None] | None = None
        self.loss_key = ""
        self.ppl_points: list[tuple[float, float]] = []
        self.header_seen = 0
        self.first_eval_line: int | None = None
        self.bits: bool | None = None  # loss printed in base 2 (fairseq): ppl = 2^loss
        self.last = b""  # the last record line (a template candidate)
        self.fast: FastScan | None = None
        self.templates = MAX_TEMPLATES

    def feed(self, chunk: Chunk) -> None:
        """Parse one chunk of whole lines."""
        self.check()
        if self.header_seen < HEADER_BYTES:
            self._header(chunk)
        data, line, pos = chunk.data, chunk.line_base, 0
        while pos < len(data):
            if self.fast is not None:
                pos, line = self.fast.scan(data, pos, line)
                if pos >= len(data):
                    break
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            line += 1
            raw = data[pos:end].rstrip(b"\r")
            if raw.strip():
                self._line(raw, line)
                self._maybe_fast(raw)
            pos = end + 1
        self.lines = max(self.lines, line)

    def _maybe_fast(self, raw: bytes) -> None:
        """After the first records, try the last record's line as the template of the rest."""
        if self.fast is not None or self.templates <= 0 or self.table is not None:
            return
        if self.log.used >= MAX_REFS and self.log.first_line is not None and self.last == raw:
            self.templates -= 1
            tpl = template(raw)
            self.fast = None if tpl is None else FastScan(tpl, self)

    def _header(self, chunk: Chunk) -> None:
        """V and sequence length from a hyperparameter dump, with the line they were on."""
        log, data = self.log, chunk.data
        self.header_seen += len(data)
        if log.vocab is None:
            for pattern, source in VOCAB_PATTERNS:
                m = pattern.search(data)
                if m is not None and 1 < int(m.group(1)) < 1 << 31:
                    line = chunk.line_base + data.count(b"\n", 0, m.start()) + 1
                    log.vocab = int(m.group(1))
                    log.vocab_source = f"the log's own hyperparameters ({source}, line {line})"
                    break
        if log.seq_length is None and (m := SEQ_PATTERN.search(data)) is not None:
            log.seq_length = int(m.group(1)) or None
        if log.tokens_per_step is None and (m := TOKENS_PER_STEP.search(data)) is not None:
            log.tokens_per_step = int(m.group(1).replace(b",", b"") or b"0") or None

    def _line(self, raw: bytes, line: int) -> None:
        """One non-blank line: a table header or row, a record, or a skipped line."""
        if (names := table_header(raw)) is not None:
            self.table = names
            return
        if self.table is not None:
            row = table_row(raw, self.table)
            if row is not None:
                if row:
                    self._record(row, "", None, line)
                return
            self.table = None
        rec = parse_line(raw)
        if not rec.fields:
            if rec.pairs or LOSS_WORD.search(raw):
                self._skip(line, broken=bool(LOSS_WORD.search(raw)))
            return
        if not any(k in rec.fields for k in ("loss", "eval", "ppl")):
            self._context(raw, rec.fields)
            self._skip(line, broken=bool(LOSS_WORD.search(raw)))
            return
        if "loss" in rec.fields and VALID_LINE.search(raw):
            rec.fields["eval"] = rec.fields.pop("loss")
        self._record(rec.fields, rec.loss_key, rec.leading_step, line)
        self.last = raw

    def _context(self, raw: bytes, fields: dict[str, float]) -> None:
        """A heading such as `Evaluating perplexity, Epoch 1/16` gives later records a step."""
        if (m := EPOCH_CONTEXT.search(raw)) is not None:
            self.context_step = float(m.group(1))
        elif "step" in fields and math.isfinite(fields["step"]):
            self.context_step = fields["step"]

    def _skip(self, line: int, broken: bool) -> None:
        """Count a line that looked like a record but gave no loss."""
        log = self.log
        log.skipped += 1
        _ref(log.skipped_lines, line)
        if broken:
            log.note_unparseable(line)

    def _record(self, fields: dict[str, float], key: str, leading: float | None, line: int) -> None:
        """Store one record's loss (training), evaluation loss or perplexity."""
        log = self.log
        self.index += 1
        step = fields.get("step", leading if leading is not None else math.nan)
        if math.isnan(step):
            step = self.context_step if math.isfinite(self.context_step) else float(self.index)
        log.used += 1
        _ref(log.used_lines, line)
        if "grad_norm" in fields and len(log.grad_norms) < MAX_GRAD_NORMS:
            log.grad_norms.append((step, fields["grad_norm"]))
        # a loss beside ppl with no step is an evaluation's (DeepSpeed-Chat); with a step it is
        # a training record (OpenNMT's `Step 100/1000; ppl: ...; xent: ...`)
        if "loss" not in fields or ("ppl" in fields and "step" not in fields):
            self.first_eval_line = self.first_eval_line or line
            self._eval(fields, step)
            return
        loss = fields["loss"]
        if self.bits is None and "ppl" in fields:
            self.bits = loss_in_bits(fields["ppl"], fields.get("nll", loss))
        if log.first_line is None and math.isfinite(loss):
            log.first_line = line
            self.loss_key = key
        if not math.isfinite(loss):
            _ref(log.nonfinite_lines, line)
        self.builder.add(
            step,
            loss,
            fields.get("lr", math.nan),
            fields.get("tokens", math.nan),
            fields.get("samples", math.nan),
        )
        if "eval" in fields:
            log.eval_points.append((step, fields["eval"]))

    def _eval(self, fields: dict[str, float], step: float) -> None:
        """An evaluation-only record: eval loss, or ln(perplexity)."""
        if "eval" in fields:
            if self.bits is None and "ppl" in fields:
                self.bits = loss_in_bits(fields["ppl"], fields.get("nll", fields["eval"]))
            self.log.eval_points.append((step, fields["eval"]))
            return
        ppl = fields["ppl"]
        value = fields.get("loss", math.log(ppl) if ppl > 0 else math.nan)
        self.ppl_points.append((step, value))

    def finish(self) -> ParsedLog:
        """Validate and return the parsed log."""
        log = self.log
        log.records = self.lines
        log.series = self.builder.build()
        if self.loss_key.lower() in MEAN_KEYS:
            log.window_kind = "mean"
        log.metric = self.loss_key or "loss"
        if self.bits:
            _to_nats(log)
        if len(log.series) == 0 and not log.eval_points and self.ppl_points:
            log.eval_points, log.eval_metric = self.ppl_points, "ln(perplexity)"
        if len(log.series) == 0 and log.eval_points:
            log.eval_metric = log.eval_metric or "eval loss"
            log.first_line = self.first_eval_line
            _eval_only(log)
        if len(log.series) == 0:
            raise InputError(
                f"{self.path}: no training-loss records recognised in {self.lines} lines "
                f"({log.skipped} record-like lines without a loss).",
                hint=self.hint,
            )
        log.notes.append(
            f"Read with the generic key-value grammar: {log.used} line(s) used "
            f"(first: {', '.join(map(str, log.used_lines[:5]))}), {log.skipped} record-like "
            f"line(s) skipped"
            + (f" (first: {', '.join(map(str, log.skipped_lines[:5]))})" if log.skipped else "")
            + "."
        )
        return log


class FastScan:
    """Runs of lines that fit one template, read in bulk into the parser's series."""

    def __init__(self, tpl: Template, parser: KvParser) -> None:
        self.tpl, self.parser, self.misses = tpl, parser, 0

    def scan(self, data: bytes, pos: int, line: int) -> tuple[int, int]:
        """Read the run of template lines at `pos`; returns where it stopped and its line."""
        rows: list[tuple[bytes, ...]] = []
        nxt = pos
        for m in self.tpl.pattern.finditer(data, pos):
            if m.start() != nxt:
                break
            rows.append(m.groups())
            nxt = m.end() + 1
        if not rows:
            self.misses += 1
            if self.misses >= MISSES:
                self.parser.fast = None
            return pos, line
        self.misses = 0
        self._bulk(rows, line + 1)
        return min(nxt, len(data)), line + len(rows)

    def _bulk(self, rows: list[tuple[bytes, ...]], first: int) -> None:
        """Store many training records at once (line `first` onwards)."""
        p, log = self.parser, self.parser.log
        cols = columns(self.tpl, rows)
        n = len(rows)
        log.used += n
        p.index += n
        for i in np.flatnonzero(~np.isfinite(cols["loss"]))[:MAX_REFS].tolist():
            _ref(log.nonfinite_lines, first + i)
        if "grad_norm" in cols and len(log.grad_norms) < MAX_GRAD_NORMS:
            room = MAX_GRAD_NORMS - len(log.grad_norms)
            pairs = zip(
                cols["step"][:room].tolist(), cols["grad_norm"][:room].tolist(), strict=True
            )
            log.grad_norms.extend(pairs)
        p.builder.add_block(**{k: v for k, v in cols.items() if k != "grad_norm"})


def loss_in_bits(ppl: float, loss: float) -> bool | None:
    """Whether a loss is in bits: its perplexity is 2^loss, not e^loss (fairseq)."""
    if not (math.isfinite(ppl) and ppl > 1 and math.isfinite(loss) and 0 < loss < 64):
        return None
    bits, nats = abs(math.log2(ppl) - loss), abs(math.log(ppl) - loss)
    return bits < 0.02 * loss and bits < nats


def _to_nats(log: ParsedLog) -> None:
    """Convert a base-2 loss series and its evaluations to nats, and say so."""
    log.series.loss *= LN2
    log.eval_points = [(s, v * LN2) for s, v in log.eval_points]
    log.notes.append(
        "The loss is printed in bits (base 2: the log's perplexity is 2^loss, as fairseq "
        "prints it); converted to nats (× ln 2) before any test against ln V."
    )
    log.metric = f"{log.metric or 'loss'} (bits → nats)"


def _eval_only(log: ParsedLog) -> None:
    """A log of evaluations only: the evaluations become the series (weaker evidence)."""
    b = SeriesBuilder()
    for step, value in log.eval_points:
        b.add(step, value)
    log.series = b.build()
    log.metric, log.window_kind = log.eval_metric, "eval"
    log.notes.append(
        f"The log holds evaluations only ({log.eval_metric}); they are used as the series."
    )


def parse_kv(
    path: Path, chunks: Iterable[Chunk], check: Callable[[], None], hint: str = ""
) -> ParsedLog:
    """Parse a text log with the generic grammar, streaming chunk by chunk."""
    parser = KvParser(path, check, hint)
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish()
