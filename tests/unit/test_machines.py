"""The pure parts of the simulated cluster: names, the inner engine's flags, addresses, what moved where."""

from __future__ import annotations

import pytest

from lab import machines
from lab.machines import MachineError, Move, Shape


def test_a_shape_names_its_machines_and_their_roles() -> None:
    shape = Shape(hosts=3, managers=1)
    assert shape.names == ["h1", "h2", "h3"]
    assert [shape.role(m) for m in shape.names] == ["manager", "worker", "worker"]
    assert [Shape(5, 3).role(m) for m in Shape(5, 3).names] == ["manager"] * 3 + ["worker"] * 2


@pytest.mark.parametrize(
    ("hosts", "managers", "field"),
    [(0, 1, "--hosts"), (10, 1, "--hosts"), (3, 0, "--managers"), (3, 4, "--managers"), (4, 2, "--managers")],
)
def test_a_wrong_shape_names_the_flag(hosts: int, managers: int, field: str) -> None:
    with pytest.raises(MachineError, match=field):
        Shape(hosts, managers)


def test_the_tls_flag_only_for_engines_that_wait_without_it() -> None:
    new = machines.dockerd_argv(20, cgroup_parent="/testbed-c-h1")
    old = machines.dockerd_argv(19, cgroup_parent="/testbed-c-h1")
    assert "--tls=false" in new and "--tls=false" not in old
    assert new[new.index("--cgroup-parent") + 1] == "/testbed-c-h1"
    assert f"tcp://0.0.0.0:{machines.ENGINE_PORT}" in new


def test_the_engine_version_is_read_from_its_banner() -> None:
    assert machines.dockerd_version("Docker version 20.10.24+dfsg1, build 5d6db84\n") == 20
    assert machines.dockerd_version("Docker version 26.1.5+dfsg1, build a72d7cd") == 26
    assert machines.dockerd_version("dockerd: not found") == 0


def test_cgroup_v1_binds_the_hierarchy_and_v2_does_not() -> None:
    assert machines.cgroup_binds("1") == {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
    assert machines.cgroup_binds("2") == {}


def test_the_underlay_takes_the_first_free_block() -> None:
    assert machines.free_subnet([]) == "198.18.0.0/24"
    assert machines.free_subnet(["172.17.0.0/16", "198.18.0.0/24", "198.18.1.0/24", "fd00::/64"]) == "198.18.2.0/24"
    with pytest.raises(MachineError, match="no free"):
        machines.free_subnet(["198.18.0.0/15"])


def test_machine_addresses_are_fixed_by_number() -> None:
    assert machines.machine_address("172.30.4.0/24", "h1") == "172.30.4.11"
    assert machines.machine_address("172.30.4.0/24", "h9") == "172.30.4.19"


def test_the_inner_pool_never_overlaps_an_underlay() -> None:
    import ipaddress

    assert not ipaddress.ip_network(machines.INNER_POOL).overlaps(machines.UNDERLAY_RANGE)


def test_machine_and_cluster_names_are_checked() -> None:
    assert machines.check_machine("h2", ["h1", "h2"]) == "h2"
    with pytest.raises(MachineError, match="machines: h1, h2, h10"):
        machines.check_machine("h3", ["h10", "h2", "h1"])
    with pytest.raises(MachineError, match="no machine 'vm1'"):
        machines.check_machine("vm1")
    with pytest.raises(MachineError, match="--name"):
        machines.check_cluster_name("Bad_Name")
    assert machines.container_name("cluster", "h2") == "testbed-cluster-h2"
    assert machines.cgroup_parent("cluster", "h2") == "/testbed-cluster-h2"


def test_the_engine_map_of_real_machines() -> None:
    assert machines.parse_engine_map("vm1=ssh://me@vm1, vm2=tcp://10.0.0.2:2376") == {
        "vm1": "ssh://me@vm1",
        "vm2": "tcp://10.0.0.2:2376",
    }
    assert machines.parse_engine_map("") == {}
    with pytest.raises(MachineError, match="LAB_MACHINES"):
        machines.parse_engine_map("vm1:ssh://me@vm1")


def test_a_registered_machine_wins_over_the_environment() -> None:
    machines.register({"h7": "tcp://127.0.0.1:1"})
    assert machines.engine_url("h7", {"LAB_MACHINES": "h7=tcp://elsewhere:2"}) == "tcp://127.0.0.1:1"
    assert machines.engine_url("vm5", {"LAB_MACHINES": "vm5=ssh://me@vm5"}) == "ssh://me@vm5"


def test_moves_say_where_each_stranded_task_went() -> None:
    before = {"s_chat": "h3", "s_echo": "h2", "s_doctor": "h3"}
    assert machines.stranded(before, "h3") == ["s_chat", "s_doctor"]
    now = {"s_chat": "h1", "s_echo": "h2", "s_doctor": None}
    moved = machines.moves(["s_chat", "s_doctor"], "h3", now, {"s_chat": 7.25})
    assert moved == [Move("s_chat", "h3", "h1", 7.25), Move("s_doctor", "h3", None, None)]
    assert moved[0].describe() == "s_chat: h3 -> h1 in 7.2 s"
    assert moved[1].describe() == "s_doctor: was on h3, not running anywhere yet"
    # Still on the stopped machine (Swarm has not noticed yet) is not a move.
    assert machines.moves(["s_chat"], "h3", {"s_chat": "h3"}, {})[0].after is None


def test_partition_rules_and_their_listing_agree() -> None:
    added = machines.partition_commands("172.30.0.13", add=True)
    assert [argv[3] for argv in added] == ["INPUT", "OUTPUT"] and all(argv[2] == "-I" for argv in added)
    assert all(argv[2] == "-D" for argv in machines.partition_commands("172.30.0.13", add=False))
    listing = (
        "-P INPUT ACCEPT\n"
        "-A INPUT -s 172.30.0.13/32 -m comment --comment testbed-cluster -j DROP\n"
        "-A OUTPUT -d 172.30.0.13/32 -m comment --comment testbed-cluster -j DROP\n"
        "-A INPUT -s 10.0.0.9/32 -j DROP\n"
    )
    assert machines.dropped_peers(listing) == ["172.30.0.13"]
