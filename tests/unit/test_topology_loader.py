"""The topology loader: valid files become models; every mistake is one line naming file, line, field and fix."""

from __future__ import annotations

import json
import re
import textwrap
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from common import units
from lab import shapes
from lab.catalogue import SERVICES
from lab.loader import TopologyError, load, load_text
from lab.model import Impairment, Route

ROOT = Path(__file__).resolve().parents[2]
IMPAIR_FIELDS = ("delay", "jitter", "loss", "rate")
TOPOLOGIES = sorted((ROOT / "topology").glob("*.yaml"))

TWO_LANS = """\
name: t
networks:
  - name: a
    subnet: 10.1.1.0/24
  - name: b
    subnet: 10.1.2.0/24
routers:
  - name: gw
    networks: {a: 10.1.1.254, b: 10.1.2.254}
nodes:
  - name: client
    service: client
    networks: [a]
  - name: daytime
    service: daytime
    networks: [b]
"""


def problems(text: str) -> list[str]:
    """Every problem line the loader reports for ``text`` (read as ``bad.yaml``)."""
    with pytest.raises(TopologyError) as caught:
        load_text(textwrap.dedent(text), source="bad.yaml")
    return [str(p) for p in caught.value.problems]


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- valid files


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_shipped_topology_loads(path: Path) -> None:
    topology = load(path)
    assert topology.name == path.stem
    assert topology.nodes


def test_default_is_one_network_with_every_service() -> None:
    topology = load(ROOT / "topology" / "default.yaml")
    assert topology.project == "testbed"
    assert [n.name for n in topology.networks] == ["lab"]
    assert {n.service for n in topology.nodes} == set(SERVICES)
    daytime = topology.member("daytime")
    assert daytime is not None
    assert [(p.host, p.container, p.protocol) for p in daytime.publish] == [(10013, 13, "tcp"), (10013, 13, "udp")]


def test_two_lans_routes_and_names_cross_the_router() -> None:
    topology = load_text(TWO_LANS, source="t.yaml")
    client, daytime = topology.member("client"), topology.member("daytime")
    assert client is not None and daytime is not None
    assert topology.project == "testbed-t"
    assert topology.routes(client) == (Route(IPv4Network("10.1.2.0/24"), IPv4Address("10.1.1.254")),)
    assert topology.routes(daytime) == (Route(IPv4Network("10.1.1.0/24"), IPv4Address("10.1.2.254")),)
    # Addresses the file left out are assigned: hosts from the tenth address up.
    assert topology.remote_hosts(client) == (("daytime", IPv4Address("10.1.2.10")),)


def test_routes_reach_across_two_routers() -> None:
    topology = load(ROOT / "topology" / "wan.yaml")
    client, gw_b = topology.member("client"), topology.member("gw-b")
    assert client is not None and gw_b is not None
    gateways = {str(r.destination): str(r.gateway) for r in topology.routes(client)}
    assert gateways == {"10.72.0.0/29": "10.72.1.254", "10.72.2.0/24": "10.72.1.254"}
    assert {str(r.destination): str(r.gateway) for r in topology.routes(gw_b)} == {"10.72.1.0/24": "10.72.0.2"}


def test_impairments_per_node_and_per_link() -> None:
    topology = load_text(
        TWO_LANS.replace(
            "networks: {a: 10.1.1.254, b: 10.1.2.254}",
            "networks: {a: 10.1.1.254, b: {address: 10.1.2.254, impair: {delay: 40ms, loss: 2%}}}\n"
            "    impair: {delay: 1s, jitter: 250us, rate: 512kbit}",
        ),
        source="t.yaml",
    )
    router = topology.member("gw")
    assert router is not None
    assert router.impair == Impairment(delay_ms=1000, jitter_ms=0.25, loss_pct=0, rate_kbit=512)
    link = router.attachment("b")
    assert link is not None and link.impair == Impairment(delay_ms=40, loss_pct=2)


def test_publish_forms() -> None:
    topology = load_text(
        """\
        name: p
        networks: [lab]
        nodes:
          - {name: a, service: daytime, publish: true}
          - {name: b, service: echo, publish: ["20007/udp", "18080:8080"]}
        """.replace("        ", ""),
        source="p.yaml",
    )
    a, b = topology.member("a"), topology.member("b")
    assert a is not None and b is not None
    assert [p.compose() for p in a.publish] == ["127.0.0.1:10013:13/tcp", "127.0.0.1:10013:13/udp"]
    assert [p.compose() for p in b.publish] == ["127.0.0.1:20007:7/udp", "127.0.0.1:18080:8080/tcp"]


def test_a_lone_network_may_be_left_out() -> None:
    topology = load_text("name: x\nnetworks: [lab]\nnodes:\n  - {name: echo, service: echo}\n", source="x.yaml")
    assert topology.nodes[0].networks == ("lab",)


# --------------------------------------------------------------------------- each mistake, with its line


def test_unknown_service_lists_the_valid_ones_and_the_closest() -> None:
    line = one_problem("name: x\nnetworks: [lab]\nnodes:\n  - name: web\n    service: daytme\n")
    assert line.startswith("bad.yaml:5: nodes.web.service: unknown service 'daytme'; write 'daytime' instead")
    assert "asyncio, chat, client, creosote" in line


def test_duplicate_hostname() -> None:
    line = one_problem(
        "name: x\nnetworks: [lab]\nnodes:\n  - {name: echo, service: echo}\n  - {name: echo, service: daytime}\n"
    )
    assert line == (
        "bad.yaml:5: nodes.echo.name: duplicate hostname 'echo' (also at line 4); "
        "give each node and router its own name"
    )


def test_address_outside_its_subnet() -> None:
    line = one_problem(TWO_LANS.replace("networks: [b]", "networks: {b: 10.1.3.7}"))
    assert line == (
        "bad.yaml:16: nodes.daytime.networks.b: 10.1.3.7 is outside b's subnet 10.1.2.0/24; "
        "write an address in 10.1.2.0/24, like 10.1.2.10"
    )


def test_gateway_address_is_refused() -> None:
    line = one_problem(TWO_LANS.replace("networks: [b]", "networks: {b: 10.1.2.1}"))
    assert "10.1.2.1 is Docker's gateway in 10.1.2.0/24" in line and line.startswith("bad.yaml:16:")


def test_unknown_network_suggests_the_closest() -> None:
    line = one_problem("name: x\nnetworks: [lan-a]\nnodes:\n  - name: web\n    service: echo\n    networks: [lan-b]\n")
    assert line == (
        "bad.yaml:6: nodes.web.networks.lan-b: unknown network 'lan-b'; write 'lan-a' instead (valid networks: lan-a)"
    )


def test_unreachable_node_without_a_router() -> None:
    text = TWO_LANS.replace("routers:\n  - name: gw\n    networks: {a: 10.1.1.254, b: 10.1.2.254}\n", "")
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:")
    assert "cannot reach" in found[0] and "no router joins them; add a router with networks: [" in found[0]


DURATION_FIX = "write a duration like 80ms, 1s, 1.5s or 250us"
PERCENT_FIX = "write a percentage from 0% to 100%, like 5% or 0.5%"
RATE_FIX = "write a rate like 1mbit, 512kbit or 1gbit (bits per second; kibit, mibit, gibit are the binary ones)"
IMPAIRED = "name: x\nnetworks: [lab]\nnodes:\n  - name: web\n    service: echo\n    impair:\n      {field}: {value}\n"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("delay", "80", f"'80' is not a duration; {DURATION_FIX}"),
        ("delay", "fast", f"'fast' is not a duration; {DURATION_FIX}"),
        ("delay", "[80ms]", f"expected a single value, found a list; {DURATION_FIX}"),
        ("delay", "1" * 400 + "s", f"'{'1' * 400}s' is too large; {DURATION_FIX}"),
        ("loss", "5", f"'5' is not a percentage; {PERCENT_FIX}"),
        ("loss", "150%", f"'150%' is not a percentage; {PERCENT_FIX}"),
        ("rate", "1mb", f"'1mb' is not a rate; {RATE_FIX}"),
        ("rate", "0", f"'0' is not a rate; {RATE_FIX}"),
        # Above 0 as written, 0 once scaled to kbit/s: the model refuses a rate of 0, so the loader must too.
        ("rate", "0." + "0" * 320 + "1bit", f"'0.{'0' * 320}1bit' is too small; {RATE_FIX}"),
    ],
)
def test_bad_units(field: str, value: str, message: str) -> None:
    assert one_problem(IMPAIRED.format(field=field, value=value)) == f"bad.yaml:7: nodes.web.impair.{field}: {message}"


def test_a_rate_in_bytes_is_refused_as_on_the_command_line() -> None:
    """tc reads mbps as megabytes per second; the file and ``lab impair --rate`` give the same explanation."""
    with pytest.raises(units.UnitError) as caught:
        units.parse_rate_kbit("10mbps")
    explanation = f"{caught.value}; {caught.value.fix}"
    assert one_problem(IMPAIRED.format(field="rate", value="10mbps")) == (
        f"bad.yaml:7: nodes.web.impair.rate: {explanation}"
    )
    assert "write 10mbit for 10 mbit/s, or 80mbit if you meant megabytes" in explanation
    with pytest.raises(ValueError, match=re.escape(caught.value.explained())):
        Impairment.parse(rate="10mbps")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("delay", "250\u00b5s", Impairment(delay_ms=0.25)),  # the micro sign, as on the command line
        ("delay", "250us", Impairment(delay_ms=0.25)),
        ("delay", "0", Impairment()),
        ("loss", "0", Impairment()),
        ("loss", "0.5%", Impairment(loss_pct=0.5)),
        ("rate", "10Mbit", Impairment(rate_kbit=10_000)),
        ("rate", "8kibit", Impairment(rate_kbit=8.192)),
    ],
)
def test_units_as_on_the_command_line(field: str, value: str, expected: Impairment) -> None:
    topology = load_text(IMPAIRED.format(field=field, value=value), source="x.yaml")
    assert topology.nodes[0].impair == expected == Impairment.parse(**{field: value})


def test_jitter_needs_a_delay() -> None:
    line = one_problem(
        "name: x\nnetworks: [lab]\nnodes:\n  - name: web\n    service: echo\n    impair: {jitter: 5ms}\n"
    )
    assert line.startswith("bad.yaml:6: nodes.web.impair.jitter: jitter without a delay; add delay:")


def test_jitter_with_a_zero_delay_is_reported_not_raised() -> None:
    line = one_problem(IMPAIRED.format(field="delay", value="0\n      jitter: 5ms"))
    assert line.startswith("bad.yaml:8: nodes.web.impair.jitter: jitter without a delay; add delay:")


def test_a_refused_delay_is_not_also_a_missing_one() -> None:
    line = one_problem(IMPAIRED.format(field="delay", value="fast\n      jitter: 5ms"))
    assert line == f"bad.yaml:7: nodes.web.impair.delay: 'fast' is not a duration; {DURATION_FIX}"


def test_unknown_keys_suggest_the_closest() -> None:
    found = problems("name: x\nnetwork: [lab]\nnodes:\n  - name: web\n    sevice: echo\n")
    # A misspelt required key is reported once, as unknown, not also as missing.
    assert len(found) == 2, found
    assert found[0].startswith("bad.yaml:2: network: unknown key; write 'networks' instead")
    assert found[1].startswith("bad.yaml:5: nodes.web.sevice: unknown key; write 'service' instead")


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems(
        """\
        name: Bad Name
        networks:
          - name: a
            subnet: 10.0.0.1/24
        nodes:
          - name: web
            service: nope
            networks: [a]
            publish: [99999]
          - name: web
            service: echo
            networks: [a]
            impair: {loss: lots}
        """
    )
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)
    assert len(found) == 6, found  # the bad lab name does not stop the other checks
    text = "\n".join(found)
    for expected in (
        "bad.yaml:1: name: 'Bad Name' is not allowed here",
        "bad.yaml:4: networks.a.subnet: '10.0.0.1/24' has host bits set",
        "write 10.0.0.0/24",
        "bad.yaml:7: nodes.web.service: unknown service 'nope'",
        "bad.yaml:9: nodes.web.publish: '99999': ports run from 1 to 65535",
        "bad.yaml:10: nodes.web.name: duplicate hostname 'web'",
        "bad.yaml:13: nodes.web.impair.loss: 'lots' is not a percentage",
    ):
        assert expected in text


def test_yaml_syntax_error_names_its_line() -> None:
    line = one_problem("name: x\nnetworks: [lab\nnodes: []\n")
    assert line.startswith("bad.yaml:3: (yaml): not valid YAML")


def test_a_control_character_is_a_problem_not_a_traceback() -> None:
    line = one_problem('name: x\nnetworks: [lab]\nnodes:\n  - {name: a, service: echo, command: "a\x01b"}\n')
    assert line.startswith("bad.yaml:4: (yaml): not valid YAML: character #x0001 (special characters are not allowed)")


def test_nesting_too_deep_for_the_yaml_reader_is_a_problem() -> None:
    line = one_problem("name: x\nnetworks: " + "[" * 5000 + "]" * 5000 + "\n")
    assert line.startswith("bad.yaml:1: (yaml): lists and mappings nested too deeply to read")


def test_a_port_of_thousands_of_digits_is_out_of_range() -> None:
    port = "9" * 5000  # more digits than Python's int() takes from a string
    line = one_problem(f"name: x\nnetworks: [lab]\nnodes:\n  - {{name: a, service: echo, publish: ['{port}']}}\n")
    assert line == f"bad.yaml:4: nodes.a.publish: '{port}': ports run from 1 to 65535; write a port in that range"


@given(st.sampled_from(TOPOLOGIES), st.floats(min_value=0, max_value=1), st.text())
def test_a_file_with_anything_inserted_loads_or_names_its_problems(path: Path, where: float, inserted: str) -> None:
    """A traceback is a bug: whatever the text, the answer is a topology or a ``TopologyError``."""
    text = path.read_text(encoding="utf-8")
    at = int(where * len(text))
    try:
        load_text(text[:at] + inserted + text[at:], source="bad.yaml")
    except TopologyError as exc:
        assert exc.problems


def test_missing_file_is_a_problem_too(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load(tmp_path / "nope.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}:1: (file): cannot read it")


def test_router_needs_subnets_and_two_networks() -> None:
    found = problems(
        "name: x\nnetworks: [a, b]\nrouters:\n  - name: gw\n    networks: [a]\n"
        "nodes:\n  - {name: e, service: echo, networks: [a]}\n"
    )
    assert any("a router joins two or more networks" in p and p.startswith("bad.yaml:5:") for p in found)
    assert any("router on network 'a', which has no subnet" in p for p in found)


def test_duplicate_host_port() -> None:
    line = one_problem(
        "name: x\nnetworks: [lab]\nnodes:\n  - {name: a, service: echo, publish: [10007]}\n"
        "  - {name: b, service: echo, publish: ['10007/udp']}\n"
    )
    assert line == "bad.yaml:5: nodes.b.publish: host port 10007/udp is already published by a; pick another host port"


def test_sexagesimal_port_is_read_as_written() -> None:
    """YAML 1.1 reads 10013:13 as a base-60 number; the loader reads the text the user wrote."""
    topology = load_text(
        "name: x\nnetworks: [lab]\nnodes:\n  - {name: a, service: daytime, publish: [10013:13]}\n", source="x"
    )
    assert topology.nodes[0].publish[0].host == 10013


# --------------------------------------------------------------------------- units and the schema


NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**9).map(str),
    st.decimals(min_value=0, max_value=10**6, places=4).map(str),
    st.sampled_from(["0", "00", ".5", "5.", "0.0", "", "-1", "1e3", "1_000", "1" * 400, "0." + "0" * 320 + "1"]),
)
UNIT_NAMES = st.sampled_from(
    ["", "us", "\u00b5s", "\u03bcs", "ms", "MS", "s", "%", "bit", "kbit", "Mbit", "gbit", "kibit", "mbps", "kb", "x"]
)
SPACES = st.sampled_from(["", " ", "\t"])
QUANTITIES = st.builds(lambda *parts: "".join(parts), SPACES, NUMBERS, SPACES, UNIT_NAMES, SPACES)


def _yaml_string(text: str) -> str:
    """``text`` as a double-quoted YAML scalar that reads back exactly (every other character escaped)."""
    plain = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .%_-")
    return '"' + "".join(c if c in plain else f"\\U{ord(c):08x}" for c in text) + '"'


# An empty string on a command line means "not asked for"; in a file that is a key left out, so the
# property is about every string that is there.
@given(st.sampled_from(IMPAIR_FIELDS), st.one_of(QUANTITIES, st.text()).filter(bool))
@example("rate", "10mbps")
@example("delay", "250\u00b5s")
@example("loss", "0")
@example("jitter", "5ms")  # the model refuses jitter without a delay
@example("delay", "1" * 400 + "s")  # infinite once a float
@example("rate", "0." + "0" * 320 + "1bit")  # 0 once scaled to kbit/s
def test_a_file_reads_units_as_lab_impair_does(field: str, text: str) -> None:
    """For any string, ``impair: {field: text}`` and ``Impairment.parse(field=text)`` agree, value and all."""
    try:
        expected: Impairment | None = Impairment.parse(**{field: text})
    except ValueError:
        expected = None
    try:
        impair = load_text(IMPAIRED.format(field=field, value=_yaml_string(text)), source="x.yaml").nodes[0].impair
    except TopologyError as exc:
        assert expected is None, f"refused what lab impair accepts: {exc}"
        assert [p.field for p in exc.problems] == [f"nodes.web.impair.{field}"]
    else:
        assert impair == expected


def test_schema_documents_exactly_the_keys_the_loader_reads() -> None:
    schema = json.loads((ROOT / "topology" / "schema.json").read_text())
    defs = schema["$defs"]
    assert set(schema["properties"]) == set(shapes.TOP_KEYS)
    assert set(defs["node"]["properties"]) == set(shapes.NODE_KEYS)
    assert set(defs["router"]["properties"]) == set(shapes.ROUTER_KEYS)
    assert set(defs["impair"]["properties"]) == set(shapes.IMPAIR_KEYS)
    assert set(defs["network"]["oneOf"][1]["properties"]) == set(shapes.NETWORK_KEYS)
    assert defs["node"]["properties"]["service"]["enum"] == list(SERVICES)


def _schema_pattern(field: str) -> str:
    schema = json.loads((ROOT / "topology" / "schema.json").read_text(encoding="utf-8"))
    spec = schema["$defs"]["impair"]["properties"][field]
    return str(next(s for s in spec.get("anyOf", [spec]) if "pattern" in s)["pattern"])


@given(st.sampled_from(IMPAIR_FIELDS), QUANTITIES.filter(bool))
def test_the_schema_flags_no_unit_the_loader_takes(field: str, text: str) -> None:
    """An editor checking the schema must not flag what ``lab validate`` accepts (ranges are the loader's)."""
    try:
        Impairment.parse(**{field: text, **({"delay": "1ms"} if field == "jitter" else {})})
    except ValueError:
        return
    assert re.search(_schema_pattern(field), text), text


@pytest.mark.parametrize(("field", "text"), [("delay", "80"), ("loss", "5"), ("rate", "10mbps"), ("rate", "0")])
def test_the_schema_flags_a_missing_or_byte_unit(field: str, text: str) -> None:
    assert not re.search(_schema_pattern(field), text)


# --------------------------------------------------------------------------- placement (Swarm)

PLACED = "name: x\nnetworks: [lab]\nnodes:\n  - name: web\n    service: echo\n    placement:\n      {field}\n"


def test_placement_becomes_swarm_constraints() -> None:
    topology = load_text(
        PLACED.format(field="labels: {zone: east, rack.row: 3}\n      hostname: vm2.example\n      role: worker"),
        source="x.yaml",
    )
    placement = topology.nodes[0].placement
    assert placement is not None
    assert placement.constraints() == (
        "node.labels.zone == east",
        "node.labels.rack.row == 3",  # read as written: a YAML number is still the label's text
        "node.hostname == vm2.example",
        "node.role == worker",
    )


def test_no_placement_means_anywhere() -> None:
    topology = load_text("name: x\nnetworks: [lab]\nnodes:\n  - {name: a, service: echo}\n", source="x.yaml")
    assert topology.nodes[0].placement is None


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("role: boss", "bad.yaml:7: nodes.web.placement.role: unknown role 'boss'; write one of: manager, worker"),
        ("role: workr", "bad.yaml:7: nodes.web.placement.role: unknown role 'workr'; write 'worker' instead"),
        (
            "labels: {zone: 'east side'}",
            "bad.yaml:7: nodes.web.placement.labels.zone: 'east side' is not allowed here; "
            "write a value without spaces, '=' or '!', like east",
        ),
        (
            "labels: {'zone!': east}",
            "bad.yaml:7: nodes.web.placement.labels: 'zone!' is not allowed here; "
            "write a label key: letters, digits, '.', '_' and '-', like zone or rack.row",
        ),
        ("labels: {zone: }", "bad.yaml:7: nodes.web.placement.labels.zone: expected a single value, found nothing"),
        ("labels: [zone]", "bad.yaml:7: nodes.web.placement.labels: expected a mapping of node labels, found a list"),
        ("hostname: 'vm 2'", "bad.yaml:7: nodes.web.placement.hostname: 'vm 2' is not allowed here"),
        ("constraints: [x]", "bad.yaml:7: nodes.web.placement.constraints: unknown key; write one of: hostname,"),
        ("{}", "bad.yaml:7: nodes.web.placement: empty placement; write labels:, hostname: or role:"),
    ],
)
def test_bad_placement_names_its_line(field: str, expected: str) -> None:
    assert one_problem(PLACED.format(field=field)).startswith(expected)


def test_a_label_listed_twice() -> None:
    line = one_problem(PLACED.format(field="labels:\n        zone: east\n        zone: west"))
    assert line == "bad.yaml:9: nodes.web.placement.labels.zone: label listed twice; keep one value per label"


def test_schema_documents_the_placement_keys() -> None:
    schema = json.loads((ROOT / "topology" / "schema.json").read_text())
    assert set(schema["$defs"]["node"]["properties"]["placement"]["properties"]) == set(shapes.PLACEMENT_KEYS)
    assert schema["$defs"]["node"]["properties"]["placement"]["properties"]["role"]["enum"] == list(shapes.ROLES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (IMPAIRED.format(field="delay", value="100000s"), "nodes.web.impair.delay: 1e+08ms is more than 10s"),
        ("name: x\nnetworks: [{name: a, subnet: 10.0.0.0/8}]\nnodes:\n  - name: web\n    service: echo\n"
         "    networks: [a]\n", "networks.a.subnet: '10.0.0.0/8' is not an IPv4 subnet from /16 to /29"),
        ("name: x\nnetworks: [{name: a, subnet: 0.0.0.0/0}]\nnodes:\n  - name: web\n    service: echo\n"
         "    networks: [a]\n", "networks.a.subnet: '0.0.0.0/0' is not an IPv4 subnet"),
        ('name: x\nnetworks: [lab]\nnodes:\n  - name: "web\\n"\n    service: echo\n    networks: [lab]\n',
         "nodes[0].name: 'web\\n' is not allowed here"),
    ],
)  # fmt: skip
def test_hostile_files_are_refused_quickly_with_a_line(text: str, expected: str) -> None:
    with pytest.raises(TopologyError) as caught:
        load_text(text, source="bad.yaml")
    assert any(expected in str(p) for p in caught.value.problems), caught.value


def test_a_file_too_large_to_be_a_lab_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(TopologyError, match=r"big.yaml:1: \(file\): larger than 1024 KiB"):
        load(big)
