"""Reading the nodes that run the user's own program: ``code:`` (a file or folder) or ``image:``/``build:``.

Built-in services know their ports, probe and hardening from the catalogue; a
user's program says them in the topology. Every field keeps the loader's rules:
each mistake is one ``file:line: field: what; fix`` problem, and nothing here
touches Docker (a missing path or Dockerfile is found on disk, before any call).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from lab import model
from lab.catalogue import Service
from lab.yamlread import Reader, line_of, suggest
from protocols import registry

KINDS = ("service", "code", "image", "build")
PROGRAM_KEYS = ("ports", "probe", "environment", "user", "cap_add", "read_only", "shared")
PROBES = (*registry.PROTOCOLS, *registry.REACHABILITY)
IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}(?::[a-z_][a-z0-9_-]{0,31})?$|^\d{1,10}(?::\d{1,10})?$")
CAPABILITY = re.compile(r"^[A-Z][A-Z_]{1,31}$")
SHARED_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def node_kind(reader: Reader, entry: Node, values: dict[str, Node], where: str) -> str | None:
    """``service``, ``code`` or ``image`` (``build:`` with or without ``image:``); every other mix is reported."""
    given = [k for k in KINDS if k in values]
    if not given:
        written = [str(key.value) for key, _value in entry.value] if isinstance(entry, MappingNode) else []
        if not any(difflib.get_close_matches(key, KINDS, n=1, cutoff=0.6) for key in written):  # else: misspelt, told
            reader.fail(
                entry, where, "no service:, code:, image: or build:", "say what the node runs, like service: echo"
            )
        return None
    kinds = {"image" if k == "build" else k for k in given}
    if len(kinds) > 1:
        second = values[given[1]]
        reader.fail(second, f"{where}.{given[1]}", f"a node is one kind, and this one also has {given[0]}:",
                    "keep service:, code:, or image:/build: (image: with build: names what is built)")  # fmt: skip
        return None
    return kinds.pop()


def read_program(reader: Reader, values: dict[str, Node], where: str, kind: str) -> model.Program | None:
    """The ``code:``/``image:``/``build:`` node's program; paths are relative to the topology file's folder."""
    base = Path(reader.file).resolve().parent
    code = build = None
    image = None
    if kind == "code":
        code = _path(reader, values["code"], f"{where}.code", base, folder_needs=None)
    if "build" in values:
        build = _path(reader, values["build"], f"{where}.build", base, folder_needs="Dockerfile")
    if "image" in values:
        hint = "write an image name like myserver:1.0 or registry.example/team/app:tag"
        image = reader.text(values["image"], f"{where}.image", pattern=IMAGE_NAME, hint=hint)
    ports = _ports(reader, values["ports"], f"{where}.ports") if "ports" in values else ()
    probe = _probe(reader, values["probe"], f"{where}.probe", ports) if "probe" in values else None
    program = model.Program(
        kind=kind,
        ports=ports,
        probe=probe,
        code=code,
        image=image,
        build=build,
        environment=_environment(reader, values["environment"], f"{where}.environment")
        if "environment" in values
        else (),
        user=reader.text(
            values["user"], f"{where}.user", pattern=USER, hint="write a user like node, 10001 or 1000:1000"
        )
        if "user" in values
        else None,
        cap_add=_capabilities(reader, values["cap_add"], f"{where}.cap_add") if "cap_add" in values else (),
        read_only=_flag(reader, values["read_only"], f"{where}.read_only") if "read_only" in values else True,
        shared=_shared(reader, values["shared"], f"{where}.shared") if "shared" in values else (),
    )
    if kind == "code" and code is not None and code.is_dir() and "command" not in values:
        reader.fail(values["code"], f"{where}.command", f"{code.name}/ is a folder, so what to run is not known",
                    f"add command:, like [python3, {model.CODE_MOUNT}/server.py]")  # fmt: skip
    return program


def check_fields(reader: Reader, values: dict[str, Node], where: str, kind: str) -> None:
    """A built-in service's ports, probe and hardening come from the catalogue: those keys are for programs."""
    if kind != "service":
        return
    for key in PROGRAM_KEYS:
        if key in values:
            reader.fail(values[key], f"{where}.{key}", f"{key}: is for code: and image: nodes",
                        "a service's ports, probe and hardening come from the catalogue; remove it")  # fmt: skip


def offered(name: str, program: model.Program) -> Service:
    """The program's ports in the catalogue's shape, so ``publish:`` reads them as it reads a service's."""
    return Service(name=name, command=(), ports=program.ports)


def _path(reader: Reader, node: Node, where: str, base: Path, *, folder_needs: str | None) -> Path | None:
    text = reader.text(node, where, hint="write a path relative to the topology file, like ../my-echo/server.py")
    if text is None:
        return None
    path = (base / text).resolve()
    if not path.exists():
        reader.fail(node, where, f"no file or folder {text!r} (looked for {path})",
                    "write a path relative to the topology file's folder")  # fmt: skip
        return None
    if folder_needs is not None and not (path / folder_needs).is_file():
        reader.fail(node, where, f"{text!r} has no {folder_needs}", f"give the folder that holds the {folder_needs}")
        return None
    return path


def _ports(reader: Reader, node: Node, where: str) -> tuple[registry.Port, ...]:
    ports: list[registry.Port] = []
    for item in reader.sequence(node, where, "ports"):
        text = reader.text(item, where, hint="write a port like 7/tcp or 7/udp")
        if text is None:
            continue
        try:
            port = registry.Port.parse(text)
        except ValueError as exc:
            reader.fail(item, where, str(exc), "write a port from 1 to 65535 with /tcp or /udp, like 7007/tcp")
            continue
        if port in ports:
            reader.fail(item, where, f"{port} is listed twice", "list each port once")
        else:
            ports.append(port)
    return tuple(ports)


def _probe(reader: Reader, node: Node, where: str, ports: tuple[registry.Port, ...]) -> model.Probe | None:
    if isinstance(node, MappingNode):
        values = reader.mapping(node, where, ("exec",), required=("exec",))
        if "exec" not in values:
            return None
        words = [
            reader.text(item, f"{where}.exec") for item in reader.sequence(values["exec"], f"{where}.exec", "words")
        ]
        if not words or any(w is None for w in words):
            reader.fail(node, f"{where}.exec", "an empty or broken command", "write a list like [pgrep, -x, myserver]")
            return None
        return model.Probe(exec=tuple(w for w in words if w is not None))
    name = reader.text(node, where, hint=f"write one of {', '.join(PROBES)}, or {{exec: [COMMAND, ...]}}")
    if name is None:
        return None
    if name not in PROBES:
        reader.fail(node, where, f"unknown probe {name!r}", suggest(name, PROBES, "probe") + ", or {exec: [...]}")
        return None
    if not ports:
        reader.fail(node, where, f"probe {name} needs the node's ports", "add ports:, like [7/tcp, 7/udp]")
        return None
    return model.Probe(protocol=name)


def _environment(reader: Reader, node: Node, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, MappingNode):
        reader.fail(node, where, "expected a mapping of NAME: value", "write NAME: value lines")
        return ()
    found = []
    for key, value in node.value:
        name = str(key.value)
        if not ENV_NAME.match(name):
            reader.fail(key, f"{where}.{name}", f"{name!r} is not a variable name", "write letters, digits and _")
            continue
        text = reader.text(value, f"{where}.{name}", hint="write a plain value; quote it if it looks like a number")
        if text is not None:
            found.append((name, text))
    return tuple(found)


def _capabilities(reader: Reader, node: Node, where: str) -> tuple[str, ...]:
    hint = "write capability names like NET_ADMIN (without CAP_)"
    items = (reader.text(i, where, pattern=CAPABILITY, hint=hint) for i in reader.sequence(node, where, "capabilities"))
    return tuple(dict.fromkeys(c.removeprefix("CAP_") for c in items if c is not None))


def _shared(reader: Reader, node: Node, where: str) -> tuple[str, ...]:
    hint = "write folder names like sockets (lowercase letters, digits and -)"
    items = (reader.text(i, where, pattern=SHARED_NAME, hint=hint) for i in reader.sequence(node, where, "folders"))
    return tuple(dict.fromkeys(name for name in items if name is not None))


def _flag(reader: Reader, node: Node, where: str) -> bool:
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        return node.value.lower() in ("true", "yes", "on")
    reader.fail(node, where, f"expected true or false (line {line_of(node)})", "write true or false")
    return True
