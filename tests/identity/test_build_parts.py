"""Parts of the graph build that replaced sorts: each equals the sort it replaced."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.identity.extract import KeyList, _first_occurrences, _link_order


def test_first_occurrences_equal_numpy_unique_for_arrow_codes() -> None:
    rng = np.random.default_rng(3)
    for n, k in ((1, 1), (50, 3), (10_000, 700), (10_000, 10_000)):
        values = pa.array([f"v{x}" for x in rng.integers(0, k, n)])
        encoded = pc.dictionary_encode(values)
        codes = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
        expected = np.unique(codes, return_index=True)[1]
        assert np.array_equal(_first_occurrences(codes, len(encoded.dictionary)), expected)


def test_first_occurrences_of_another_numbering_fall_back_to_the_sort() -> None:
    codes = np.array([2, 0, 2, 1, 0], dtype=np.int64)
    assert _first_occurrences(codes, 3).tolist() == [1, 3, 0]


def test_link_order_equals_the_six_key_lexsort() -> None:
    rng = np.random.default_rng(5)
    m, nodes, rows = 20_000, 500, 3_000
    a, b = rng.integers(0, nodes, m), rng.integers(0, nodes, m)
    seen = rng.integers(0, 50, m)  # many ties, so the later keys decide
    row = rng.integers(0, rows, m)
    rank = rng.integers(1, rows + 1, rows)[row]
    slot = rng.integers(0, 5, m)
    expected = np.lexsort((slot, row, rank, seen, b, a))
    assert np.array_equal(_link_order(a, b, seen, rank, row, slot, nodes), expected)


def test_key_list_reads_keys_by_index_slice_and_iteration() -> None:
    keys = KeyList(pa.array(["email\x1fa@x.co", "phone\x1f+62811", "user_id\x1fs:1"]))
    assert len(keys) == 3
    assert keys[1] == "phone\x1f+62811"
    assert keys[-1] == "user_id\x1fs:1"
    assert keys[0:2] == ["email\x1fa@x.co", "phone\x1f+62811"]
    assert list(keys) == ["email\x1fa@x.co", "phone\x1f+62811", "user_id\x1fs:1"]
