"""scripts/bench-lab's pure parts: the published ports its bare ``down`` gives each container."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_bench_lab() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("bench_lab", str(ROOT / "scripts" / "bench-lab"))
    spec = importlib.util.spec_from_loader("bench_lab", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_each_service_publishes_its_own_ports_as_docker_run_takes_them() -> None:
    config = {
        "services": {
            "daytime": {
                "ports": [
                    {"mode": "ingress", "host_ip": "127.0.0.1", "target": 13, "published": "10013", "protocol": "tcp"},
                    {"mode": "ingress", "host_ip": "127.0.0.1", "target": 13, "published": "10013", "protocol": "udp"},
                ]
            },
            "creosote": {"ports": [{"target": 7739, "published": "17739", "protocol": "udp"}]},
            "client": {},
        }
    }
    assert load_bench_lab().run_ports(config) == {
        "daytime": ["127.0.0.1:10013:13/tcp", "127.0.0.1:10013:13/udp"],
        "creosote": ["0.0.0.0:17739:7739/udp"],  # no host address: every address, as Compose publishes it
        "client": [],
    }


def test_a_port_without_a_protocol_is_tcp() -> None:
    config = {"services": {"echo": {"ports": [{"host_ip": "127.0.0.1", "target": 7, "published": "10007"}]}}}
    assert load_bench_lab().run_ports(config) == {"echo": ["127.0.0.1:10007:7/tcp"]}
