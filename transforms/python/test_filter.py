from decimal import Decimal

import pytest

import sluice
from sluice import Kind
from sluice.testing import Harness, TestEvent

from filter import Filter, parse_f64


def order(id, status, total):
    return TestEvent.insert("shop", "orders", {"id": id, "status": status, "total": Decimal(total)})


def test_keeps_rows_matching_the_predicate():
    h = Harness(Filter, {"column": "status", "op": "==", "value": "paid"})
    out = h.run([order(1, "paid", "1.00"), order(2, "new", "2.00"), order(3, "paid", "3.00")])
    assert [o.get("id") for o in out] == [1, 3]


def test_numeric_comparison_on_decimals():
    h = Harness(Filter, {"column": "total", "op": ">=", "value": "2"})
    out = h.run([order(1, "x", "1.99"), order(2, "x", "2.00"), order(3, "x", "10.5")])
    assert [o.get("id") for o in out] == [2, 3]


def test_text_compares_as_text_even_when_it_looks_numeric():
    h = Harness(Filter, {"column": "status", "op": ">", "value": "9"})
    out = h.run([order(1, "10", "1"), order(2, "95", "1")])
    assert [o.get("id") for o in out] == [2]


def test_drops_tables():
    h = Harness(Filter, {"drop_tables": "shop.audit"})
    out = h.run([order(1, "paid", "1"), TestEvent.insert("shop", "audit", {"id": 9})])
    assert [o.table for o in out] == ["orders"]


def test_truncate_passes_the_predicate_and_is_dropped_only_by_table():
    h = Harness(Filter, {"column": "status", "op": "==", "value": "paid",
                         "drop_tables": "shop.audit"})
    out = h.run([order(1, "new", "1"), TestEvent.truncate("shop", "orders"),
                 TestEvent.truncate("shop", "audit")])
    assert [(o.kind, o.table) for o in out] == [(Kind.TRUNCATE, "orders")]
    assert out[0].value_json() == {"kind": "truncate", "schema": "shop", "table": "orders",
                                   "columnnames": [], "columnvalues": [], "oldkeys": {}}


def test_bad_config_is_an_error():
    with pytest.raises(sluice.Error):
        Harness(Filter, {})
    with pytest.raises(sluice.Error, match="unknown op"):
        Harness(Filter, {"column": "a", "op": "~", "value": "1"})


def test_numbers_parse_as_rust_parses_them():
    assert [parse_f64(t) for t in ("1", "-2.5", ".5", "5.", "1e3", "+inf")] == [
        1.0, -2.5, 0.5, 5.0, 1000.0, float("inf")]
    # Not numbers for Rust: non-ASCII digits, underscores, blanks, a bare exponent.
    assert [parse_f64(t) for t in ("١", "1_0", " 1", "1e", "e5", "")] == [None] * 6


def test_a_double_compares_as_its_json_text_against_a_non_number():
    h = Harness(Filter, {"column": "x", "op": "<", "value": "1e,"})
    out = h.run([TestEvent.insert("s", "t", {"id": 1, "x": 1e20})])
    assert len(out) == 1, "1e+20 (as Rust prints it) sorts before 1e,"
