"""Pass 1 of reading a topology: the shape of each entry on its own.

Types, unknown keys, names, ports, addresses, subnets and units are checked
entry by entry, each problem reported with its line; what is readable becomes a
``lab.draft.Draft`` for the checks across the whole lab (``lab.crosscheck``).
The keys read here are documented in ``topology/schema.json``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError, ip_network

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from common import units
from lab import model, programs
from lab.catalogue import SERVICES, Service
from lab.draft import Attach, Draft, Member
from lab.yamlread import TOP, Reader, describe, is_null, line_of, suggest

TOP_KEYS = ("name", "description", "networks", "nodes", "routers")
NETWORK_KEYS = ("name", "subnet")
NODE_KEYS = ("name", *programs.KINDS, "networks", "publish", "command", "extra", "impair", "profiles", "placement",
             *programs.PROGRAM_KEYS)  # fmt: skip
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
# A /8 took 16 s and 1.5 GB to give one node an address, and 0.0.0.0/0 ran out of memory: a /16 is plenty.
MIN_PREFIX = 16
RESERVED_SUFFIX = "-routes"  # the route sidecar of node X is the Compose service X-routes


def read_document(reader: Reader, root: Node) -> Draft:
    """Pass 1: each entry's shape (types, unknown keys, names, units), reported into ``reader``; then the draft."""
    values = reader.mapping(root, TOP, TOP_KEYS, required=("name", "networks", "nodes"))
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
    return Draft(name or "", description, networks, members)


def _read_impair(reader: Reader, node: Node, where: str) -> model.Impairment | None:
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
    try:  # the model's own bounds (at most 10 s of delay, at least 8 kbit/s), reported on the field's line
        return model.Impairment(
            delay_ms=read.get("delay", 0.0),
            jitter_ms=read.get("jitter", 0.0),
            loss_pct=read.get("loss", 0.0),
            rate_kbit=read.get("rate"),
        )
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        what, _, fix = problem.partition(" (")
        reader.fail(values.get(field, node), f"{where}.{field}", what, fix.rstrip(")") or "see the units in the docs")
        return None


def _read_address(reader: Reader, node: Node, where: str) -> IPv4Address | None:
    text = reader.text(node, where, hint="write an IPv4 address like 10.0.1.20")
    if text is None:
        return None
    try:
        return IPv4Address(text)
    except AddressValueError:
        reader.fail(node, where, f"{text!r} is not an IPv4 address", "write one like 10.0.1.20")
        return None


def _read_attachments(reader: Reader, node: Node, where: str) -> list[Attach]:
    """``[lan-a, lan-b]``, or ``{lan-a: 10.0.1.5, lan-b: {address: ..., impair: {...}}}``."""
    attachments = []
    if isinstance(node, SequenceNode):
        for item in node.value:
            name = reader.text(item, where, pattern=NETWORK_NAME, hint="write a network name from networks:")
            if name is not None:
                attachments.append(Attach(name, line_of(item), f"{where}.{name}"))
        return attachments
    if not isinstance(node, MappingNode):
        reader.fail(
            node,
            where,
            f"expected a list of networks or a mapping network: address, found {describe(node)}",
            "write networks: [lan-a] or networks: {lan-a: 10.0.1.5}",
        )
        return attachments
    for key_node, value in node.value:
        name = str(key_node.value)
        here = f"{where}.{name}"
        attach = Attach(name, line_of(key_node), here)
        if isinstance(value, MappingNode):
            values = reader.mapping(value, here, ATTACHMENT_KEYS)
            if "address" in values:
                attach.address = _read_address(reader, values["address"], f"{here}.address")
            if "impair" in values:
                attach.impair = _read_impair(reader, values["impair"], f"{here}.impair")
        elif not is_null(value):
            attach.address = _read_address(reader, value, here)
        attachments.append(attach)
    return attachments


def _read_command(reader: Reader, node: Node, where: str) -> tuple[str, ...] | None:
    """A command as a list of words, or one string split like a shell would (no shell runs it)."""
    if isinstance(node, ScalarNode) and not is_null(node):
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


def _read_publish(reader: Reader, node: Node, where: str, spec: Service | None) -> list[tuple[model.Port, int]]:
    """``true`` (10000 + each port), or a list of ``HOST`` or ``HOST:CONTAINER``, each with an optional ``/udp``."""
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        if node.value.lower() not in {"true", "yes", "on"} or spec is None:
            return []
        line = line_of(node)
        return [(model.Port(10000 + port.number, port.number, port.transport), line) for port in spec.ports]
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
    reader: Reader, item: Node, where: str, text: str, spec: Service | None
) -> list[tuple[model.Port, int]]:
    match = PORT_SPEC.match(text)
    assert match is not None
    host, container_text, proto = match.groups()
    line = line_of(item)
    service_ports = spec.ports if spec is not None else ()
    # Python refuses int() of more than 4300 digits; a port has at most 5 that count.
    if not all(len(p.lstrip("0")) <= 5 and 0 < int(p) < 65536 for p in (host, container_text or "1")):
        reader.fail(item, where, f"{text!r}: ports run from 1 to 65535", "write a port in that range")
        return []
    if container_text is None and not service_ports:
        if spec is not None:  # an unknown service is reported on its own line
            reader.fail(
                item, where, f"{spec.name} has no port to map {host} to", "write HOST:CONTAINER, like 18080:8080"
            )
        return []
    container = int(container_text) if container_text else service_ports[0].number
    known = tuple(p.transport for p in service_ports if p.number == container) or ("tcp",)
    protocols = (proto,) if proto else known
    return [(model.Port(int(host), container, p), line) for p in protocols]


def _peek_name(node: Node) -> str | None:
    """The entry's name, when it has a valid one, so even its other keys' errors can say whose they are."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if key.value == "name" and isinstance(value, ScalarNode) and HOSTNAME.match(str(value.value)):
                return str(value.value)
    return None


def _read_member(reader: Reader, node: Node, index: int, *, router: bool) -> Member | None:
    section = "routers" if router else "nodes"
    keys = ROUTER_KEYS if router else NODE_KEYS
    label = _peek_name(node)
    values = reader.mapping(
        node,
        f"{section}.{label}" if label else f"{section}[{index}]",
        keys,
        required=("name", "networks") if router else ("name",),
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
    member = Member(name, line_of(node), where, router)
    if "networks" in values:
        member.networks_line = line_of(values["networks"])
        member.attachments = _read_attachments(reader, values["networks"], f"{where}.networks")
    if "impair" in values:
        member.impair = _read_impair(reader, values["impair"], f"{where}.impair")
    if not router:
        _read_host_fields(reader, member, node, values, where)
    return member


def _read_host_fields(reader: Reader, member: Member, entry: Node, values: dict[str, Node], where: str) -> None:
    kind = programs.node_kind(reader, entry, values, where)
    if kind is not None:
        programs.check_fields(reader, values, where, kind)
    if kind in ("code", "image"):
        member.service = ""
        member.program = programs.read_program(reader, values, where, kind)
    if "service" in values:
        service = reader.text(values["service"], f"{where}.service", hint=suggest("", list(SERVICES), "service"))
        if service is not None and service not in SERVICES:
            extra = " (routers are declared under routers:)" if service == "router" else ""
            reader.fail(
                values["service"],
                f"{where}.service",
                f"unknown service {service!r}{extra}",
                suggest(service, list(SERVICES), "service"),
            )
        member.service = service if service in SERVICES else ""
    if "publish" in values:
        spec = SERVICES.get(member.service) if member.program is None else programs.offered(member.name, member.program)
        member.publish = _read_publish(reader, values["publish"], f"{where}.publish", spec)
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


def _read_placement(reader: Reader, node: Node, where: str) -> model.Placement | None:
    """``{labels: {zone: east}, hostname: vm2, role: worker}``: Swarm placement constraints, all of which must hold."""
    values = reader.mapping(node, where, PLACEMENT_KEYS)
    labels: list[tuple[str, str]] = []
    if "labels" in values:
        here = f"{where}.labels"
        if not isinstance(values["labels"], MappingNode) or not values["labels"].value:
            reader.fail(
                values["labels"],
                here,
                f"expected a mapping of node labels, found {describe(values['labels'])}",
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
            reader.fail(values["role"], f"{where}.role", f"unknown role {role!r}", suggest(role, ROLES, "role"))
            role = None
    if isinstance(node, MappingNode) and not node.value:
        reader.fail(node, where, "empty placement", "write labels:, hostname: or role:, or remove placement:")
    if not (labels or hostname or role):
        return None
    return model.Placement(labels=tuple(labels), hostname=hostname, role=role)


def _read_network(reader: Reader, node: Node, index: int) -> tuple[model.Network, int] | None:
    line = line_of(node)
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


def _read_subnet(reader: Reader, node: Node, where: str) -> IPv4Network | None:
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
    if not isinstance(subnet, IPv4Network) or not MIN_PREFIX <= subnet.prefixlen <= 29:
        reader.fail(
            node,
            where,
            f"{text!r} is not an IPv4 subnet from /{MIN_PREFIX} to /29",
            "write one like 10.0.1.0/24 (a lab's network holds a few nodes, not millions)",
        )
        return None
    return subnet
