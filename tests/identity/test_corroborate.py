"""Which pairs of addresses count as one typo apart (``siyu.identity.corroborate``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from siyu.identity.corroborate import typo_pairs


def _one_typo(first: str, second: str) -> bool:
    """Groups 1 and 2 share weak component 7; group 1 holds ``first``, group 2 ``second``."""
    found = typo_pairs(
        np.array([7, 7]),
        np.array([1, 2]),
        np.array([1, 2]),
        pa.array([first, second]),
    )
    return found.tolist() == [[1, 2]]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("maria.lopez@gmail.com", "maria.lopez@gmial.com"),  # swapped letters in the domain
        ("harry.taylor@yahoo.com", "harry.taylor@yaho.com"),  # dropped letter in the domain
        ("mleroy4762814@laposte.net", "mleroy4762814@lapostenet"),  # dropped dot
        ("mleroy4762814@laposte.net", "mlroy4762814@laposte.net"),  # dropped letter
        ("junhao_1778224@yahoo.com", "jnhao_1778224@yahoo.com"),
        ("lucas.martin@hotmail.com", "lucas.matrin@hotmail.com"),  # swapped letters
    ],
)
def test_one_slip_of_a_key_is_a_typo(first: str, second: str) -> None:
    assert _one_typo(first, second)
    assert _one_typo(second, first)


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        ("jsmith@mail.co", "ksmith@mail.co", "a different first letter: another person"),
        ("lee.1985@mail.co", "lee.1987@mail.co", "different digits: a birth year, a counter"),
        ("lee.1985@mail.co", "lee.198@mail.co", "a dropped digit is not taken as a typo"),
        ("anna@mail.co", "anne@mail.co", "too short to tell a typo from another name"),
        ("maria.lopez@gmail.com", "maria.lopez@gmail.com", "the same address is not a pair"),
        ("maria.lopez@gmail.com", "mario.lopes@gmail.com", "two edits"),
        ("maria.lopez@gmail.com", "maria.lopez@outlook.com", "domains far apart"),
        ("maria@gmail.com", "maria@gmial.com", "fine: five characters, see the next test"),
    ],
)
def test_anything_more_is_not(first: str, second: str, why: str) -> None:
    if why.startswith("fine"):
        assert _one_typo(first, second)
        return
    assert not _one_typo(first, second), why


def test_only_groups_that_share_a_weak_component_are_paired() -> None:
    found = typo_pairs(
        np.array([7, 8]),
        np.array([1, 2]),
        np.array([1, 2]),
        pa.array(["maria.lopez@gmail.com", "maria.lopez@gmial.com"]),
    )
    assert found.shape == (0, 2)


def test_every_pair_of_a_weak_component_is_considered_once() -> None:
    """Groups 1-2 (a domain typo) and 1-3 (a dropped letter) pair; 2-3 differ in both parts."""
    found = typo_pairs(
        np.array([7, 7, 7, 7]),
        np.array([3, 1, 2, 2]),
        np.array([1, 2, 3, 2]),
        pa.array(["ann.perez@mail.co", "ann.perez@mial.co", "an.perez@mail.co", "x@y.co"]),
    )
    assert found.tolist() == [[1, 2], [1, 3]]


def test_the_audit_can_hold_every_rule_with_the_typo_rule() -> None:
    """A merge's audit rule joins its links' rules and this one; PostgreSQL enforces the
    column's length (the demo's first full run stopped on 'alias+same_event+' and a longer name).
    """
    from siyu.identity import tables as t
    from siyu.identity.corroborate import TYPO_RULE

    longest = "+".join(["alias", "operator", "same_event", TYPO_RULE])
    width = t.identity_audit.c.rule.type.length
    assert width is not None
    assert len(longest) <= width
