"""After a hidden-width change: compare the tensors that only differ by the removed dims.

Once B's hidden dims are mapped to A's (width.hidden_match), A's norm gains and lm_head
columns can be read at the surviving dims and compared with B's directly, each against a
random-pairing null (rowstats.row_test).
"""

from __future__ import annotations

import numpy as np

from companion.audit.rowstats import Array, Findings, RowTest, read_row_set, row_test
from companion.audit.symview import Model

ROWS = 1024


def _norms(a: Model, b: Model, cols: Array, seed: int) -> RowTest | None:
    """Every norm gain at the surviving dims: dims as rows, norms as features."""
    xa, xb = [], []
    for key in sorted(a.side.by_key, key=lambda k: (k.layer or -1, k.slot, k.param)):
        if key.role != "norm" or key.expert is not None:
            continue
        ga = a.vector(key.role, key.slot, key.layer, key.param)
        gb = b.vector(key.role, key.slot, key.layer, key.param)  # same depth: same layer
        if ga is None or gb is None or ga.shape[0] <= cols.max() or gb.shape != (cols.size,):
            continue
        xa.append(ga[cols])
        xb.append(gb)
    if len(xa) < 2:
        return None
    return row_test(np.array(xa).T, np.array(xb).T, seed)


def _head(a: Model, b: Model, cols: Array, seed: int) -> RowTest | None:
    """lm_head rows (by ID) at the surviving columns."""
    na, nb = a.name("lm_head", "lm_head", None), b.name("lm_head", "lm_head", None)
    if na is None or nb is None or len(a.shape(na)) != 2 or b.shape(nb)[1:] != (cols.size,):
        return None
    rows = np.arange(min(a.shape(na)[0], b.shape(nb)[0], ROWS))
    xa = read_row_set(a.side.ref(na), rows)[:, cols]
    return row_test(xa, read_row_set(b.side.ref(nb), rows), seed)


def sliced(a: Model, b: Model, cols: Array, seed: int) -> Findings:
    """Norms and lm_head compared at the hidden dims that survive in B."""
    out = Findings()
    for role, test in (("norm", _norms(a, b, cols, seed)), ("lm_head", _head(a, b, cols, seed))):
        if test is None:
            continue
        out.handled.add(role)
        out.related = out.related or test.related
        what = f"{role} at the {cols.size} hidden dims that survive in B"
        out.reasons.append(test.reason("width_sliced", role, what, "random pairing (same rows)"))
    return out
