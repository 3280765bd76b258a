from sluice import Kind
from sluice.testing import Harness, TestEvent

from mask import Mask, hash_hex


def test_hashes_emails_in_both_images():
    h = Harness(Mask, {"columns": "email"})
    out = h.run([TestEvent.update("shop", "users", {"id": 1, "email": "a@x.io"},
                                  {"id": 1, "email": "b@x.io"})])
    assert out[0].get("email") == hash_hex(b"", b"b@x.io")
    assert out[0].before[1] == hash_hex(b"", b"a@x.io")
    assert out[0].get("id") == 1
    # A known SHA-256 vector.
    assert hash_hex(b"", b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_truncate_passes_unchanged():
    h = Harness(Mask, {"columns": "email"})
    out = h.run([TestEvent.truncate("shop", "users")])
    assert len(out) == 1 and out[0].kind is Kind.TRUNCATE
    assert out[0].columns == [] and out[0].after == []
    assert out[0].payload is None and out[0].topic is None


def test_redacts_and_keeps_nulls():
    h = Harness(Mask, {"columns": "email,phone", "mode": "redact"})
    out = h.run([TestEvent.insert("s", "t", {"email": "a@x", "phone": None})])
    assert out[0].get("email") == "<redacted>"
    assert out[0].get("phone") is None
    assert out[0].value_json()["columnvalues"] == ["<redacted>", None]


def test_the_salt_changes_the_hash_and_other_types_are_redacted():
    h = Harness(Mask, {"columns": "email,born", "salt": "s"})
    import datetime
    out = h.run([TestEvent.insert("s", "t", {"email": "a", "born": datetime.date(1990, 1, 2)})])
    assert out[0].get("email") == hash_hex(b"s", b"a") != hash_hex(b"", b"a")
    assert out[0].get("born") == "<redacted>"
