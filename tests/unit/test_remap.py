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
