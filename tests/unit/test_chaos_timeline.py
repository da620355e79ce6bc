"""The timeline picture: well-formed SVG, a bar per fault on each node it touched, a row per checker."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab.chaos.checkers import check
from lab.chaos.timeline import ACTION_COLOURS, OUTCOMES, svg
from tests.unit.test_chaos_checkers import chat_events, history

NS = {"svg": "http://www.w3.org/2000/svg"}


def drawn(text: str) -> ET.Element:
    return ET.fromstring(text)  # raises on anything that is not well-formed XML


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def fills(root: ET.Element) -> list[str]:
    return [r.get("fill", "") for r in root.iter("{http://www.w3.org/2000/svg}rect")]


def test_each_fault_is_drawn_on_every_node_it_touched() -> None:
    steps = [{"do": "partition", "between": ["chat", "client"], "start": 2.0, "end": 4.0},
             {"do": "kill", "node": "creosote", "start": 6.0, "end": 8.0}]  # fmt: skip
    made = history({"chat": "chat"}, steps=steps, events=chat_events())
    root = drawn(svg(made, check(made)))
    labels = texts(root)
    assert "chat" in labels and "creosote" in labels and "client (clients)" in labels
    # pale and solid, on each side of the partition; once for the kill
    assert fills(root).count(ACTION_COLOURS["partition"]) == 2 * 2 + 1  # + its legend swatch
    assert fills(root).count(ACTION_COLOURS["kill"]) == 2 + 1
    assert "every checker passed" in (root.findtext("svg:title", namespaces=NS) or "")


def test_a_failed_checker_shows_in_the_title_its_row_and_its_bins() -> None:
    made = history({"chat": "chat"}, events=chat_events(skip={("m2", "m1", 5)}))
    verdicts = check(made)
    root = drawn(svg(made, verdicts))
    assert "a checker FAILED" in (root.findtext("svg:title", namespaces=NS) or "")
    assert "chat FAIL" in texts(root)
    violation = dict(OUTCOMES)["violation"]
    assert fills(root).count(violation) == 1 + 1  # the bin where message 5 went missing, and the legend
