"""Custom resources checked against a CRD's openAPIV3Schema and CEL rules, as apiserver does."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from jsonschema.exceptions import FormatError, ValidationError

from gyre_local.jsoncopy import json_copy
from gyre_local.schema.cel import (
    HAS_OLD_SELF,
    NO_SUCH_OVERLOAD,
    CompiledRule,
    RuleCompileError,
    RuleEvaluationError,
    escape_property,
)

# The cause reasons of metav1.StatusCause and the words kube-apiserver opens each message with.
_ERROR_WORDS = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}
_VALUE_OMITTED = frozenset(
    {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"}
)
# Schema errors after which kube-apiserver does not evaluate any CEL rule of the object.
_BLOCKING = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)
_CEL_SKIPPED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_ROOT = "<nil>"
_MISSING = object()
"""Stands for a value with no counterpart in the old object."""


def go_value(value: Any) -> str:
    """A value printed as Go's field.Error prints a bad value."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def go_float(number: float) -> str:
    """A float64 printed with Go's %v (shortest digits, exponent below 1e-4 and from 1e21)."""
    if number != number or number in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(number)]
    shortest = repr(number)
    decimal = Decimal(shortest)
    if not -4 <= decimal.adjusted() < 21:
        # Python's repr and Go agree on the exponent form: 1e+21, 1.5e-05.
        return shortest
    text = format(decimal, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class FieldError:
    """One validation failure, shaped like a metav1.StatusCause (field, reason, message)."""

    field: str
    type: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def field_error(path: str, reason: str, value: Any = None, detail: str = "") -> FieldError:
    """A FieldError whose message is worded as apimachinery's field.Error.ErrorBody()."""
    message = _ERROR_WORDS[reason]
    if reason not in _VALUE_OMITTED:
        message += f": {go_value(value)}"
    if detail:
        message += f": {detail}"
    return FieldError(path or _ROOT, reason, message, value)


# --- openAPIV3Schema -> JSON Schema -------------------------------------------------------------

_SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_DROPPED = frozenset({"nullable", "default", "example", "description", "title", "externalDocs"})


def _is_int_or_string_pair(branches: Any) -> bool:
    return isinstance(branches, list) and sorted(
        json.dumps(b, sort_keys=True) for b in branches
    ) == ['{"type": "integer"}', '{"type": "string"}']


def to_json_schema(openapi_v3_schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema as a Draft 4 JSON Schema, with Kubernetes' meaning of its extensions."""
    schema = openapi_v3_schema
    result: dict[str, Any] = {}
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in _DROPPED:
            continue
        if key in _SUBSCHEMA_MAPS:
            result[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS:
            # apiserver turns int-or-string into type [integer, string]; the anyOf pair
            # that CRD generators add next to it would only repeat that check.
            if not (int_or_string and _is_int_or_string_pair(value)):
                result[key] = [to_json_schema(sub) for sub in value]
        elif key in ("items", "not", "additionalProperties", "additionalItems"):
            result[key] = to_json_schema(value) if isinstance(value, dict) else value
        else:
            result[key] = value
    if int_or_string:
        result["type"] = ["integer", "string"]
    if schema.get("nullable") and "type" in result:
        types = result["type"] if isinstance(result["type"], list) else [result["type"]]
        result["type"] = [*types, "null"]
    return result


# --- formats kube-apiserver checks ---------------------------------------------------------------


def _is_uri(text: str) -> bool:
    # Go's url.ParseRequestURI: an absolute URI or an absolute path.
    if text.startswith("/"):
        return " " not in text
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme)) and " " not in text


def _is_ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?"
)


def _is_date_time(text: str) -> bool:
    if not _DATE_TIME.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


_DURATION = re.compile(
    # Go's time.ParseDuration ("1h30m", "0"), then the "3 days" forms go-openapi also accepts.
    r"[-+]?(((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+|0)"
    r"|[-+]?\d+\s*(ns|us|ms|s|m|h|d|w|sec|secs|second|seconds|min|mins|minute|minutes|hour|hours"
    r"|day|days|week|weeks)"
)


def _matches(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    compiled = re.compile(pattern, flags)
    return lambda text: bool(compiled.fullmatch(text))


_UUID = r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"
_UUID_V = r"[0-9a-f]{8}-?[0-9a-f]{4}-?%s[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}"
_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "uri": _is_uri,
    "email": _matches(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    "hostname": _matches(
        r"(?=.{1,255}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
    ),
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
    "cidr": _is_cidr,
    "mac": _matches(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}|([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}"),
    "uuid": _matches(_UUID, re.IGNORECASE),
    "uuid3": _matches(_UUID_V % "3", re.IGNORECASE),
    "uuid4": _matches(_UUID_V % "4", re.IGNORECASE),
    "uuid5": _matches(_UUID_V % "5", re.IGNORECASE),
    "byte": _is_base64,
    "date": _is_date,
    "datetime": _is_date_time,
    "duration": _matches(_DURATION.pattern),
    "hexcolor": _matches(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})"),
    "rgbcolor": _matches(r"rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)"),
    "bsonobjectid": _matches(r"[0-9a-fA-F]{24}"),
    "ssn": _matches(r"\d{3}[- ]?\d{2}[- ]?\d{4}"),
}


def _format_key(name: str) -> str:
    # go-openapi's strfmt registry ignores case, dashes and underscores in format names.
    return re.sub(r"[-_ ]", "", name.lower())


class _KubernetesFormats(jsonschema.FormatChecker):
    """The string formats kube-apiserver checks; any other format is accepted unchecked."""

    def __init__(self) -> None:
        super().__init__(formats=())

    def check(self, instance: object, format: str) -> None:
        conforms = _FORMAT_CHECKS.get(_format_key(format))
        if conforms is not None and isinstance(instance, str) and not conforms(instance):
            raise FormatError(f"{instance!r} is not a {format!r}")


def _is_json_integer(checker: Any, instance: object) -> bool:
    # kube-openapi accepts a float with an integral value where an integer is expected.
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


_Draft4 = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    type_checker=jsonschema.Draft4Validator.TYPE_CHECKER.redefine("integer", _is_json_integer),
)


# --- jsonschema errors worded as kube-apiserver words them ---------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _openapi_path(path: Iterable[str | int]) -> str:
    """A data path as kube-openapi names it in messages: spec.steps[0].weight, spec.labels.key."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text


def _number(value: Any) -> str:
    return go_float(float(value)) if isinstance(value, int | float) else str(value)


class _ErrorTranslator:
    """Turns jsonschema errors into the FieldErrors kube-apiserver reports for the same data."""

    def __init__(self) -> None:
        self._required_seen: Counter[tuple[Any, ...]] = Counter()

    def translate(self, error: ValidationError) -> FieldError:
        keyword = error.validator
        path = _openapi_path(error.absolute_path)
        value = error.instance
        limit = error.validator_value
        name = f"{path} in body"
        if keyword == "required":
            return self._required(error, path)
        if keyword == "type":
            expected = [limit] if isinstance(limit, str) else [t for t in limit if t != "null"]
            actual = _json_type(value)
            detail = f'{name} must be of type {",".join(expected)}: "{actual}"'
            return field_error(path, "FieldValueTypeInvalid", actual, detail)
        if keyword == "enum":
            allowed = ", ".join(
                json.dumps(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
                for v in limit
            )
            detail = f"supported values: {allowed}"
            return field_error(path, "FieldValueNotSupported", value, detail)
        if keyword == "maxLength":
            detail = f"may not be more than {limit} bytes"
            return field_error(path, "FieldValueTooLong", value, detail)
        if keyword in ("maxItems", "maxProperties"):
            noun = "item" if limit == 1 else "items"
            detail = f"must have at most {limit} {noun}"
            return field_error(path, "FieldValueTooMany", len(value), detail)
        if keyword in ("anyOf", "oneOf", "not"):
            what = {
                "anyOf": "must validate at least one schema (anyOf)",
                "oneOf": "must validate one and only one schema (oneOf)",
                "not": "must not validate the schema (not)",
            }[keyword]
            return field_error(_ROOT, "FieldValueInvalid", "", f'"{path}" {what}')
        if keyword == "format":
            detail = f"{name} must be of type {limit}: {go_value(value)}"
            return field_error(path, "FieldValueTypeInvalid", value, detail)
        bad, detail = self._invalid(keyword, error, name)
        return field_error(path, "FieldValueInvalid", bad, detail)

    def _required(self, error: ValidationError, path: str) -> FieldError:
        # jsonschema reports each missing property separately, in the order of `required`.
        node = (tuple(error.absolute_path), id(error.schema))
        missing = [p for p in error.validator_value if p not in error.instance]
        index = self._required_seen[node]
        self._required_seen[node] += 1
        prop = missing[min(index, len(missing) - 1)]
        return field_error(f"{path}.{prop}" if path else prop, "FieldValueRequired")

    @staticmethod
    def _invalid(keyword: str, error: ValidationError, name: str) -> tuple[Any, str]:
        value, limit, schema = error.instance, error.validator_value, error.schema
        if keyword == "maximum":
            relation = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
            return value, f"{name} should be {relation} {_number(limit)}"
        if keyword == "minimum":
            relation = (
                "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
            )
            return value, f"{name} should be {relation} {_number(limit)}"
        if keyword == "multipleOf":
            return value, f"{name} should be a multiple of {_number(limit)}"
        if keyword == "minLength":
            return value, f"{name} should be at least {limit} chars long"
        if keyword == "pattern":
            return value, f"{name} should match '{limit}'"
        if keyword == "minItems":
            return len(value), f"{name} should have at least {limit} items"
        if keyword == "minProperties":
            return len(value), f"{name} should have at least {limit} properties"
        if keyword == "uniqueItems":
            return "", f"{name} shouldn't contain duplicates"
        return value, error.message


# --- the schema as a tree, for pruning, defaulting, list types and CEL ---------------------------


@dataclass(frozen=True)
class _BrokenRule:
    """A rule that could not be compiled, kept so that validation reports it instead of passing."""

    rule: str
    problem: str


@dataclass
class _Node:
    schema: dict[str, Any]
    path: str
    properties: dict[str, _Node] = field(default_factory=dict)
    additional: _Node | None = None
    items: _Node | None = None
    rules: list[CompiledRule | _BrokenRule] = field(default_factory=list)
    rules_below: bool = False
    """Whether this node or one under it declares CEL rules."""
    sets_or_maps_below: bool = False
    """Whether this node or one under it is a list of type set or map."""

    @property
    def type(self) -> str:
        return str(self.schema.get("type", ""))

    @property
    def nullable(self) -> bool:
        return bool(self.schema.get("nullable"))

    @property
    def has_default(self) -> bool:
        return "default" in self.schema

    @property
    def keeps_unknown(self) -> bool:
        return bool(
            self.schema.get("x-kubernetes-preserve-unknown-fields")
            or self.schema.get("additionalProperties") is True
        )

    @property
    def embedded(self) -> bool:
        return bool(self.schema.get("x-kubernetes-embedded-resource"))

    @property
    def list_type(self) -> str:
        return str(self.schema.get("x-kubernetes-list-type", "atomic"))

    @property
    def map_keys(self) -> list[str]:
        return list(self.schema.get("x-kubernetes-list-map-keys", []))

    def default_copy(self) -> Any:
        return json_copy(self.schema["default"])

    def child(self, key: str) -> _Node | None:
        return self.properties.get(key, self.additional)

    def child_path(self, key: str, path: str) -> str:
        """The field path of a member, as apimachinery's field.Path prints it."""
        if key not in self.properties:
            return f"{path}[{key}]"
        return f"{path}.{key}" if path else key

    def walk(self) -> Iterator[_Node]:
        yield self
        for child in (*self.properties.values(), self.additional, self.items):
            if child is not None:
                yield from child.walk()


def _build(schema: dict[str, Any], path: str) -> _Node:
    node = _Node(schema, path)
    for name, sub in schema.get("properties", {}).items():
        node.properties[name] = _build(sub, f"{path}.properties[{name}]")
    if isinstance(schema.get("additionalProperties"), dict):
        node.additional = _build(schema["additionalProperties"], f"{path}.additionalProperties")
    if isinstance(schema.get("items"), dict):
        node.items = _build(schema["items"], f"{path}.items")
    for spec in schema.get("x-kubernetes-validations", []):
        try:
            node.rules.append(CompiledRule.compile(spec))
        except RuleCompileError as error:
            node.rules.append(_BrokenRule(spec.get("rule", ""), problem=str(error)))
    children = [c for c in (*node.properties.values(), node.additional, node.items) if c]
    node.rules_below = bool(node.rules) or any(c.rules_below for c in children)
    node.sets_or_maps_below = node.list_type in ("set", "map") or any(
        c.sets_or_maps_below for c in children
    )
    return node


def _prune(value: Any, node: _Node, *, resource_root: bool = False) -> None:
    if isinstance(value, dict):
        kept = {"apiVersion", "kind", "metadata"} if resource_root or node.embedded else set()
        for key in list(value):
            child = node.child(key)
            if key == "metadata" and kept:
                continue  # object metadata is pruned by its own decoding, not by the schema
            if child is not None:
                _prune(value[key], child)
            elif key not in kept and not node.keeps_unknown:
                del value[key]
    elif isinstance(value, list) and node.items is not None:
        for item in value:
            _prune(item, node.items)


def _drop_nulls(value: Any, node: _Node | None) -> None:
    if node is None:
        return
    if isinstance(value, dict):
        for key in list(value):
            child = node.child(key)
            if child is None:
                continue
            if value[key] is None and not child.nullable and not child.has_default:
                del value[key]
            else:
                _drop_nulls(value[key], child)
    elif isinstance(value, list):
        for item in value:
            _drop_nulls(item, node.items)


def _is_defaultable(value: Any, node: _Node | None) -> bool:
    return value is None and node is not None and not node.nullable and node.has_default


def _apply_defaults(value: Any, node: _Node | None) -> None:
    if node is None:
        return
    if isinstance(value, dict):
        for key, prop in node.properties.items():
            if key not in value and prop.has_default:
                value[key] = prop.default_copy()
        for key in value:
            member = node.child(key)
            if member is not None and _is_defaultable(value[key], member):
                value[key] = member.default_copy()
            _apply_defaults(value[key], member)
    elif isinstance(value, list) and node.items is not None:
        for index, item in enumerate(value):
            if _is_defaultable(item, node.items):
                value[index] = node.items.default_copy()
            _apply_defaults(value[index], node.items)


# --- list-type set and map ----------------------------------------------------------------------


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of JSON values that, unlike ==, tells true from 1 and 1 from "1"."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _map_key(item: Any, keys: list[str]) -> str | None:
    if not isinstance(item, dict):
        return None
    return json.dumps({k: item[k] for k in keys if k in item}, sort_keys=True)


def _list_errors(value: Any, node: _Node, path: str) -> Iterator[FieldError]:
    if not node.sets_or_maps_below:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                yield from _list_errors(item, child, node.child_path(key, path))
    elif isinstance(value, list):
        yield from _duplicates(value, node, path)
        if node.items is not None:
            for index, item in enumerate(value):
                yield from _list_errors(item, node.items, f"{path}[{index}]")


def _duplicates(items: list[Any], node: _Node, path: str) -> Iterator[FieldError]:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if node.list_type == "set":
            identity, bad = json.dumps([_json_type(item), item], sort_keys=True), item
        elif node.list_type == "map" and isinstance(item, dict):
            identity = _map_key(item, node.map_keys) or ""
            bad = {k: item[k] for k in node.map_keys if k in item}
        else:
            continue
        if identity in seen:
            yield field_error(f"{path}[{index}]", "FieldValueDuplicate", bad)
        seen.add(identity)


# --- ratcheting: updates may keep invalid values they do not change ------------------------------


def _unchanged(parts: list[str | int], new: Any, old: Any, node: _Node | None) -> bool:
    """Whether the value at parts is the same in new and old, correlated as apiserver does."""
    for part in parts:
        if isinstance(part, int):
            # List items correlate with old ones only in map lists, by their key fields.
            if node is None or node.list_type != "map" or not isinstance(old, list):
                return False
            key = _map_key(new[part], node.map_keys)
            old = next((item for item in old if _map_key(item, node.map_keys) == key), _MISSING)
            new, node = new[part], node.items
        else:
            if not isinstance(old, dict) or part not in old:
                return False
            old, new = old[part], new[part]
            node = node.child(part) if node is not None else None
    return old is not _MISSING and json_equal(new, old)


# --- metadata -----------------------------------------------------------------------------------


def _metadata_errors(obj: dict[str, Any]) -> Iterator[FieldError]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return
    name = metadata.get("name")
    if not name:
        if not metadata.get("generateName"):
            detail = "name or generateName is required"
            yield field_error("metadata.name", "FieldValueRequired", detail=detail)
        return
    if not isinstance(name, str):
        return
    if len(name) > 253:
        detail = "must be no more than 253 characters"
        yield field_error("metadata.name", "FieldValueInvalid", name, detail)
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        yield field_error("metadata.name", "FieldValueInvalid", name, _DNS1123_SUBDOMAIN_MESSAGE)


# --- CEL ----------------------------------------------------------------------------------------


def _cel_value(value: Any, node: _Node | None) -> Any:
    """A JSON value typed as CEL sees it under the schema (escaped names, doubles, bytes)."""
    if node is None or value is None:
        return value
    if isinstance(value, dict):
        return {
            escape_property(k) if k in node.properties else k: _cel_value(v, node.child(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_cel_value(item, node.items) for item in value]
    if node.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if node.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if node.schema.get("format") == "byte" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
    return value


_FIELD_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]")


def _rule_path(base: str, field_path: str | None) -> str:
    """The path of a rule's error: its node, or the node plus the rule's fieldPath."""
    path = base
    for name, key in _FIELD_PATH_PART.findall(field_path or ""):
        path = f"{path}[{key}]" if key else (f"{path}.{name}" if path else name)
    return path


def _rule_failure(rule: CompiledRule, path: str, schema_type: str, detail: str) -> FieldError:
    target = _rule_path(path, rule.field_path)
    if rule.reason in ("FieldValueForbidden", "FieldValueRequired"):
        return field_error(target, rule.reason, detail=detail)
    if rule.reason == "FieldValueDuplicate":
        return field_error(target, rule.reason, schema_type)
    return field_error(target, "FieldValueInvalid", schema_type, detail)


def _evaluation_failure(rule: CompiledRule, error: RuleEvaluationError) -> str:
    shown = rule.message or rule.rule.strip()
    if str(error) == NO_SUCH_OVERLOAD:
        return (
            f"'{error}': call arguments did not match a supported operator, function or macro "
            f"signature for rule: {shown}"
        )
    return f"{error} evaluating rule: {shown}"


def _evaluate_rules(value: Any, old: Any, node: _Node, path: str) -> Iterator[FieldError]:
    activation: dict[str, Any] | None = None
    for rule in node.rules:
        if isinstance(rule, _BrokenRule):
            detail = f"rule {rule.rule!r} was not evaluated: {rule.problem}"
            yield field_error(path, "InternalError", detail=detail)
            continue
        if rule.uses_old_self and old is _MISSING and not rule.optional_old_self:
            continue  # transition rules apply to updates of a value that existed before
        if not rule.uses_old_self and old is not _MISSING and json_equal(value, old):
            continue  # an unchanged value is not held to its rules again (ratcheting)
        if activation is None:
            activation = {
                "self": _cel_value(value, node),
                "oldSelf": None if old is _MISSING else _cel_value(old, node),
                HAS_OLD_SELF: old is not _MISSING,
            }
        try:
            if rule.passes(activation):
                continue
        except RuleEvaluationError as error:
            yield field_error(
                path, "FieldValueInvalid", node.type, _evaluation_failure(rule, error)
            )
            continue
        yield _rule_failure(rule, path, node.type, rule.failure_detail(activation))


def _cel_errors(value: Any, old: Any, node: _Node, path: str) -> Iterator[FieldError]:
    # Rules apply to values that are present and not null.
    if value is None or not node.rules_below:
        return
    if node.rules:
        yield from _evaluate_rules(value, old, node, path)
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                old_item = old_map.get(key, _MISSING)
                yield from _cel_errors(item, old_item, child, node.child_path(key, path))
    elif isinstance(value, list) and node.items is not None:
        old_items = _correlated_items(value, old, node)
        for index, item in enumerate(value):
            yield from _cel_errors(item, old_items[index], node.items, f"{path}[{index}]")


def _correlated_items(items: list[Any], old: Any, node: _Node) -> list[Any]:
    # Only map lists correlate their items with the old object, by their key fields.
    if node.list_type != "map" or not isinstance(old, list):
        return [_MISSING] * len(items)
    by_key = {_map_key(item, node.map_keys): item for item in old}
    return [by_key.get(_map_key(item, node.map_keys), _MISSING) for item in items]


# --- the validator ------------------------------------------------------------------------------


class SchemaValidator:
    """Validates, prunes and defaults custom resources of one CRD version.

    `rule_errors` lists the CEL rules that cannot be compiled or use Kubernetes functions the
    local cluster lacks (kube-apiserver would refuse such a CRD); validate() reports them on
    every object that reaches them instead of letting the object pass.
    """

    def __init__(self, openapi_v3_schema: dict[str, Any]) -> None:
        self.json_schema = to_json_schema(openapi_v3_schema)
        self._validator = _Draft4(self.json_schema, format_checker=_KubernetesFormats())
        self._root = _build(openapi_v3_schema, "openAPIV3Schema")
        self.rule_errors: list[FieldError] = [
            field_error(
                f"{node.path}.x-kubernetes-validations[{index}].rule",
                "FieldValueInvalid",
                rule.rule,
                rule.problem,
            )
            for node in self._root.walk()
            for index, rule in enumerate(node.rules)
            if isinstance(rule, _BrokenRule)
        ]

    def prepare(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy of obj with unknown fields pruned, disallowed nulls dropped and defaults set."""
        prepared = json_copy(obj)
        _prune(prepared, self._root, resource_root=True)
        _drop_nulls(prepared, self._root)
        _apply_defaults(prepared, self._root)
        return prepared

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
        """The errors kube-apiserver reports for obj (an update of old, when given).

        On update, as with kube-apiserver's validation ratcheting, a value equal to its old
        counterpart is not refused for schema errors or for rules that do not use oldSelf.
        """
        translator = _ErrorTranslator()
        errors = list(_metadata_errors(obj))
        errors += [
            translator.translate(error)
            for error in self._validator.iter_errors(obj)
            if old is None or not _unchanged(list(error.absolute_path), obj, old, self._root)
        ]
        errors += list(_list_errors(obj, self._root, ""))
        if any(error.type in _BLOCKING for error in errors):
            if self._root.rules_below:
                errors.append(field_error("", "FieldValueInvalid", None, _CEL_SKIPPED))
            return errors
        errors += list(_cel_errors(obj, _MISSING if old is None else old, self._root, ""))
        return errors
