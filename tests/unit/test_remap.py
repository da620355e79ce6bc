"""lab.remap: a lab moved to free subnets keeps every host's offset, its routes and its names."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from lab import compose, remap
from lab.loader import load

ROOT = Path(__file__).resolve().parents[2]


def test_free_subnets_skip_what_is_taken_and_each_other() -> None:
    taken = [IPv4Network("10.128.0.0/24"), IPv4Network("10.128.2.0/23"), IPv4Network("172.17.0.0/16")]
    found = remap.free_subnets([IPv4Network("10.71.1.0/24"), IPv4Network("10.71.2.0/24")], taken)
    assert found == {IPv4Network("10.71.1.0/24"): IPv4Network("10.128.1.0/24"),
                     IPv4Network("10.71.2.0/24"): IPv4Network("10.128.4.0/24")}  # fmt: skip


def test_runs_starting_elsewhere_in_the_pool_pick_apart_and_wrap_around() -> None:
    wanted = [IPv4Network("10.71.1.0/24"), IPv4Network("10.71.2.0/24")]
    one, other = remap.free_subnets(wanted, [], start=7), remap.free_subnets(wanted, [], start=8)
    assert set(one.values()) == {IPv4Network("10.135.0.0/24"), IPv4Network("10.135.1.0/24")}
    assert not any(a.overlaps(b) for a in one.values() for b in other.values())
    last = remap.free_subnets(wanted, [IPv4Network("10.255.0.0/17")], start=127)  # the last /16, half taken
    assert set(last.values()) == {IPv4Network("10.255.128.0/24"), IPv4Network("10.255.129.0/24")}
    full = [IPv4Network("10.255.0.0/16")]
    assert remap.free_subnets(wanted[:1], full, start=127) == {wanted[0]: IPv4Network("10.128.0.0/24")}  # wraps
    big = remap.free_subnets([IPv4Network("10.0.0.0/12")], [], start=5)  # larger than a /16: by /12s, the 6th
    assert list(big.values()) == [IPv4Network("10.208.0.0/12")]


def test_no_room_is_an_error() -> None:
    with pytest.raises(remap.NoRoom, match="no free /24"):
        remap.free_subnets([IPv4Network("10.0.0.0/24")], [], pool=IPv4Network("10.0.0.0/25"))


def test_two_lans_moves_with_its_offsets_routes_and_hosts() -> None:
    lab = load(ROOT / "topology" / "two-lans.yaml")
    mapping = remap.free_subnets(remap.fixed_subnets(lab), [])
    moved = remap.relocate(lab, mapping, name="two-lans-x1")
    assert moved.name == "two-lans-x1" and moved.project == "testbed-two-lans-x1"
    old_router, new_router = lab.member("router"), moved.member("router")
    assert old_router is not None and new_router is not None
    for before, after in zip(old_router.attachments, new_router.attachments, strict=True):
        assert before.address is not None and after.address is not None
        assert int(after.address) & 0xFF == int(before.address) & 0xFF  # .254 stays .254
        assert after.address in moved.network(after.network).subnet  # type: ignore[operator]
    client = moved.member("client")
    assert client is not None
    assert {str(r.gateway) for r in moved.routes(client)} == {str(new_router.attachments[0].address)}
    text = compose.to_yaml(moved, source_label="x")
    assert "10.71." not in text and str(mapping[IPv4Network("10.71.1.0/24")].network_address + 254) in text


def test_addresses_outside_every_moved_subnet_stay() -> None:
    assert remap._moved(IPv4Address("192.168.1.5"), {IPv4Network("10.0.0.0/24"): IPv4Network("10.9.0.0/24")}) == (
        IPv4Address("192.168.1.5")
    )
