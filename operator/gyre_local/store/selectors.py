"""Kubernetes label and field selectors: parsing and matching."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^)]*)\)$")
_ORDER = re.compile(rf"^({_KEY})\s*(<|>)\s*(-?[0-9]+)$")


class SelectorError(ValueError):
    """A selector string that does not parse."""


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector."""

    key: str
    operator: str  # "exists", "!exists", "in", "notin", "gt", "lt"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this term."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if not present or value is None or not value.lstrip("-").isdigit():
            return False
        bound = int(next(iter(self.values)))
        return int(value) > bound if self.operator == "gt" else int(value) < bound


LabelSelector = tuple[Requirement, ...]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a label selector string (equality- and set-based) into requirements."""
    if not text:
        return ()
    requirements: list[Requirement] = []
    for term in _split_top_level(text):
        if match := _EXISTS.match(term):
            operator = "!exists" if match.group(1) else "exists"
            requirements.append(Requirement(match.group(2), operator))
        elif match := _EQUALITY.match(term):
            operator = "notin" if match.group(2) == "!=" else "in"
            requirements.append(Requirement(match.group(1), operator, frozenset([match.group(3)])))
        elif match := _SET.match(term):
            values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _ORDER.match(term):
            operator = "gt" if match.group(2) == ">" else "lt"
            requirements.append(Requirement(match.group(1), operator, frozenset([match.group(3)])))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return tuple(requirements)


# The operators of matchExpressions (and of node selector terms) as the parsed form names them.
_EXPRESSION_OPERATORS = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!exists",
    "Gt": "gt",
    "Lt": "lt",
}


def expression_requirement(expression: Mapping[str, Any]) -> Requirement | None:
    """One matchExpressions entry ({key, operator, values}) as a Requirement, or None when it
    cannot hold (an unknown operator, Gt/Lt without exactly one integer)."""
    operator = _EXPRESSION_OPERATORS.get(str(expression.get("operator", "")))
    values = [str(v) for v in expression.get("values") or []]
    if operator is None:
        return None
    if operator in ("gt", "lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        return None
    return Requirement(str(expression.get("key", "")), operator, frozenset(values))


def expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label (or field) set satisfies one matchExpressions entry."""
    requirement = expression_requirement(expression)
    return requirement is not None and requirement.matches(labels)


def object_selector_matches(
    selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None
) -> bool:
    """Whether a metav1.LabelSelector object (matchLabels and matchExpressions) selects a label
    set; a null selector selects nothing, an empty one everything."""
    if selector is None:
        return False
    present = labels or {}
    return all(present.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and all(
        expression_holds(e, present) for e in selector.get("matchExpressions") or []
    )


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """Whether a label set satisfies every requirement of a selector."""
    present = labels or {}
    return all(r.matches(present) for r in selector)


@dataclass(frozen=True)
class FieldRequirement:
    """One term of a field selector."""

    field: str
    value: str
    negated: bool


FieldSelector = tuple[FieldRequirement, ...]


def parse_field_selector(text: str | None, allowed: Callable[[str], bool]) -> FieldSelector:
    """Parse a field selector; `allowed` tells which field labels the resource supports."""
    if not text:
        return ()
    requirements: list[FieldRequirement] = []
    for term in _split_top_level(text):
        for operator in ("!=", "==", "="):
            if operator in term:
                field_name, _, value = term.partition(operator)
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field_name = field_name.strip()
        if not allowed(field_name):
            raise SelectorError(f'field label not supported: "{field_name}"')
        requirements.append(FieldRequirement(field_name, value.strip(), operator == "!="))
    return tuple(requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field path in an object ("" when absent)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return str(current).lower()
    return str(current)


def fields_match(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    """Whether an object satisfies every term of a field selector."""
    return all((field_value(obj, r.field) == r.value) != r.negated for r in selector)
