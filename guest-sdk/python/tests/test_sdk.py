"""The SDK natively: the packed codec, the event API, the edit rules and the component glue
(driven with stand-ins for componentize-py's generated bindings)."""

import datetime
import struct
import sys
import types
from decimal import Decimal

import pytest

import sluice
from sluice import Date, DateTime, Float32, Json, Kind, Time, Timestamp, packed
from sluice.event import Op
from sluice.testing import Harness, TestEvent


def cell(tag, body=b""):
    """A packed cell written independently of the SDK's reader (sluice_contract::packed's layout)."""
    b = bytearray(16)
    b[0] = tag
    b[1:1 + len(body)] = body
    return bytes(b)


def span_cell(tag, data, blob):
    start = len(data)
    data += blob
    return cell(tag, bytes(7) + struct.pack("<II", start, len(blob)))


def test_every_cell_type_decodes():
    data = bytearray()
    cells = b"".join([
        cell(0),
        cell(1, bytes(7) + struct.pack("<q", -(1 << 63))),
        cell(2, bytes(7) + struct.pack("<Q", (1 << 64) - 1)),
        cell(3, bytes(7) + struct.pack("<f", 1.1)),
        cell(4, bytes(7) + struct.pack("<d", 2.5)),
        span_cell(5, data, b"0.0000000001"),
        span_cell(6, data, "żółw 🐢".encode()),
        span_cell(7, data, b"\x00\xff"),
        cell(8, b"\x00" + struct.pack("<HBB", 0, 0, 0)),
        cell(9, b"\x00" + struct.pack("<HBBBBIBB", 2024, 1, 31, 23, 59, 250000, 58, 3)),
        cell(10, struct.pack("<B2xIq", 6, 1, -1)),
        cell(11, struct.pack("<BBBIIB", 1, 1, 59, 838, 500000, 59)),
        span_cell(12, data, b'{"b":1,"a":[1.0,null]}'),
    ])
    got = packed.read_image(cells, 0, 13, bytes(data))
    assert got[:3] == [None, -(1 << 63), (1 << 64) - 1]
    assert isinstance(got[3], Float32) and got[3] == struct.unpack("<f", struct.pack("<f", 1.1))[0]
    assert got[4] == 2.5 and type(got[4]) is float
    assert got[5] == Decimal("1E-10") and format(got[5], "f") == "0.0000000001"
    assert got[6] == "żółw 🐢" and got[7] == b"\x00\xff"
    assert str(got[8]) == "0000-00-00"
    assert str(got[9]) == "2024-01-31T23:59:58.250"
    assert str(got[10]) == "1969-12-31T23:59:59.000001Z"
    assert str(got[11]) == "-838:59:59.5"
    assert got[12].text == '{"b":1,"a":[1.0,null]}' and got[12].value == {"b": 1, "a": [1.0, None]}
    with pytest.raises(ValueError, match="beyond"):
        packed.read_image(span_cell(6, bytearray(), b"xyz"), 0, 1, b"")
    with pytest.raises(ValueError, match="out of bounds"):
        packed.read_image(cells, 12, 2, bytes(data))


def test_views_decode():
    view = struct.pack("<B3xIQIIIII", 2, 7, 1 << 40, 3, 0, 2, 2, 2)
    assert packed.read_view(view, 0) == (Kind.UPDATE, 7, 1 << 40, 3, 0, 2, 2, 2)
    with pytest.raises(ValueError, match="kind"):
        packed.read_view(b"\x09" + view[1:], 0)


def test_dates_and_times_print_the_contract_text_and_convert():
    assert str(Timestamp(-62135596800)) == "0001-01-01T00:00:00Z"
    assert str(Timestamp(253402300799, 999999, 6)) == "9999-12-31T23:59:59.999999Z"
    assert Timestamp.from_datetime(datetime.datetime(2024, 1, 2, 3, 4, 5, 6, datetime.timezone.utc)) \
        == Timestamp(1704164645, 6, 6)
    assert Time(True, 1, 2, 3).to_timedelta() == -datetime.timedelta(hours=1, minutes=2, seconds=3)
    assert DateTime(2024, 2, 29, 1, 2, 3, 4, 0).to_datetime() == datetime.datetime(2024, 2, 29, 1, 2, 3, 4)
    with pytest.raises(ValueError):
        Date(0, 0, 0).to_date()


def test_values_normalize_as_published():
    n = sluice.values.normalize
    assert n(True) == 1 and n({"a": [1]}).text == '{"a":[1]}'
    assert n(datetime.date(2024, 1, 2)) == Date(2024, 1, 2)
    assert n(datetime.timedelta(hours=-1)) == Time(True, 1, 0, 0)
    assert n(datetime.datetime(2024, 1, 2, 3, 4, 5)) == DateTime(2024, 1, 2, 3, 4, 5, 0, 0)
    with pytest.raises(ValueError):
        n(1 << 64)
    with pytest.raises(TypeError, match="cannot publish a set"):
        n({1})
    with pytest.raises(ValueError):
        n(Decimal("NaN"))


class Everything:
    """Uses every op, for the edit rules."""

    def __init__(self, config):
        self.split = config.get("split") == "1"

    def process(self, e):
        if e.kind is Kind.TRUNCATE:
            return
        e.set("name", e.get("name").upper())
        e.rename("name", "NAME")
        e.remove("id")
        e.add("source", e.schema)
        e.set_topic("t." + e.table)
        e.set_key(str(e.get("id")))
        e.add_header("h", b"v")
        if self.split:
            e.split()
            e.set_payload('{"copy":true}')


def test_edits_apply_as_the_host_applies_them():
    h = Harness(Everything, {"split": "1"})
    ev = TestEvent.update("s", "t", {"id": 1, "name": "a", "k": 2}, {"id": 1, "name": "b", "k": 3})
    ev.primary_key = [0, 2]
    first, second = h.run([ev, TestEvent.truncate("s", "t")])[:2]
    assert first.columns == ["NAME", "k", "source"]
    assert first.after == ["B", 3, "s"] and first.before == ["a", 2, "s"]
    assert first.primary_key == [1], "the key loses `id` and `k` is re-numbered"
    assert (first.topic, first.key, first.headers) == ("t.t", b"1", [("h", b"v")])
    assert second.payload == b'{"copy":true}' and second.value_json() == {"copy": True}
    assert second.columns == ["id", "name", "k"], "a split output starts from the input"
    assert first.value_json()["oldkeys"] == {"keynames": ["NAME", "k", "source"],
                                             "keyvalues": ["a", 2, "s"]}


def test_refused_edits_say_why():
    class Dup:
        def __init__(self, c):
            pass

        def process(self, e):
            e.add(self.column, 1)

    Dup.column = "name"
    h = Harness(Dup)
    with pytest.raises(sluice.Error, match='two columns named "name"'):
        h.run([TestEvent.insert("s", "t", {"id": 1, "name": "x"})])
    Dup.column = "extra"
    with pytest.raises(sluice.Error, match="truncate event"):
        h.run([TestEvent.truncate("s", "t")])

    class Unknown:
        def __init__(self, c):
            pass

        def process(self, e):
            e.set("nope", 1)

    with pytest.raises(sluice.Error, match='s.t has no column "nope"'):
        Harness(Unknown).run([TestEvent.insert("s", "t", {"id": 1})])


def test_interest_selects_tables_and_projects_columns():
    seen = []

    class Spy:
        def __init__(self, c):
            pass

        def interest(self):
            return sluice.Interest.columns(["b"]).with_tables(["s.keep", "other.*"])

        def process(self, e):
            seen.append((e.table, e.get("a", "absent"), e.get("b"), e.has("a")))

    h = Harness(Spy)
    out = h.run([TestEvent.insert("s", "keep", {"a": 1, "b": 2}),
                 TestEvent.insert("s", "skip", {"a": 1, "b": 2}),
                 TestEvent.insert("other", "x", {"b": None})])
    assert seen == [("keep", "absent", 2, False), ("x", "absent", None, False)]
    assert len(out) == 3
    i = sluice.Interest(["t"])
    assert i.matches_table("any", "t") and not i.matches_table("any", "u")
    assert sluice.Interest.no_columns().projection(["a"]) == []
    assert sluice.Interest.all().columns is None


def test_config():
    c = sluice.Config([("a", "1"), ("l", " x, ,y "), ("a", "2")])
    assert c.get("a") == "2" and c.get("z") is None and c.get("z", "d") == "d"
    assert c.list("l") == ["x", "y"] and c.list("z") == []
    with pytest.raises(sluice.Error, match='config key "z"'):
        c.require("z")


# --- the component glue, with stand-ins for componentize-py's generated modules ---------------

@pytest.fixture
def component(monkeypatch):
    """Installs stand-in `wit_world` and `componentize_py_types` modules and imports
    `sluice._component` against them."""

    class Err(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    def ctor(name):
        return lambda *args: (name,) + args

    wit = types.SimpleNamespace(**{n: ctor(n) for n in [
        "Span", "Cell_Null", "Cell_Int", "Cell_Uint", "Cell_Float", "Cell_Double",
        "Cell_Decimal", "Cell_Text", "Cell_Bytes", "Cell_Date", "Cell_Datetime",
        "Cell_Timestamp", "Cell_Time", "Cell_Json", "Date", "Datetime", "Timestamp", "Time",
        "Op_Drop", "Op_SetAfter", "Op_SetBefore", "Op_RenameColumn", "Op_DropColumn",
        "Op_AddColumn", "Op_SetTopic", "Op_SetKey", "Op_AddHeader", "Op_SetPayload",
        "Output", "Edits", "Interest", "LogLevel"]})
    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = Err
    ww = types.ModuleType("wit_world")
    ww.__path__ = []
    ww.log = lambda level, message: None
    imports = types.ModuleType("wit_world.imports")
    imports.__path__ = []
    imports.types = wit
    ww.imports = imports
    for name, mod in [("componentize_py_types", cpt), ("wit_world", ww),
                      ("wit_world.imports", imports), ("wit_world.imports.types", wit)]:
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "sluice._component", raising=False)
    import sluice._component as c
    yield c, Err
    sys.modules.pop("sluice._component", None)


def batch(rows):
    """(table infos, views, cells, data) for insert events of s.t(id, name)."""
    data, cells, views = bytearray(), b"", b""
    for n, (i, name) in enumerate(rows):
        start = len(cells) // 16
        cells += cell(1, bytes(7) + struct.pack("<q", i)) + span_cell(6, data, name.encode())
        views += struct.pack("<B3xIQIIIII", 1, 5, 100, n, start, 2, 0, 0)
    info = types.SimpleNamespace(id=5, schema="s", table="t", columns=["id", "name"],
                                 primary_key=[0], projection=[0, 1])
    return [info], views, cells, bytes(data)


def test_the_component_keeps_state_and_answers_edits(component):
    c, Err = component

    class Counter:
        def __init__(self, config):
            self.seen = 0
            self.suffix = config.require("suffix")

        def interest(self):
            return sluice.Interest.columns(["name"])

        def process(self, e):
            self.seen += 1
            if e.get("name") == "drop":
                e.drop_event()
            elif e.get("name") == "keep":
                pass
            else:
                e.set("name", f"{e.get('name')}{self.suffix}{self.seen}")

    World = c.world(Counter)
    assert World().init([("suffix", "#")]) == ("Interest", [], ["name"])
    tables, views, cells, data = batch([(1, "a"), (2, "drop"), (3, "keep")])
    edits = World().transform(tables, views, cells, data)
    outputs, ops, out_cells, out_data = edits[1:]
    assert outputs == [("Output", 0, 0, 1), ("Output", 1, 1, 1)], "the kept event has no output"
    assert ops == [("Op_SetAfter", (1, 0)), ("Op_Drop",)]
    assert out_cells == [("Cell_Text", ("Span", 0, 3))] and out_data == b"a#1"
    # A new WitWorld object per call (as componentize-py makes), and the count goes on.
    tables2, views2, cells2, data2 = batch([(4, "b")])
    edits = World().transform([], views2, cells2, data2)
    assert edits[4] == b"b#4"


def test_the_component_answers_exceptions_with_the_traceback(component):
    c, Err = component

    class Fails:
        def __init__(self, config):
            if config.get("bad"):
                raise sluice.Error("bad config: fix `bad`")

        def process(self, e):
            if e.get("id") == 2:
                {}["missing"]

    World = c.world(Fails)
    with pytest.raises(Err) as e:
        World().init([("bad", "1")])
    assert e.value.value == "bad config: fix `bad`"
    World().init([])
    with pytest.raises(Err) as e:
        World().transform(*batch([(1, "a"), (2, "b")]))
    text = e.value.value
    assert text.startswith("KeyError: 'missing'\nTraceback (most recent call last):"), text
    assert "in process" in text


def test_values_that_do_not_fit_the_wit_are_refused_before_they_reach_it():
    n = sluice.values.normalize
    with pytest.raises(ValueError, match="Date.year"):
        n(Date(70000, 1, 1))
    with pytest.raises(ValueError, match="Time.hours"):
        n(datetime.timedelta(days=999999999))
    with pytest.raises(ValueError, match="DateTime.micros"):
        n(DateTime(2024, 1, 1, micros=-1))
    with pytest.raises(ValueError, match="Timestamp.secs"):
        n(Timestamp(1 << 63))
    with pytest.raises(ValueError):
        Json.of({"x": float("nan")})


def test_a_changed_json_document_is_published_from_its_value():
    j = Json('{"a":0}')
    assert j.dumps() == '{"a":0}'
    j.value["x"] = "ü"
    assert j.dumps() == '{"a":0,"x":"ü"}' and j.text == '{"a":0}'
    assert sluice.values.to_json(j) == {"a": 0, "x": "ü"}


def test_floats_publish_as_sluice_writes_them():
    to_json, text = sluice.values.to_json, sluice.values.float_text
    assert Float32(0.1) == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert to_json(Float32(0.1)) == 0.1 and to_json(float("nan")) is None
    assert [text(x) for x in (1.0, 1e20, 1.5e-7, 0.00001, 1e15, -0.5, 0.0)] == [
        "1.0", "1e+20", "1.5e-7", "0.00001", "1000000000000000.0", "-0.5", "0.0"]
    # The shortest 32-bit digits, with Rust's choice at ties and at powers of two.
    f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
    assert [text(f32(v), 32) for v in (3061734.25, 2 ** -12, 2 ** -96, 3.4028234663852886e38)] == [
        "3061734.3", "0.00024414063", "1.2621775e-29", "3.4028235e+38"]


def test_from_json_checks_as_the_host_does():
    with pytest.raises(sluice.Error, match="has 1 values for 2 columns"):
        TestEvent.from_json('{"kind":"insert","schema":"s","table":"t","columnnames":["a","b"],'
                            '"columnvalues":[1],"oldkeys":{}}')
    with pytest.raises(sluice.Error, match="truncate"):
        TestEvent.from_json('{"kind":"truncate","schema":"s","table":"t","columnnames":["a"],'
                            '"columnvalues":[1],"oldkeys":{}}')
    e = TestEvent.from_json('{"kind":"insert","schema":"s","table":"t","columnnames":["a","b"],'
                            '"columnvalues":[true,18446744073709551616],"oldkeys":{}}')
    assert e.after == [1, 18446744073709551616.0]
