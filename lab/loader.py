"""Topology YAML → validated ``lab.model.Topology``, before any Docker call.

The file is composed into a YAML node tree (``yaml.compose``), not loaded into
plain dicts, so every value keeps the line it came from. Checking goes in two
passes: the shape of each entry (types, unknown keys, units), then what only
the whole lab can tell (unknown networks, duplicate hostnames, addresses
outside their subnet, nodes no router leads to). Every problem found is
reported, each as one line::

    topology/bad.yaml:12: nodes.web.service: unknown service 'daytme'; write one of: chat, ... (did you mean 'daytime'?)

The schema this enforces is documented in ``topology/schema.json``.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError, ip_network
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from common import units
from common.errors import TestbedError
from lab import model
from lab.catalogue import SERVICES, Service

TOP_KEYS = ("name", "description", "networks", "nodes", "routers")
NETWORK_KEYS = ("name", "subnet")
NODE_KEYS = ("name", "service", "networks", "publish", "command", "extra", "impair", "profiles", "placement")
ROUTER_KEYS = ("name", "networks", "impair")
ATTACHMENT_KEYS = ("address", "impair")
IMPAIR_KEYS = ("delay", "jitter", "loss", "rate")
# How each impairment key is read: the same parsers as `lab impair --delay/--jitter/--loss/--rate`.
IMPAIR_UNITS: dict[str, tuple[Callable[[str], float], str]] = {
    "delay": (units.parse_duration_ms, units.DURATION_FORMS),
    "jitter": (units.parse_duration_ms, units.DURATION_FORMS),
    "loss": (units.parse_percent, units.PERCENT_FORMS),
    "rate": (units.parse_rate_kbit, units.RATE_FORMS),
}
PLACEMENT_KEYS = ("labels", "hostname", "role")
ROLES = ("manager", "worker")

LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # one RFC 1123 label
NETWORK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
PORT_SPEC = re.compile(r"^(\d+)(?::(\d+))?(?:/(tcp|udp))?$")
# Swarm node labels and their values, kept to what a constraint expression cannot misread (no spaces, =, !).
NODE_LABEL_KEY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
NODE_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")
MACHINE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")  # a host name, dots allowed
RESERVED_SUFFIX = "-routes"  # the route sidecar of node X is the Compose service X-routes


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topology file, where it is, and what to write instead."""

    file: str
    line: int
    field: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.what}; {self.fix}"


class TopologyError(TestbedError):
    """A topology file that cannot become a lab; ``problems`` lists every reason, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- drafts (pass 1 output)


@dataclass
class _Attach:
    network: str
    line: int
    where: str
    address: IPv4Address | None = None
    impair: model.Impairment | None = None


@dataclass
class _Member:
    name: str
    line: int
    where: str
    is_router: bool
    attachments: list[_Attach] = field(default_factory=list)
    service: str = "router"
    publish: list[tuple[model.Port, int]] = field(default_factory=list)
    command: tuple[str, ...] | None = None
    extra: tuple[tuple[str, ...], ...] = ()
    impair: model.Impairment | None = None
    profiles: tuple[str, ...] = ()
    placement: model.Placement | None = None
    networks_line: int = 0


# --------------------------------------------------------------------------- the reader


class _Reader:
    """Walks the YAML node tree, collecting problems instead of stopping at the first."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, node: Node | int, where: str, what: str, fix: str) -> None:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        self.problems.append(Problem(self.file, line, where, what, fix))

    def mapping(
        self, node: Node, where: str, keys: tuple[str, ...], *, required: tuple[str, ...] = ()
    ) -> dict[str, Node]:
        """A mapping's values by key; unknown and duplicate keys reported with the closest valid key."""
        if not isinstance(node, MappingNode):
            self.fail(
                node, where, f"expected a mapping of {', '.join(keys)}, found {_kind(node)}", "write key: value lines"
            )
            return {}
        values: dict[str, Node] = {}
        misspelt: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = key if where == "(top)" else f"{where}.{key}"
            if key in values:
                self.fail(
                    key_node,
                    path,
                    "duplicate key",
                    f"keep one '{key}' (the first is at line {values[key].start_mark.line + 1})",
                )
            elif key not in keys:
                self.fail(key_node, path, "unknown key", _suggest(key, keys, "key"))
                misspelt.update(difflib.get_close_matches(key, keys, n=1, cutoff=0.6))
            else:
                values[key] = value_node
        for key in required:
            if key not in values and key not in misspelt:  # a misspelt key is reported once, as unknown
                self.fail(node, where, f"'{key}' is missing", f"add {key}: ...")
        return values

    def sequence(self, node: Node, where: str, what: str) -> list[Node]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        self.fail(node, where, f"expected a list of {what}, found {_kind(node)}", f"write one '- ...' line per {what}")
        return []

    def text(self, node: Node, where: str, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str | None:
        """A scalar as the user wrote it (so ``10013:13`` is not read as a YAML 1.1 base-60 number)."""
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.fail(node, where, f"expected a single value, found {_kind(node)}", hint or "write a plain value")
            return None
        value = str(node.value)
        if pattern is not None and not pattern.match(value):
            self.fail(node, where, f"{value!r} is not allowed here", hint)
            return None
        return value

    def quantity(self, node: Node, where: str, parse: Callable[[str], float], *, forms: str) -> float | None:
        """A number with its unit, read by one of ``common.units``' parsers, so a file and a command line agree.

        A refusal is the grammar's own: ``UnitError``'s message, then its fix.
        ``forms`` (like ``units.DURATION_FORMS``) is the hint when the value is
        not a single scalar at all.
        """
        text = self.text(node, where, hint=f"write {forms}")
        if text is None:
            return None
        try:
            value = parse(text)
        except units.UnitError as exc:
            self.fail(node, where, str(exc), exc.fix)
            return None
        if not math.isfinite(value):  # hundreds of digits overflow a float; no model takes infinity
            self.fail(node, where, f"{text!r} is too large", f"write {forms}")
            return None
        return value


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing"
    return f"{node.value!r}"


def _suggest(value: str, valid: tuple[str, ...] | list[str], noun: str) -> str:
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.6)
    listing = ", ".join(sorted(valid))
    if close:
        return f"write '{close[0]}' instead (valid {noun}s: {listing})"
    return f"write one of: {listing}"


# --------------------------------------------------------------------------- pass 1: shapes


def _read_impair(reader: _Reader, node: Node, where: str) -> model.Impairment | None:
    """An impairment in ``common.units``' grammar; ``None`` when absent or when any part of it is reported."""
    values = reader.mapping(node, where, IMPAIR_KEYS)
    read: dict[str, float] = {}
    for key, (parse, forms) in IMPAIR_UNITS.items():
        if key in values:
            value = reader.quantity(values[key], f"{where}.{key}", parse, forms=forms)
            if value is not None:
                read[key] = value
    if read.get("jitter") and not read.get("delay") and ("delay" in read or "delay" not in values):
        # A delay that is there but refused is reported on its own line; "add delay:" would mislead.
        reader.fail(
            values["jitter"],
            f"{where}.jitter",
            "jitter without a delay",
            "add delay: (netem varies the delay by the jitter), e.g. delay: 80ms",
        )
        return None
    if read.get("rate") == 0:  # above 0 as written, yet below the smallest float once scaled to kbit/s
        text = values["rate"].value
        reader.fail(values["rate"], f"{where}.rate", f"{text!r} is too small", f"write {units.RATE_FORMS}")
        return None
    if not values or len(read) < len(values):
        return None
    # What Impairment.__post_init__ refuses is refused above, with a line: the parsers give finite values
    # (Reader.quantity) of 0 or more, loss up to 100 and a rate above 0; jitter comes with a delay.
    return model.Impairment(
        delay_ms=read.get("delay", 0.0),
        jitter_ms=read.get("jitter", 0.0),
        loss_pct=read.get("loss", 0.0),
        rate_kbit=read.get("rate"),
    )


def _read_address(reader: _Reader, node: Node, where: str) -> IPv4Address | None:
    text = reader.text(node, where, hint="write an IPv4 address like 10.0.1.20")
    if text is None:
        return None
    try:
        return IPv4Address(text)
    except AddressValueError:
        reader.fail(node, where, f"{text!r} is not an IPv4 address", "write one like 10.0.1.20")
        return None


def _read_attachments(reader: _Reader, node: Node, where: str) -> list[_Attach]:
    """``[lan-a, lan-b]``, or ``{lan-a: 10.0.1.5, lan-b: {address: ..., impair: {...}}}``."""
    attachments = []
    if isinstance(node, SequenceNode):
        for item in node.value:
            name = reader.text(item, where, pattern=NETWORK_NAME, hint="write a network name from networks:")
            if name is not None:
                attachments.append(_Attach(name, item.start_mark.line + 1, f"{where}.{name}"))
        return attachments
    if not isinstance(node, MappingNode):
        reader.fail(
            node,
            where,
            f"expected a list of networks or a mapping network: address, found {_kind(node)}",
            "write networks: [lan-a] or networks: {lan-a: 10.0.1.5}",
        )
        return attachments
    for key_node, value in node.value:
        name = str(key_node.value)
        here = f"{where}.{name}"
        attach = _Attach(name, key_node.start_mark.line + 1, here)
        if isinstance(value, MappingNode):
            values = reader.mapping(value, here, ATTACHMENT_KEYS)
            if "address" in values:
                attach.address = _read_address(reader, values["address"], f"{here}.address")
            if "impair" in values:
                attach.impair = _read_impair(reader, values["impair"], f"{here}.impair")
        elif not (isinstance(value, ScalarNode) and value.tag == "tag:yaml.org,2002:null"):
            attach.address = _read_address(reader, value, here)
        attachments.append(attach)
    return attachments


def _read_command(reader: _Reader, node: Node, where: str) -> tuple[str, ...] | None:
    """A command as a list of words, or one string split like a shell would (no shell runs it)."""
    if isinstance(node, ScalarNode) and node.tag != "tag:yaml.org,2002:null":
        try:
            words = tuple(shlex.split(str(node.value)))
        except ValueError as exc:
            reader.fail(node, where, f"cannot split the command ({exc})", "write it as a list: [python3, -m, ...]")
            return None
    else:
        words = tuple(
            w for w in (reader.text(item, where) for item in reader.sequence(node, where, "words")) if w is not None
        )
    if not words:
        reader.fail(node, where, "empty command", "write a command like [python3, -m, services.echo]")
        return None
    return words


def _read_publish(reader: _Reader, node: Node, where: str, service: str) -> list[tuple[model.Port, int]]:
    """``true`` (10000 + each port), or a list of ``HOST`` or ``HOST:CONTAINER``, each with an optional ``/udp``."""
    spec = SERVICES.get(service)
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        if node.value.lower() not in {"true", "yes", "on"} or spec is None:
            return []
        line = node.start_mark.line + 1
        return [
            (model.Port(10000 + port.number, port.number, proto), line)
            for port in spec.ports
            for proto in port.protocols
        ]
    ports = []
    for item in reader.sequence(node, where, "ports"):
        text = reader.text(
            item,
            where,
            pattern=PORT_SPEC,
            hint="write HOST, HOST:CONTAINER or HOST:CONTAINER/udp, like 10013 or 18080:8080/tcp",
        )
        if text is None:
            continue
        ports += _expand_port(reader, item, where, text, spec)
    return ports


def _expand_port(
    reader: _Reader, item: Node, where: str, text: str, spec: Service | None
) -> list[tuple[model.Port, int]]:
    match = PORT_SPEC.match(text)
    assert match is not None
    host, container_text, proto = match.groups()
    line = item.start_mark.line + 1
    service_ports = spec.ports if spec is not None else ()
    if not all(0 < int(p) < 65536 for p in (host, container_text or "1")):
        reader.fail(item, where, f"{text!r}: ports run from 1 to 65535", "write a port in that range")
        return []
    if container_text is None and not service_ports:
        if spec is not None:  # an unknown service is reported on its own line
            reader.fail(
                item, where, f"{spec.name} has no port to map {host} to", "write HOST:CONTAINER, like 18080:8080"
            )
        return []
    container = int(container_text) if container_text else service_ports[0].number
    known = next((p.protocols for p in service_ports if p.number == container), ("tcp",))
    protocols = (proto,) if proto else known
    return [(model.Port(int(host), container, p), line) for p in protocols]


def _peek_name(node: Node) -> str | None:
    """The entry's name, when it has a valid one, so even its other keys' errors can say whose they are."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if key.value == "name" and isinstance(value, ScalarNode) and HOSTNAME.match(str(value.value)):
                return str(value.value)
    return None


def _read_member(reader: _Reader, node: Node, index: int, *, router: bool) -> _Member | None:
    section = "routers" if router else "nodes"
    keys = ROUTER_KEYS if router else NODE_KEYS
    label = _peek_name(node)
    values = reader.mapping(
        node,
        f"{section}.{label}" if label else f"{section}[{index}]",
        keys,
        required=("name", "networks") if router else ("name", "service"),
    )
    if "name" not in values:
        return None
    name = reader.text(
        values["name"],
        f"{section}[{index}].name",
        pattern=HOSTNAME,
        hint="write a hostname: lowercase letters, digits and '-', like web-1",
    )
    if name is None:
        return None
    where = f"{section}.{name}"
    if name.endswith(RESERVED_SUFFIX):
        reader.fail(
            values["name"],
            f"{where}.name",
            f"names ending in '{RESERVED_SUFFIX}' are reserved for route helpers",
            "choose another name",
        )
    member = _Member(name, node.start_mark.line + 1, where, router)
    if "networks" in values:
        member.networks_line = values["networks"].start_mark.line + 1
        member.attachments = _read_attachments(reader, values["networks"], f"{where}.networks")
    if "impair" in values:
        member.impair = _read_impair(reader, values["impair"], f"{where}.impair")
    if not router:
        _read_host_fields(reader, member, values, where)
    return member


def _read_host_fields(reader: _Reader, member: _Member, values: dict[str, Node], where: str) -> None:
    if "service" in values:
        service = reader.text(values["service"], f"{where}.service", hint=_suggest("", list(SERVICES), "service"))
        if service is not None and service not in SERVICES:
            extra = " (routers are declared under routers:)" if service == "router" else ""
            reader.fail(
                values["service"],
                f"{where}.service",
                f"unknown service {service!r}{extra}",
                _suggest(service, list(SERVICES), "service"),
            )
        member.service = service if service in SERVICES else ""
    if "publish" in values:
        member.publish = _read_publish(reader, values["publish"], f"{where}.publish", member.service)
    if "command" in values:
        member.command = _read_command(reader, values["command"], f"{where}.command")
    if "extra" in values:
        commands = (
            _read_command(reader, item, f"{where}.extra")
            for item in reader.sequence(values["extra"], f"{where}.extra", "commands")
        )
        member.extra = tuple(c for c in commands if c is not None)
    if "profiles" in values:
        items = reader.sequence(values["profiles"], f"{where}.profiles", "profile names")
        hint = "write a profile name like models or tools"
        profiles = (reader.text(item, f"{where}.profiles", pattern=PROFILE_NAME, hint=hint) for item in items)
        member.profiles = tuple(p for p in profiles if p is not None)
    if "placement" in values:
        member.placement = _read_placement(reader, values["placement"], f"{where}.placement")


def _read_placement(reader: _Reader, node: Node, where: str) -> model.Placement | None:
    """``{labels: {zone: east}, hostname: vm2, role: worker}``: Swarm placement constraints, all of which must hold."""
    values = reader.mapping(node, where, PLACEMENT_KEYS)
    labels: list[tuple[str, str]] = []
    if "labels" in values:
        here = f"{where}.labels"
        if not isinstance(values["labels"], MappingNode) or not values["labels"].value:
            reader.fail(
                values["labels"],
                here,
                f"expected a mapping of node labels, found {_kind(values['labels'])}",
                "write labels: {zone: east} (set with docker node update --label-add zone=east NODE)",
            )
        else:
            for key_node, value_node in values["labels"].value:
                key = reader.text(
                    key_node,
                    here,
                    pattern=NODE_LABEL_KEY,
                    hint="write a label key: letters, digits, '.', '_' and '-', like zone or rack.row",
                )
                value = reader.text(
                    value_node,
                    f"{here}.{key_node.value}",
                    pattern=NODE_LABEL_VALUE,
                    hint="write a value without spaces, '=' or '!', like east",
                )
                if key is not None and key in dict(labels):
                    reader.fail(key_node, f"{here}.{key}", "label listed twice", "keep one value per label")
                elif key is not None and value is not None:
                    labels.append((key, value))
    hostname = None
    if "hostname" in values:
        hostname = reader.text(
            values["hostname"],
            f"{where}.hostname",
            pattern=MACHINE_NAME,
            hint="write a machine's host name as docker node ls shows it, like vm2",
        )
    role = None
    if "role" in values:
        role = reader.text(values["role"], f"{where}.role", hint="write manager or worker")
        if role is not None and role not in ROLES:
            reader.fail(values["role"], f"{where}.role", f"unknown role {role!r}", _suggest(role, ROLES, "role"))
            role = None
    if isinstance(node, MappingNode) and not node.value:
        reader.fail(node, where, "empty placement", "write labels:, hostname: or role:, or remove placement:")
    if not (labels or hostname or role):
        return None
    return model.Placement(labels=tuple(labels), hostname=hostname, role=role)


def _read_network(reader: _Reader, node: Node, index: int) -> tuple[model.Network, int] | None:
    line = node.start_mark.line + 1
    hint = "write a name: lowercase letters, digits, '-' and '_', like lan-a"
    if isinstance(node, ScalarNode):
        name = reader.text(node, f"networks[{index}]", pattern=NETWORK_NAME, hint=hint)
        return None if name is None else (model.Network(name), line)
    values = reader.mapping(node, f"networks[{index}]", NETWORK_KEYS, required=("name",))
    if "name" not in values:
        return None
    name = reader.text(values["name"], f"networks[{index}].name", pattern=NETWORK_NAME, hint=hint)
    if name is None:
        return None
    subnet = None
    if "subnet" in values:
        subnet = _read_subnet(reader, values["subnet"], f"networks.{name}.subnet")
    return model.Network(name, subnet), line


def _read_subnet(reader: _Reader, node: Node, where: str) -> IPv4Network | None:
    text = reader.text(node, where, hint="write an IPv4 CIDR like 10.0.1.0/24")
    if text is None:
        return None
    try:
        subnet = ip_network(text)
    except ValueError:
        try:
            fixed = ip_network(text, strict=False)
        except (ValueError, NetmaskValueError):
            reader.fail(node, where, f"{text!r} is not a CIDR subnet", "write one like 10.0.1.0/24")
            return None
        reader.fail(node, where, f"{text!r} has host bits set", f"write {fixed}")
        return None
    if not isinstance(subnet, IPv4Network) or subnet.prefixlen > 29:
        reader.fail(
            node,
            where,
            f"{text!r} is not an IPv4 subnet with room for nodes",
            "write a /29 or larger IPv4 subnet, like 10.0.1.0/24",
        )
        return None
    return subnet


# --------------------------------------------------------------------------- pass 2: the whole lab


@dataclass
class _Draft:
    name: str
    description: str
    networks: dict[str, tuple[model.Network, int]]
    members: list[_Member]


def _check_names(reader: _Reader, draft: _Draft) -> None:
    seen: dict[str, _Member] = {}
    for member in draft.members:
        if member.name in seen:
            first = seen[member.name]
            reader.fail(
                member.line,
                f"{member.where}.name",
                f"duplicate hostname {member.name!r} (also at line {first.line})",
                "give each node and router its own name",
            )
        else:
            seen[member.name] = member


def _check_attachments(reader: _Reader, draft: _Draft) -> None:
    names = list(draft.networks)
    for member in draft.members:
        if not member.attachments and not member.is_router and len(names) == 1:
            member.attachments = [_Attach(names[0], member.line, f"{member.where}.networks")]
        if not member.attachments and names:  # with no networks at all, that is the one problem reported
            reader.fail(
                member.line,
                f"{member.where}.networks",
                "the node is on no network",
                f"add networks: [{names[0] if names else 'lab'}]",
            )
        if member.is_router and len({a.network for a in member.attachments}) == 1:
            reader.fail(
                member.networks_line,
                f"{member.where}.networks",
                "a router joins two or more networks",
                "list every network it forwards between",
            )
        seen: set[str] = set()
        for attach in member.attachments:
            _check_attachment(reader, draft, member, attach, names, seen)


def _check_attachment(
    reader: _Reader, draft: _Draft, member: _Member, attach: _Attach, names: list[str], seen: set[str]
) -> None:
    if attach.network in seen:
        reader.fail(attach.line, attach.where, "network listed twice", "list each network once")
    seen.add(attach.network)
    if attach.network not in draft.networks:
        reader.fail(
            attach.line,
            attach.where,
            f"unknown network {attach.network!r}",
            _suggest(attach.network, names, "network") if names else "declare it under networks:",
        )
        return
    network = draft.networks[attach.network][0]
    if member.is_router and network.subnet is None:
        reader.fail(
            attach.line,
            attach.where,
            f"router on network {network.name!r}, which has no subnet",
            f"give networks.{network.name} a subnet (routes need it), like subnet: 10.0.1.0/24",
        )
    if attach.address is None:
        return
    subnet = network.subnet
    if subnet is None:
        reader.fail(
            attach.line,
            attach.where,
            f"static address on network {network.name!r}, which has no subnet",
            f"give networks.{network.name} a subnet, or drop the address",
        )
    elif attach.address not in subnet:
        reader.fail(
            attach.line,
            attach.where,
            f"{attach.address} is outside {network.name}'s subnet {subnet}",
            f"write an address in {subnet}, like {subnet.network_address + 10}",
        )
    elif attach.address in (subnet.network_address, subnet.broadcast_address, network.gateway):
        what = "Docker's gateway" if attach.address == network.gateway else "not a host address"
        reader.fail(
            attach.line,
            attach.where,
            f"{attach.address} is {what} in {subnet}",
            f"write another address in {subnet}, like {subnet.network_address + 10}",
        )


def _check_addresses_unique(reader: _Reader, draft: _Draft) -> None:
    taken: dict[tuple[str, IPv4Address], _Member] = {}
    for member in draft.members:
        for attach in member.attachments:
            if attach.address is None:
                continue
            key = (attach.network, attach.address)
            if key in taken:
                reader.fail(
                    attach.line,
                    attach.where,
                    f"{attach.address} is already {taken[key].name}'s on {attach.network}",
                    "give each node its own address",
                )
            taken[key] = member


def _check_subnets(reader: _Reader, draft: _Draft) -> None:
    networks = list(draft.networks.values())
    for i, (network, line) in enumerate(networks):
        for other, _ in networks[:i]:
            if network.subnet and other.subnet and network.subnet.overlaps(other.subnet):
                reader.fail(
                    line,
                    f"networks.{network.name}.subnet",
                    f"{network.subnet} overlaps {other.name}'s {other.subnet}",
                    "give each network its own subnet",
                )
        references = [a.network for m in draft.members for a in m.attachments]
        if all(r in draft.networks for r in references) and network.name not in references:
            reader.fail(
                line,
                f"networks.{network.name}",
                "no node or router is on this network",
                "attach a node to it, or remove it",
            )


def _check_ports(reader: _Reader, draft: _Draft) -> None:
    taken: dict[tuple[int, str], str] = {}
    for member in draft.members:
        for port, line in member.publish:
            key = (port.host, port.protocol)
            if key in taken and taken[key] != member.name:
                reader.fail(
                    line,
                    f"{member.where}.publish",
                    f"host port {port.host}/{port.protocol} is already published by {taken[key]}",
                    "pick another host port",
                )
            taken.setdefault(key, member.name)


def _check_reachable(reader: _Reader, draft: _Draft) -> None:
    """Every node must reach the others: networks joined through routers form one island."""
    parent = {name: name for name in draft.networks}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for router in (m for m in draft.members if m.is_router):
        known = [a.network for a in router.attachments if a.network in parent]
        for name in known[1:]:
            parent[root(name)] = root(known[0])
    islands: dict[str, list[_Member]] = {}
    for member in draft.members:
        for network in {root(a.network) for a in member.attachments if a.network in parent}:
            islands.setdefault(network, []).append(member)
    if len(islands) < 2:
        return
    main_root = max(islands, key=lambda r: sum(not m.is_router for m in islands[r]))  # first declared wins ties
    main = islands[main_root]
    main_networks = sorted(n for n in draft.networks if root(n) == main_root)
    for member in draft.members:
        if member in main or not any(a.network in parent for a in member.attachments):
            continue
        mine = sorted({a.network for a in member.attachments})
        reader.fail(
            member.networks_line or member.line,
            f"{member.where}.networks",
            f"{member.name} (on {', '.join(mine)}) cannot reach {main[0].name} "
            f"(on {', '.join(main_networks)}): no router joins them",
            f"add a router with networks: [{mine[0]}, {main_networks[0]}]",
        )


# --------------------------------------------------------------------------- assembly


def _assign_addresses(reader: _Reader, draft: _Draft) -> None:
    """Give every interface on a subnet a fixed address: routes and /etc/hosts entries need them before start.

    Routers count down from the top of the subnet, hosts up from the tenth
    address, so Docker's own dynamic picks (which start at .2) rarely collide.
    """
    for network, line in draft.networks.values():
        subnet = network.subnet
        if subnet is None:
            continue
        attached = [(m, a) for m in draft.members for a in m.attachments if a.network == network.name]
        taken = {a.address for _, a in attached if a.address is not None} | {network.gateway}
        start = 10 if subnet.num_addresses >= 64 else 2
        upward = (h for h in subnet.hosts() if int(h) - int(subnet.network_address) >= start)
        downward = reversed(list(subnet.hosts()))
        for member, attach in attached:
            if attach.address is None:
                attach.address = next((h for h in (downward if member.is_router else upward) if h not in taken), None)
                if attach.address is None:
                    reader.fail(
                        line,
                        f"networks.{network.name}.subnet",
                        f"{subnet} has no address left for {member.name}",
                        "use a larger subnet, like a /24",
                    )
                taken.add(attach.address)


def _build(draft: _Draft, source: Path) -> model.Topology:
    def member(m: _Member) -> model.Node:
        return model.Node(
            name=m.name,
            service=m.service,
            attachments=tuple(model.Attachment(a.network, a.address, a.impair) for a in m.attachments),
            publish=tuple(p for p, _ in m.publish),
            command=m.command,
            extra=m.extra,
            impair=m.impair,
            profiles=m.profiles,
            is_router=m.is_router,
            placement=m.placement,
        )

    return model.Topology(
        name=draft.name,
        source=source,
        description=draft.description,
        networks=tuple(n for n, _ in draft.networks.values()),
        nodes=tuple(member(m) for m in draft.members if not m.is_router),
        routers=tuple(member(m) for m in draft.members if m.is_router),
    )


def _read_document(reader: _Reader, root: Node) -> _Draft | None:
    values = reader.mapping(root, "(top)", TOP_KEYS, required=("name", "networks", "nodes"))
    name = None
    if "name" in values:
        name = reader.text(
            values["name"],
            "name",
            pattern=LAB_NAME,
            hint="write a lab name: lowercase letters, digits and '-', like two-lans",
        )
    description = ""
    if "description" in values:
        description = reader.text(values["description"], "description") or ""
    networks: dict[str, tuple[model.Network, int]] = {}
    for index, item in enumerate(
        reader.sequence(values["networks"], "networks", "networks") if "networks" in values else []
    ):
        read = _read_network(reader, item, index)
        if read is not None and read[0].name in networks:
            reader.fail(
                item,
                f"networks.{read[0].name}",
                f"duplicate network (also at line {networks[read[0].name][1]})",
                "give each network its own name",
            )
        elif read is not None:
            networks[read[0].name] = read
    members = []
    for section, router in (("nodes", False), ("routers", True)):
        items = reader.sequence(values[section], section, section) if section in values else []
        members += [
            m for i, item in enumerate(items) if (m := _read_member(reader, item, i, router=router)) is not None
        ]
    # A bad name is reported already; checking the rest still finds every other problem.
    return _Draft(name or "", description, networks, members)


def _checks() -> Iterator[Callable[[_Reader, _Draft], None]]:
    yield _check_names
    yield _check_attachments
    yield _check_addresses_unique
    yield _check_subnets
    yield _check_ports
    yield _check_reachable


def load_text(text: str, *, source: str | Path) -> model.Topology:
    """Parse and validate a topology; raise ``TopologyError`` listing every problem."""
    reader = _Reader(str(source))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise TopologyError(
            [Problem(str(source), line, "(yaml)", f"not valid YAML: {exc.problem}", "fix the syntax at that line")]
        ) from None
    if root is None:
        raise TopologyError(
            [Problem(str(source), 1, "(top)", "the file is empty", "start with name:, networks: and nodes:")]
        )
    draft = _read_document(reader, root)
    if draft is not None:
        for check in _checks():
            check(reader, draft)
        if not reader.problems:
            _assign_addresses(reader, draft)
    if reader.problems or draft is None:
        raise TopologyError(reader.problems)
    return _build(draft, Path(source))


def key_line(source: str | Path, key: str) -> int:
    """The line of a top-level key in a topology file (1 when it cannot tell), for errors raised after loading."""
    try:
        root = yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return 1
    if isinstance(root, MappingNode):
        for key_node, _ in root.value:
            if key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return 1


def load(path: str | Path) -> model.Topology:
    """Read a topology file; a missing or unreadable file is a ``TopologyError`` too, with line 1."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TopologyError(
            [
                Problem(
                    str(path),
                    1,
                    "(file)",
                    f"cannot read it ({reason})",
                    "give the path of a topology YAML file, like topology/default.yaml",
                )
            ]
        ) from None
    return load_text(text, source=path)
