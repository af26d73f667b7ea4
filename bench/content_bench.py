"""Content checks on a synthetic 1M-message campaign: µs per message (docs/compliance.md, "Speed").

    .venv/bin/python bench/content_bench.py [MESSAGES]

Measures the path pass one takes (the template checked once, then each column's distinct values at once:
``TemplateCheck.slot_findings``, where one-word values no entry can match are proven clear in bulk), the
row-by-row path it replaced (each row's merged values, memoized: ``TemplateCheck.row``) and, for
comparison, a full check of every rendered message. All three find the same rows. The list: 1M rows, first names drawn from 500
(they repeat, as in real lists), a unique code per row, a town from 200, and one row in 10,000 carrying a
listed word in a merge field.
"""

from __future__ import annotations

import random
import sys
import time

from bulksend.content import Lexicon, TemplateCheck
from bulksend.templates import Template

TEMPLATE = "Hi {first_name}, your {town} store has 20% off this weekend with code {code}. Reply STOP to opt out"


def rows(count: int, seed: int = 7):
    rng = random.Random(seed)
    names = [f"Name{i}" for i in range(500)]
    towns = [f"Town{i}" for i in range(200)]
    for i in range(count):
        code = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
        if i % 10_000 == 9_999:
            code = "c0caine"
        yield [rng.choice(names), rng.choice(towns), code]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    data = list(rows(count))
    lexicon = Lexicon.load()
    bound = Template.parse(TEMPLATE).bind(["first_name", "town", "code"])

    import numpy as np
    import pandas as pd

    columns = [list(col) for col in zip(*data)]  # bound.columns are first_name, town, code, as in ``data``
    fields = [p[0] for p in bound.parts() if not isinstance(p, str)]
    start = time.perf_counter()
    check = TemplateCheck(lexicon, bound)
    row_hits = []
    for n, column in enumerate(fields):  # each field's distinct values once, as pass one does (rendering.py)
        codes, distinct = pd.factorize(np.array(columns[column], dtype=object))
        found_at = check.slot_findings(n, [v.strip() for v in distinct.tolist()])
        row_hits.append(np.isin(codes, list(found_at)))
    per_column = (time.perf_counter() - start) / count * 1e6
    blocked = np.flatnonzero(np.logical_or.reduce(row_hits))

    start = time.perf_counter()
    check = TemplateCheck(lexicon, bound)
    found = sum(check.row(values) is not None for values in data)
    per_row = (time.perf_counter() - start) / count * 1e6
    assert found == len(blocked)

    texts = [bound.render(values)[0] for values in data]
    start = time.perf_counter()
    full = sum(bool(lexicon.check(text)) for text in texts)
    per_text = (time.perf_counter() - start) / count * 1e6

    print(f"{count:,} messages, lexicon of {lexicon.size} entries")
    print(f"template once + each column's distinct values (pass one's path): {per_column:.2f} µs/message, "
          f"{len(blocked):,} blocked")
    print(f"template once + each row's merged values, memoized:             {per_row:.2f} µs/message, {found:,} blocked")
    print(f"full check of every rendered message:                           {per_text:.2f} µs/message, {full:,} blocked")


if __name__ == "__main__":
    main()
