"""Redis keys: every identity key of a tenant lands on one Redis Cluster hash slot."""

from __future__ import annotations

import pytest

from omnirouter.redis_keys import IdentityKeys

CLUSTER_SLOTS = 16384


def crc16_xmodem(data: bytes) -> int:
    """CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: inside the first non-empty "{…}", else all."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def cluster_slot(key: str) -> int:
    return crc16_xmodem(hash_tag(key).encode()) % CLUSTER_SLOTS


def all_keys(keys: IdentityKeys, customer_id: str = "cus_0123456789abcdef") -> list[str]:
    return [
        *keys.script_keys(),
        keys.customer_stem,
        keys.customer(customer_id),
        keys.customer_identifiers(customer_id),
        keys.customer_merges(customer_id),
    ]


# --- the CRC the slot checks rely on --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        # Values CLUSTER KEYSLOT returns (and the Redis Cluster specification's examples).
        ("123456789", 12739),
        ("foo", 12182),
        ("bar", 5061),
        ("somekey", 11058),
        ("{user1000}.following", 3443),
        ("{user1000}.followers", 3443),
        ("foo{}{bar}", 8363),
        ("foo{{bar}}", 4015),
    ],
)
def test_slot_helper_agrees_with_redis(key: str, slot: int) -> None:
    assert cluster_slot(key) == slot


def test_crc16_xmodem_check_value() -> None:
    assert crc16_xmodem(b"123456789") == 0x31C3


def test_empty_braces_do_not_make_a_tag() -> None:
    assert hash_tag("foo{}{bar}") == "foo{}{bar}"
    assert hash_tag("foo{{bar}}") == "{bar"


# --- identity keys ------------------------------------------------------------------------


def test_every_key_of_a_tenant_carries_the_tenant_tag() -> None:
    keys = IdentityKeys(prefix="omni", tenant="acme")
    for key in all_keys(keys):
        assert key.startswith(keys.tag)
        assert hash_tag(key) == "omni:idn:acme"


def test_every_key_of_a_tenant_maps_to_one_cluster_slot() -> None:
    keys = IdentityKeys(prefix="omni", tenant="acme")
    slots = {cluster_slot(k) for k in all_keys(keys)}
    assert slots == {cluster_slot(keys.tag)}


@pytest.mark.parametrize("customer_id", ["cus_a", "cus_b", "cus_{weird}", "x" * 128])
def test_per_customer_keys_share_the_tenant_slot(customer_id: str) -> None:
    keys = IdentityKeys(prefix="omni", tenant="acme")
    tenant_slot = cluster_slot(keys.identifier_owner)
    for key in (
        keys.customer(customer_id),
        keys.customer_identifiers(customer_id),
        keys.customer_merges(customer_id),
    ):
        assert hash_tag(key) == hash_tag(keys.identifier_owner)
        assert cluster_slot(key) == tenant_slot


def test_two_tenants_get_different_tags() -> None:
    acme = IdentityKeys(prefix="omni", tenant="acme")
    globex = IdentityKeys(prefix="omni", tenant="globex")
    assert hash_tag(acme.identifier_owner) != hash_tag(globex.identifier_owner)
    assert not set(all_keys(acme)) & set(all_keys(globex))


def test_two_prefixes_never_share_a_key() -> None:
    live = IdentityKeys(prefix="omni")
    test = IdentityKeys(prefix="test:abc")
    assert hash_tag(live.alias) != hash_tag(test.alias)
    assert not set(all_keys(live)) & set(all_keys(test))


def test_tenant_defaults_to_the_default_tenant() -> None:
    assert IdentityKeys(prefix="omni").tag == "{omni:idn:default}"


def test_script_keys_are_nine_distinct_keys_in_script_order() -> None:
    keys = IdentityKeys(prefix="omni", tenant="acme")
    script_keys = keys.script_keys()
    assert len(script_keys) == 9
    assert len(set(script_keys)) == 9
    assert script_keys == [
        keys.identifier_owner,
        keys.identifier_joins,
        keys.alias,
        keys.sequence,
        keys.processed,
        keys.processed_at,
        keys.split_pairs,
        keys.reviews,
        keys.reviews_open,
    ]


def test_per_customer_keys_are_distinct_per_customer() -> None:
    keys = IdentityKeys(prefix="omni")
    a = {keys.customer("cus_a"), keys.customer_identifiers("cus_a"), keys.customer_merges("cus_a")}
    b = {keys.customer("cus_b"), keys.customer_identifiers("cus_b"), keys.customer_merges("cus_b")}
    assert len(a) == 3
    assert not a & b
    assert not a & set(keys.script_keys())
