"""Splitting an order into facts and personal fields, and sealing with AES-256-GCM (pure logic)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.model import PERSONAL_DATA_FIELDS
from saleshub.errors import KeyServiceError
from saleshub.platform.keys import DataKeyCache, LocalMasterKey, SealBrokenError, new_data_key, seal, unseal
from saleshub.store.personal import DataKey, PersonalData, index_values, merge_personal, split_personal

ORDER: dict[str, Any] = {
    "external_order_id": "PX-1",
    "customer": {
        "kind": "PERSON",
        "first_name": "Ana",
        "last_name": None,
        "email": "ana@example.com",
        "phone": "+34600000000",
        "external_customer_id": "C-1",
        "language": "es",
    },
    "service_address": {"line1": "Calle 1", "line2": None, "postal_code": "28001", "city": "Madrid"},
    "notes": "call Ana first",
    "totals": {"gross_amount": {"amount": "10.00", "currency": "EUR"}},
}

texts = st.one_of(st.none(), st.text(max_size=20))


def test_split_keeps_facts_and_takes_every_personal_field() -> None:
    facts, personal = split_personal(ORDER)
    assert set(personal) == {f for f in PERSONAL_DATA_FIELDS if f.split(".")[-1] in json.dumps(ORDER)} | {
        "customer.last_name",
        "service_address.line2",
    }
    assert "email" not in facts["customer"] and facts["customer"]["language"] == "es"
    assert facts["service_address"]["postal_code"] == "28001" and "line1" not in facts["service_address"]
    assert "notes" not in facts and facts["totals"] == ORDER["totals"]
    assert "Ana" not in json.dumps(facts)


@given(st.dictionaries(st.sampled_from(sorted(PERSONAL_DATA_FIELDS)), texts))
def test_merge_gives_back_exactly_what_split_took(values: dict[str, str | None]) -> None:
    order: dict[str, Any] = {
        "customer": {"kind": "PERSON"},
        "service_address": {"city": "X"},
        "status": "NEW",
    }
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        target = order
        for part in parents:
            target = target[part]
        target[last] = value
    facts, personal = split_personal(order)
    assert merge_personal(facts, personal) == order


def test_a_sealed_value_opens_only_with_its_key_and_its_row() -> None:
    key = new_data_key()
    order_id = uuid.uuid4()
    sealed = PersonalData.seal_personal(DataKey(uuid.uuid4(), key), order_id, {"customer.email": "a@b.c"})
    assert b"a@b.c" not in sealed
    assert json.loads(unseal(key, sealed, order_id.bytes)) == {"customer.email": "a@b.c"}
    with pytest.raises(SealBrokenError):
        unseal(key, sealed, uuid.uuid4().bytes)  # copied onto another order
    with pytest.raises(SealBrokenError):
        unseal(new_data_key(), sealed, order_id.bytes)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(SealBrokenError):
        unseal(key, bytes(flipped), order_id.bytes)
    assert seal(key, b"x", b"a") != seal(key, b"x", b"a")  # a fresh nonce each time


def test_blind_index_values_are_normalised() -> None:
    order = {
        "customer": {
            "email": " Ana@Example.COM ",
            "phone": "+34 600-000-000",
            "external_customer_id": " C-1 ",
        }
    }
    assert index_values(order) == [
        ("email", "ana@example.com"),
        ("phone", "+34600000000"),
        ("customer_ref", "C-1"),
    ]


def test_local_master_key_wraps_rotates_and_refuses_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master = LocalMasterKey(path)
    assert path.stat().st_mode & 0o777 == 0o600
    keys = [new_data_key() for _ in range(3)]
    wrapped = master.wrap(keys)
    assert all(k not in w for k, w in zip(keys, wrapped, strict=True))
    assert master.rotate() == 2
    assert LocalMasterKey(path).unwrap(wrapped) == keys  # old versions still unwrap
    rewrapped = master.rewrap(wrapped)
    assert {master.version(w) for w in rewrapped} == {2} and master.unwrap(rewrapped) == keys
    path.chmod(0o644)
    with pytest.raises(KeyServiceError, match="chmod 600"):
        LocalMasterKey(path)
    path.chmod(0o600)
    path.write_text("{not json")
    with pytest.raises(KeyServiceError, match="cannot be read"):
        LocalMasterKey(path)


def test_a_cached_key_serves_its_time_and_as_long_again_only_while_the_master_key_is_unreachable() -> None:
    now = [0.0]
    cache = DataKeyCache(300, clock=lambda: now[0])
    cache.put("k", b"key")
    now[0] = 299
    assert cache.get("k") == b"key"
    now[0] = 301
    assert cache.get("k") is None  # expired: unwrap again
    assert cache.get("k", stale_ok=True) == b"key"  # Vault unreachable: one more period
    now[0] = 601
    assert cache.get("k", stale_ok=True) is None  # then refused
    cache.put("k", b"key")
    cache.forget(["k"])
    assert cache.get("k") is None and "b'key'" not in repr(cache)


def test_a_stale_cached_key_covers_an_unreachable_master_key_only_never_a_wrong_one(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from saleshub.store.personal import PersonalData

    right, wrong = LocalMasterKey(tmp_path / "right.key"), LocalMasterKey(tmp_path / "wrong.key")
    key = new_data_key()
    row = SimpleNamespace(key_id="k", wrapped=right.wrap([key])[0])
    now = [0.0]
    port = PersonalData(wrong, 300)
    port.cache = DataKeyCache(300, clock=lambda: now[0])
    port.cache.put("k", key)
    now[0] = 400  # past its time, within the grace an unreachable master key would get
    with pytest.raises(KeyServiceError, match="not the one that wrapped"):
        port._unwrapped([row])
