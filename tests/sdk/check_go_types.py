"""Go SDK strictness: checks that every field of a ULB response has the JSON type the Go
SDK's models declare (spec §2.5, "Go SDK type" column of §5), by walking responses
against go_types.json (generated from the spec by scripts/gen-go-types.py).

The Go SDK unmarshals with encoding/json into typed structs, and one wrong type fails
the whole call (`json: cannot unmarshal string into Go struct field ... of type int`).
The walker applies encoding/json's rules:

* int    — a JSON integer within int64. A string is wrong, and so is any number with a
           fraction or an exponent, even `1.0`: Go parses int fields with ParseInt.
           (Python's json turns such literals into float, so float = violation.)
* string — a JSON string. bool — true/false (not 0/1, not "true").
* []T    — a JSON array whose elements are T. M (a model) — a JSON object, walked
           with M's fields. object — any JSON object.
* null is accepted for every type (encoding/json leaves the zero value), absent fields
  are fine, keys the model does not declare are ignored.
* Keys match fields case-insensitively, as in encoding/json: `"createtime": "1"` breaks
  the Go client as surely as `"CreateTime": "1"` does.

Fields the Go SDK does not declare ("(absent in Go SDK)" in the spec, "unchecked" in
go_types.json) are not checked: Go ignores them whatever they hold.

As a library: `Schema.load().check(action, response)` → list of Violation;
`check_records(lines)` → Report. As a program:
    python check_go_types.py responses.jsonl [--schema go_types.json]
prints every kind of violation with an example path and the test that saw it, then
`go types: N responses, M fields checked, K actions`; exits 1 on any violation, 2 when
the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

SCHEMA_PATH = Path(__file__).resolve().parent / "go_types.json"
SCALARS = ("int", "string", "bool", "object")
INT64 = (-(2 ** 63), 2 ** 63 - 1)
PREVIEW_CHARS = 60


@dataclass(frozen=True)
class Violation:
    path: str       # DescribeSSL.DataSet[0].CreateTime
    expected: str   # int, string, bool, []ULBSSLSet, ULBSSLSet object, object
    got: str        # string "1700000000"
    test: str = ""  # the test that received the response, when known

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.got}"

    @property
    def kind(self) -> tuple[str, str, str]:
        """The violation with array indices and the value left out, for grouping."""
        return (generic_path(self.path), self.expected, self.got.split(" ", 1)[0])


def generic_path(path: str) -> str:
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
            out.append("[*]")
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def describe(value) -> str:
    """The JSON type of a value and a short preview of it."""
    if isinstance(value, bool):
        name = "bool"
    elif isinstance(value, int):
        name = "int"
    elif isinstance(value, float):
        name = "float"
    elif isinstance(value, str):
        name = "string"
    elif isinstance(value, list):
        name = "array"
    elif isinstance(value, dict):
        name = "object"
    else:
        name = type(value).__name__
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 3] + "..."
    return f"{name} {text}"


class SchemaError(Exception):
    pass


class Schema:
    """go_types.json, with every type string parsed and every model reference checked."""

    def __init__(self, data: dict):
        self.envelope: dict[str, str] = dict(data["envelope"])
        self.actions: dict[str, dict[str, str]] = {a: dict(e["fields"]) for a, e in data["actions"].items()}
        self.models: dict[str, dict[str, str]] = {m: dict(e["fields"]) for m, e in data["models"].items()}
        for owner, fields in [("envelope", self.envelope), *self.actions.items(), *self.models.items()]:
            for name, go_type in fields.items():
                inner = go_type[2:] if go_type.startswith("[]") else go_type
                if inner not in SCALARS and inner not in self.models:
                    raise SchemaError(f"{owner}.{name}: type {go_type!r} names no model")
        # Case-insensitive lookup, as encoding/json matches keys to field names.
        self._folded = {owner: {n.casefold(): t for n, t in fields.items()}
                        for owner, fields in [*self.actions.items(), *self.models.items()]}
        self._folded_envelope = {n.casefold(): t for n, t in self.envelope.items()}

    @classmethod
    def load(cls, path: Path | str = SCHEMA_PATH) -> "Schema":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def knows(self, action: str) -> bool:
        return action in self.actions

    def check(self, action: str, response, *, test: str = "") -> tuple[list[Violation], int]:
        """Violations in one response of `action` and the number of fields checked. An
        action missing from the schema gets the envelope check only."""
        walk = _Walk(self, test)
        if not isinstance(response, dict):
            walk.fail(action, "object", response)
            return walk.violations, walk.checked
        fields = dict(self._folded_envelope)
        fields.update(self._folded.get(action, {}))
        walk.object(action, response, fields)
        return walk.violations, walk.checked


class _Walk:
    def __init__(self, schema: Schema, test: str):
        self.schema = schema
        self.test = test
        self.violations: list[Violation] = []
        self.checked = 0

    def fail(self, path: str, expected: str, value) -> None:
        self.violations.append(Violation(path, expected, describe(value), self.test))

    def object(self, path: str, obj: dict, folded_fields: dict[str, str]) -> None:
        for key, value in obj.items():
            go_type = folded_fields.get(key.casefold())
            if go_type is not None:
                self.checked += 1
                self.value(f"{path}.{key}", value, go_type)

    def value(self, path: str, value, go_type: str) -> None:
        if value is None:
            return
        if go_type.startswith("[]"):
            if not isinstance(value, list):
                self.fail(path, go_type, value)
                return
            for i, item in enumerate(value):
                self.value(f"{path}[{i}]", item, go_type[2:])
        elif go_type == "int":
            if type(value) is not int or not INT64[0] <= value <= INT64[1]:
                self.fail(path, "int", value)
        elif go_type == "string":
            if not isinstance(value, str):
                self.fail(path, "string", value)
        elif go_type == "bool":
            if not isinstance(value, bool):
                self.fail(path, "bool", value)
        elif go_type == "object":
            if not isinstance(value, dict):
                self.fail(path, "object", value)
        elif not isinstance(value, dict):
            self.fail(path, f"{go_type} object", value)
        else:
            self.object(path, value, self.schema._folded[go_type])


# ---------------------------------------------------------------------------------------
# Recorded files
# ---------------------------------------------------------------------------------------

@dataclass
class Report:
    responses: int = 0
    fields: int = 0
    actions: Counter = field(default_factory=Counter)
    envelope_only: Counter = field(default_factory=Counter)  # actions not in the schema
    violations: list[Violation] = field(default_factory=list)

    def summary(self) -> str:
        return f"go types: {self.responses} responses, {self.fields} fields checked, {len(self.actions)} actions"


def record_action(record: dict) -> str:
    """The request's Action; failing that, the response's `<Action>Response`."""
    action = record.get("Action") or ""
    if not action:
        response = record.get("Response")
        name = response.get("Action") if isinstance(response, dict) else None
        if isinstance(name, str) and name.endswith("Response"):
            action = name[: -len("Response")]
    return action or "<unknown action>"


def check_records(lines: Iterable[str], schema: Schema | None = None) -> Report:
    """Checks every `{"Action", "Test", "Response"}` line (blank lines skipped); a line
    that is not such a record raises ValueError."""
    schema = schema or Schema.load()
    report = Report()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {number}: not JSON: {e}") from None
        if not isinstance(record, dict) or "Response" not in record:
            raise ValueError(f"line {number}: not a recorded response (no 'Response' key)")
        action = record_action(record)
        violations, checked = schema.check(action, record["Response"], test=record.get("Test") or "")
        report.responses += 1
        report.fields += checked
        report.actions[action] += 1
        if not schema.knows(action):
            report.envelope_only[action] += 1
        report.violations += violations
    return report


def format_violations(violations: list[Violation]) -> list[str]:
    """One block per kind of violation: the kind, how often, and the first example."""
    kinds: dict[tuple, list[Violation]] = {}
    for v in violations:
        kinds.setdefault(v.kind, []).append(v)
    lines = [f"go types: {len(violations)} violation(s) of {len(kinds)} kind(s)"]
    for (path, expected, got), group in kinds.items():
        tests = {v.test for v in group}
        first = group[0]
        lines.append(f"  {path}: expected {expected}, got {got} — {len(group)} time(s) in {len(tests)} test(s)")
        lines.append(f"    e.g. {first}" + (f"  [{first.test}]" if first.test else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Checks recorded responses against the Go SDK's field types.")
    parser.add_argument("responses", type=Path, help="responses.jsonl written by the SDK suite")
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    try:
        schema = Schema.load(args.schema)
        with open(args.responses, encoding="utf-8") as f:
            report = check_records(f, schema)
    except (OSError, ValueError, KeyError, SchemaError) as e:
        print(f"go types: cannot check {args.responses}: {e}", file=sys.stderr)
        return 2
    if report.envelope_only:
        listed = ", ".join(f"{a} ×{n}" for a, n in sorted(report.envelope_only.items()))
        print(f"go types: envelope only (action not in {args.schema.name}): {listed}")
    unseen = sorted(set(schema.actions) - set(report.actions))
    if unseen:
        print(f"go types: no response recorded for {len(unseen)} action(s): {', '.join(unseen)}")
    if report.violations:
        print("\n".join(format_violations(report.violations)))
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
