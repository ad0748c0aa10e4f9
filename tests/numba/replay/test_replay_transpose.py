"""The register-block transpose against NumPy's fancy indexing."""

from __future__ import annotations

import numpy as np
import pytest

from backends.numba._replay._transpose import transpose


# counts: whole blocks of 8 rows and a remainder; widths: whole blocks of 8 samples and a tail
@pytest.mark.parametrize(
    ("count", "width"), [(8, 8), (16, 24), (64, 1000), (13, 997), (3, 5), (9, 7), (1, 0)]
)
def test_transpose_copies_each_row_into_a_column(count: int, width: int) -> None:
    rng = np.random.default_rng(count * 1000 + width)
    source = rng.standard_normal(count * (width + 3) + 11)
    # the rows in shuffled order and unaligned: a layer's slots start anywhere
    starts = (rng.permutation(count) * (width + 3) + rng.integers(0, 4, size=count)).astype(np.int64)
    rows = np.full(count * width, np.nan)
    transpose(source, starts, width, rows)
    expected = source[starts[:, None] + np.arange(width)].T.ravel()
    assert rows.view(np.int64).tolist() == expected.view(np.int64).tolist()


def test_transpose_writes_nothing_past_its_rows() -> None:
    source = np.arange(200.0)
    rows = np.full(8 * 16 + 5, -1.0)
    transpose(source, np.arange(8, dtype=np.int64) * 20, 16, rows)
    assert (rows[8 * 16 :] == -1.0).all()
