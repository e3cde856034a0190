"""Word alignment of a recognised hypothesis against a reference, to mark the wrong words.

:func:`align_words` returns the edit operations of a minimum-edit alignment (the same
Levenshtein distance as :func:`~vcgraph_voice.eval.metrics.word_edits`), one per position::

    >>> align_words("put the blue folder".split(), "but the folder".split())
    [('sub', 'put', 'but'), ('ok', 'the', 'the'), ('del', 'blue', None), ('ok', 'folder', 'folder')]

``ok`` (same word), ``sub`` (a wrong word), ``del`` (a reference word not heard), ``ins``
(a word heard that is not in the reference).
"""
from __future__ import annotations

from typing import Sequence

Op = tuple[str, "str | None", "str | None"]


def align_words(ref: Sequence[str], hyp: Sequence[str]) -> list[Op]:
    """Minimum-edit alignment of ``hyp`` to ``ref``; ties prefer a match, then a substitution."""
    ref, hyp = list(ref), list(hyp)
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    ops: list[Op] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(("ok" if ref[i - 1] == hyp[j - 1] else "sub", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            ops.append(("del", ref[i - 1], None))
            i -= 1
        else:
            ops.append(("ins", None, hyp[j - 1]))
            j -= 1
    return ops[::-1]


def edit_count(ops: Sequence[Op]) -> int:
    """The number of word errors in an alignment."""
    return sum(op != "ok" for op, _, _ in ops)
