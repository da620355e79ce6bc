"""lab.engine.Listed: a container as the engine's list gives it, read without inspecting it."""

from __future__ import annotations

from lab.engine import Listed

# One entry of GET /containers/json, as Docker 26 gives it (fields the lab does not read left out).
ENTRY = {
    "Id": "4f1c9a0e7b2d" + "0" * 52,
    "Names": ["/testbed-daytime-1"],
    "Labels": {"com.docker.compose.project": "testbed", "testbed.lab": "default"},
    "State": "running",
    "HostConfig": {"NetworkMode": "testbed_lab"},
}


def test_an_entry_gives_its_name_without_the_slash_its_labels_and_its_network_mode() -> None:
    listed = Listed.from_list(ENTRY)
    assert listed.id == ENTRY["Id"]
    assert listed.name == "testbed-daytime-1"
    assert listed.labels == {"com.docker.compose.project": "testbed", "testbed.lab": "default"}
    assert listed.network_mode == "testbed_lab"


def test_a_sidecar_in_a_nodes_namespace_shows_it_in_its_network_mode() -> None:
    sidecar = Listed.from_list({**ENTRY, "Names": ["/impair-x"], "HostConfig": {"NetworkMode": "container:abc"}})
    assert sidecar.network_mode.startswith("container:")


def test_an_entry_without_names_labels_or_host_config_still_reads() -> None:
    bare = Listed.from_list({"Id": "0123456789abcdef", "Labels": None})
    assert (bare.name, bare.labels, bare.network_mode) == ("0123456789ab", {}, "")
