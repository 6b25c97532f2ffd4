"""No stale numbers: a chapter's text must not state a figure its own run measured otherwise.

Every ``chapter.record(name, value, unit)`` leaves the value in the committed notebook's
outputs (metadata ``chapter.RECORD_KEY``). For each recorded value, this test finds the
sentences of the chapter's markdown that talk about the same thing (they share the
record's distinctive words) and state a number in the same unit, and checks that the
number is the recorded one, to the precision it is written with. A sentence may compare
several recorded values of one unit ("99.6% with steps, 0.4% without"): any of them will
do. Exercise statements and sentences that cite a paper are skipped: they set targets or
report someone else's numbers. Sentences are cut at full stops, blank lines and list
items; a record needs two distinctive words in common with a sentence before its numbers
are compared, so a sourced fact about real models ("about 0.1% of the parameters of a
large model") in a sentence of its own is left alone.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from llmtrain.course.chapter import RECORD_KEY

from .conftest import CHAPTERS

NOTEBOOKS = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))

# How each unit is written after a number in prose.
UNIT_PATTERNS = {
    "%": r"%|\s?per ?cent",
    "nats/token": r"\s?nats",
    "nats": r"\s?nats",
    "bits/byte": r"\s?bits(?: per byte|/byte)",
    "tokens/byte": r"\s?tokens(?: per byte|/byte)",
    "x": r"\s?(?:x|×)(?![\w-])|\s?times\b",
}
# Not "steps" or "s": in prose those are mostly settings (a slider's default, a budget), not
# measurements, and a sentence about them shares the record's words.
NUMBER = r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
STOP = {"after", "with", "from", "that", "this", "their", "what", "when", "than", "into",
        "over", "loss", "model", "score", "share", "the", "and", "for", "its", "per", "vs"}


def records_of(nb) -> list[dict]:
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            entry = out.get("metadata", {}).get(RECORD_KEY)
            if entry:
                found[entry["name"]] = entry
    return list(found.values())


def sentences(nb) -> list[str]:
    # Exercise statements set targets ("the smallest gap for which it reaches 90%"); they
    # state no measurement of the chapter's.
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown"
                       and not c.source.lstrip().startswith("**Exercise"))
    text = re.sub(r"`[^`]*`", " ", text)                  # code spans are not prose numbers
    text = re.sub(r"\$[^$]*\$", " ", text)                # nor formulas
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(])|\n\s*\n|\n\s*(?:[-*]|\d+\.)\s", text)
    # A sentence that cites a paper reports the paper's numbers, not ours.
    cited = re.compile(r"et al\.|\((?:19|20)\d\d\)|\b(?:19|20)\d\d\)")
    return [" ".join(p.split()) for p in parts if p.strip() and not cited.search(p)]


def words(name: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z'-]{2,}", name.lower()) if w not in STOP}


def matches(written: str, values: list[float]) -> bool:
    decimals = len(written.split(".")[1]) if "." in written else 0
    number = float(written.replace(",", ""))
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(number - v) <= tolerance for v in values)


def stale_statements(records: list[dict], texts: list[str]) -> list[str]:
    problems = []
    for rec in records:
        pattern = UNIT_PATTERNS.get(rec["unit"])
        keys = words(rec["name"])
        if pattern is None or len(keys) < 2:   # one word is too little to know the subject
            continue
        same_unit = [r["value"] for r in records if UNIT_PATTERNS.get(r["unit"]) == pattern]
        for sentence in texts:
            if sum(k in sentence.lower() for k in keys) < 2:
                continue
            for m in re.finditer(NUMBER + f"(?:{pattern})", sentence):
                if not matches(m.group(1), same_unit):
                    problems.append(f"{rec['name']!r} was measured as {rec['value']:g} "
                                    f"{rec['unit']}, but the text says {m.group(0).strip()!r}: "
                                    f"\"{sentence[:160]}\"")
    return problems


def test_the_check_finds_a_stale_figure_and_accepts_a_fresh_one():
    rec = [{"name": "clean pages kept", "value": 46.2, "unit": "%"},
           {"name": "junk kept (worst kind)", "value": 3.0, "unit": "%"}]
    stale = ["The filter kept 33% of the clean pages."]
    fresh = ["The filter kept 46% of the clean pages and 3% of the worst junk kind."]
    assert len(stale_statements(rec, stale)) == 1
    assert stale_statements(rec, fresh) == []
    assert stale_statements(rec, ["Real crawls keep about 10% of their pages."]) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_chapter_states_a_figure_it_measured_otherwise(path):
    nb = nbformat.read(path, as_version=4)
    records = records_of(nb)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "record(" in code:
        assert records, (f"{path.name} records key numbers but its committed outputs hold none: "
                         "re-execute it (python -m llmtrain execute NN)")
    problems = stale_statements(records, sentences(nb))
    assert not problems, "\n".join(problems)
