from decimal import Decimal

import pytest

import sluice
from sluice import Kind
from sluice.testing import Harness, TestEvent

from filter import Filter, float_text


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


def test_floats_print_as_serde_json_does():
    assert [float_text(x, 64) for x in (1.0, 1e20, 1.5e-7, 0.00001, 1e15, -0.5)] == [
        "1.0", "1e20", "1.5e-7", "0.00001", "1000000000000000.0", "-0.5"]
    assert float_text(float("nan"), 64) == "null"
