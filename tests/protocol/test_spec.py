"""docs/PROTOCOL.md against the code: catalogue, field tables, diagrams, errors, vectors, rules.

Each test fails when the document and the code disagree, naming what to fix. The generated
blocks are compared with tools/gen_protocol_doc.py's rendering; the vectors are run from the
JSON printed in the document, not from the builder, so the document itself is what is tested.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tslic.protocol import states
from tslic.protocol.errors import ErrorCode
from tslic.protocol.messages import REGISTRY, Conversation, Message
from tslic.protocol.rules import AREAS, Level, Rule, check_rules, load_rules, rules_by_id
from tslic.protocol.vector_doc import vector_from_json, vector_json
from tslic.protocol.vectors import (
    build_vectors,
    expected_outcome,
    run_vector,
    vector_key,
    vector_public,
)

from tools import gen_protocol_doc as GEN

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "PROTOCOL.md"
COMMON = ("Hello", "Welcome", "Error", "Goodbye")
HEADING = re.compile(r"^#### `(\w+)` — 0x([0-9A-F]{3})$", re.M)
RECORD_HEADING = re.compile(r"^#### `(\w+)` \(record\)$", re.M)
ROW = re.compile(r"^\| `(\w+)` \| ([^|]+?) \| .+ \|$")


MESSAGES: list[type[Message]] = [REGISTRY[t] for t in sorted(REGISTRY)]
DOC = DOC_PATH.read_text(encoding="utf-8")


def section(number: int) -> str:
    """The text of top-level section `## <number>.` up to the next one."""
    match = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", DOC, re.M | re.S)
    assert match, f"PROTOCOL.md has no section {number}"
    return match.group(0)


def entries(text: str, heading: re.Pattern[str]) -> dict[str, str]:
    """Heading name -> the text up to the next level-4 heading."""
    found = list(heading.finditer(text))
    out = {}
    for match in found:
        end = text.find("\n#### ", match.end())
        out[match.group(1)] = text[match.end() : len(text) if end < 0 else end]
    return out


def table_fields(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for line in text.splitlines() if (m := ROW.match(line))]


# ---- (a) the message catalogue ---------------------------------------------------------


def test_every_message_is_documented_with_its_type_and_nothing_else() -> None:
    documented = {m.group(1): int(m.group(2), 16) for m in HEADING.finditer(section(5))}
    registered = {cls.__name__: t for t, cls in REGISTRY.items()}
    assert documented == registered


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_message_field_table_matches_the_schema(cls: type[Message]) -> None:
    text = entries(section(5), HEADING)[cls.__name__]
    assert table_fields(text) == GEN.field_types(cls), f"§5 table of {cls.__name__}"
    if not GEN.field_types(cls):
        assert "No fields" in text


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_message_legal_states_match_the_state_tables(cls: type[Message]) -> None:
    if cls.__name__ in COMMON:
        return  # their "Legal in" line summarises every conversation in prose
    text = entries(section(5), HEADING)[cls.__name__]
    match = re.search(r"^- Legal in: (.+)$", text, re.M)
    assert match, f"{cls.__name__} has no 'Legal in' line"
    documented = re.findall(r"`(\w+)`", match.group(1))
    (conversation,) = cls.CONVERSATIONS
    legal = [
        state
        for state, row in states.TRANSITIONS[conversation].items()
        if any(event_type == cls.TYPE for _, event_type, _ in row)
    ]
    assert documented == legal


def test_every_record_is_documented_with_its_fields() -> None:
    documented = entries(section(4), RECORD_HEADING)
    records = {cls.__name__: cls for cls in GEN._record_classes()}
    assert set(documented) == set(records)
    for name, cls in records.items():
        assert table_fields(documented[name]) == GEN.field_types(cls), f"§4 table of {name}"


# ---- (b) error codes -------------------------------------------------------------------


def test_every_error_code_is_in_section_8_with_its_number() -> None:
    text = section(8)
    for code in ErrorCode:
        kind = "fatal" if code.closes_connection else "refusal"
        assert f"| {int(code)} | `{code.name}` | {kind} |" in text, code.name


def test_every_error_code_has_a_meaning() -> None:
    assert set(GEN.ERROR_NOTES) == set(ErrorCode)


# ---- (c) generated blocks --------------------------------------------------------------


def test_generated_blocks_are_current() -> None:
    present = GEN.blocks_in(DOC)
    fresh = GEN.render_blocks()
    assert set(present) == set(fresh)
    stale = [name for name in fresh if present[name] != fresh[name]]
    assert not stale, f"run `python tools/gen_protocol_doc.py`; stale: {stale}"


@pytest.mark.parametrize("conversation", list(Conversation), ids=str)
def test_state_diagram_is_mermaid_of_the_table(conversation: Conversation) -> None:
    body = GEN.blocks_in(DOC)[f"states:{conversation.value}"]
    assert body == f"```mermaid\n{states.mermaid(conversation)}\n```\n"


def test_generator_refuses_a_document_without_a_block() -> None:
    broken = DOC.replace("<!-- BEGIN GENERATED errors -->", "<!-- errors -->")
    with pytest.raises(ValueError, match="missing \\['errors'\\]"):
        GEN.apply(broken)


def test_generator_check_mode_reports_a_stale_block(tmp_path: Path) -> None:
    stale = DOC.replace("| 1001 | `MALFORMED_FRAME` |", "| 1001 | `MALFORMED` |")
    target = tmp_path / "PROTOCOL.md"
    target.write_text(stale, encoding="utf-8")
    assert GEN.main(["--check", "--doc", str(target)]) == 1
    assert GEN.main(["--doc", str(target)]) == 0  # regenerates in place
    assert target.read_text(encoding="utf-8") == DOC
    assert GEN.main(["--check", "--doc", str(target)]) == 0


# ---- (d) test vectors ------------------------------------------------------------------


def documented_vectors() -> list[dict[str, object]]:
    block = GEN.blocks_in(DOC)["vectors"]
    return [json.loads(text) for text in re.findall(r"```json\n(.*?)\n```", block, re.S)]


@pytest.mark.parametrize("data", documented_vectors(), ids=lambda d: str(d["name"]))
def test_documented_vector_gives_the_documented_result(data: dict[str, object]) -> None:
    vector = vector_from_json(data)
    outcome = run_vector(vector)
    assert outcome == expected_outcome(vector), outcome.detail


def test_documented_vectors_are_the_built_ones() -> None:
    assert documented_vectors() == [vector_json(v) for v in build_vectors()]
    assert [vector_json(v) for v in build_vectors()] == documented_vectors()  # deterministic


def test_vectors_cover_the_required_cases() -> None:
    vectors = build_vectors()
    assert len(vectors) >= 8
    messages = {v.expect_message for v in vectors if v.expect_message}
    assert {"Hello", "Welcome", "IssueLicense", "LicenseRequest", "Error"} <= messages
    errors = {v.expect_error for v in vectors if v.expect_error}
    required = {
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.REPLAYED_MESSAGE,
        ErrorCode.STALE_TIMESTAMP,
        ErrorCode.UNKNOWN_MESSAGE_TYPE,
        ErrorCode.INVALID_FIELD,
        ErrorCode.BAD_ENCODING,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.WRONG_SENDER,
    }
    assert required <= errors


def test_a_vector_run_can_fail() -> None:
    """The runner really judges the frame: a valid vector with a flipped body byte fails."""
    hello = build_vectors()[0]
    frame = bytearray(hello.frame)
    frame[60] ^= 0xFF  # inside `inner`, so the signature no longer verifies
    tampered = vector_from_json({**vector_json(hello), "frame": bytes(frame).hex()})
    outcome = run_vector(tampered)
    assert outcome.error is ErrorCode.BAD_SIGNATURE
    assert outcome != expected_outcome(hello)


def test_test_keys_are_derived_from_the_published_seeds() -> None:
    block = GEN.blocks_in(DOC)["vectors"]
    for name in ("terminal-server", "license-server", "rdp-client", "stranger"):
        assert f"| `{name}` |" in block
        assert vector_public(name).hex() in block
    signature = vector_key("stranger").sign(b"x")
    assert len(signature) == 64


# ---- (e) normative rules ---------------------------------------------------------------


def test_rules_are_well_formed_and_unique() -> None:
    rules = load_rules(section(7))
    assert check_rules(rules) == []
    assert len(rules) >= 80
    assert len({r.id for r in rules}) == len(rules)
    assert {r.area for r in rules} == set(AREAS)


def test_rules_live_only_in_section_7() -> None:
    assert len(load_rules(DOC)) == len(load_rules(section(7)))


def test_every_rule_cited_in_the_document_exists() -> None:
    known = rules_by_id(DOC)
    areas = "|".join(AREAS)
    cited = set(re.findall(rf"\b((?:{areas})-\d+)\b", DOC))
    assert cited - set(known) == set()


def test_rule_parser_reads_continuations_and_nested_sources() -> None:
    text = (
        "- **COMPAT-1** (MUST): a 2003 terminal server MUST NOT accept a license\n"
        "  from a 2000 license server. ([KB 823313](SOURCES.md#kb823313) (2003))\n"
        "- **GRACE-4** (SHOULD): it SHOULD end early (uncertain). (hh553157)\n"
        "\n"
        "not a rule\n"
    )
    assert load_rules(text) == [
        Rule(
            "COMPAT-1",
            Level.MUST,
            "a 2003 terminal server MUST NOT accept a license from a 2000 license server.",
            "[KB 823313](SOURCES.md#kb823313) (2003)",
        ),
        Rule("GRACE-4", Level.SHOULD, "it SHOULD end early (uncertain).", "hh553157"),
    ]


def test_rule_checker_names_each_problem() -> None:
    text = (
        "- **FRAME-1** (MUST): frames MUST be framed. (§2)\n"
        "- **FRAME-1** (MAY): duplicates are refused. (§2)\n"
        "- **BOGUS-2** (SHOULD): unknown areas SHOULD fail. (§7)\n"
        "- **ENV-01** (MUST): leading zeros MUST fail. (§7)\n"
        "- **ENV-3** (MUST): no source MUST fail.\n"
    )
    problems = check_rules(load_rules(text))
    assert any(p.startswith("FRAME-1: id used twice") for p in problems)
    assert any(p.startswith("FRAME-1: level MAY") for p in problems)
    assert any(p.startswith("BOGUS-2: id is not AREA-n") for p in problems)
    assert any(p.startswith("ENV-01: id is not AREA-n") for p in problems)
    assert any(p.startswith("ENV-3: no source") for p in problems)
