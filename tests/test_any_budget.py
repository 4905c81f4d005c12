"""`Any` only at true boundaries, and no `type: ignore`, in the code folders.

Every `Any` in protocol/, server/, client/, runtime/ and cli/ is listed below with the
reason it cannot have a real type; a new one (an annotation, an alias, `typing.Any`, or
"Any" inside a quoted annotation) fails this test until it gets a real type (a TypedDict
or dataclass for a decoded shape once checked, a Protocol for a collaborator, `object` and
narrowing for a truly unknown value, `Mapping[str, object]`) or a line here saying why not.
A value decoded from msgpack or JSON and not yet checked is spelled `Unvalidated` (the one
alias of `Any`, defined in protocol/codec.py), so that it can be found and is checked where
it is used. An entry whose file has fewer `Any` than listed fails too, so the list stays
exact.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("protocol", "server", "client", "runtime", "cli")

# file -> (how many `Any`, why they are boundaries)
ALLOWED: dict[str, tuple[int, str]] = {
    "protocol/codec.py": (
        1,
        "`Unvalidated: TypeAlias = Any`: the type of what msgpack/JSON decoding returns before"
        " a schema checks it",
    ),
    "runtime/args.py": (
        1,
        "limits_from_args fills `dataclasses.replace(Limits, **values)` by reflection over the"
        " fields; Limits.__post_init__ checks each value's type",
    ),
    "client/conformance/context.py": (
        1,
        "`Context.shared`, what one case leaves a later one: keyed by the case modules, some"
        " still being written; to become a dataclass of typed fields once they have landed",
    ),
}

_QUOTED_ANY = re.compile(r"\bAny\b")
_IGNORE = re.compile(r"#\s*type:\s*ignore")


def _code_files() -> list[Path]:
    return sorted(p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py"))


def _annotations(tree: ast.AST) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotation = node.annotation
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotation = node.returns
        else:
            continue
        if annotation is not None:
            found.append(annotation)
    return found


def count_any(source: str) -> int:
    """Uses of `Any` in a module: names and `typing.Any` (imports do not count), plus "Any"
    inside string annotations."""
    tree = ast.parse(source)
    names = sum(
        1
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any")
        or (isinstance(node, ast.Attribute) and node.attr == "Any")
    )
    quoted = sum(
        len(_QUOTED_ANY.findall(node.value))
        for annotation in _annotations(tree)
        for node in ast.walk(annotation)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
    return names + quoted


def test_count_any_sees_every_spelling() -> None:
    source = (
        "import typing\nfrom typing import Any\n"
        "X: typing.Any = 1\n"
        "def f(a: Any, b: 'dict[str, Any]') -> list[Any]: ...\n"
        "Alias = Any\n"
        "def g(text: str = 'Any') -> None: ...\n"  # a default value, not an annotation
    )
    assert count_any(source) == 5


def test_any_only_where_listed() -> None:
    counts = {
        str(path.relative_to(ROOT)): count_any(path.read_text(encoding="utf-8"))
        for path in _code_files()
    }
    unexpected = {name: n for name, n in counts.items() if n > ALLOWED.get(name, (0, ""))[0]}
    assert not unexpected, (
        f"`Any` outside the allow-list (give it a real type, or list the boundary in"
        f" {Path(__file__).name}): {unexpected}"
    )
    stale = {name: (counts.get(name, 0), n) for name, (n, _) in ALLOWED.items()}
    stale = {name: pair for name, pair in stale.items() if pair[0] != pair[1]}
    assert not stale, f"allow-list entries that no longer match (found, listed): {stale}"


def test_no_type_ignore_in_code() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _code_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _IGNORE.search(line)
    ]
    assert not found, f"`type: ignore` in the code (type the value instead): {found}"
