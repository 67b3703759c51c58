"""Request bodies kubectl sends in Kubernetes' protobuf encoding, for the kinds it creates so
(`kubectl autoscale` posts an autoscaling/v1 HorizontalPodAutoscaler, `kubectl drain` a
policy/v1 Eviction; `kubectl auth` and `create token` post reviews and token requests): their
fields the local cluster reads, in the JSON form. Other kinds are not decoded."""

from __future__ import annotations

from typing import Any

from gyre_local.store.store import bad_request

_MAGIC = b"k8s\x00"
# A message's schema: field number -> (JSON name, kind); a kind is "string", "strings", "int",
# "map" (of strings) or the schema of a nested message.
Schema = dict[int, tuple[str, Any]]
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    14: ("finalizers", "strings"),
}
_CROSS_VERSION_REFERENCE: Schema = {
    1: ("kind", "string"),
    2: ("name", "string"),
    3: ("apiVersion", "string"),
}
_TYPE_META: Schema = {1: ("apiVersion", "string"), 2: ("kind", "string")}
_MAP_ENTRY: Schema = {1: ("key", "string"), 2: ("value", "string")}
_OBJECTS: dict[tuple[str, str], Schema] = {
    ("policy/v1", "Eviction"): {
        1: ("metadata", _OBJECT_META),
        2: (
            "deleteOptions",
            {
                1: ("gracePeriodSeconds", "int"),
                4: ("propagationPolicy", "string"),
                5: ("dryRun", "strings"),
            },
        ),
    },
    ("autoscaling/v1", "HorizontalPodAutoscaler"): {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: ("scaleTargetRef", _CROSS_VERSION_REFERENCE),
                2: ("minReplicas", "int"),
                3: ("maxReplicas", "int"),
                4: ("targetCPUUtilizationPercentage", "int"),
            },
        ),
    },
}


def is_protobuf(raw: bytes) -> bool:
    """Whether a body is in Kubernetes' protobuf envelope."""
    return raw.startswith(_MAGIC)


def decode_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON form of an object in Kubernetes' protobuf envelope (runtime.Unknown), or None
    when it is of a kind not decoded here."""
    envelope = _fields(raw[len(_MAGIC) :])
    type_meta = _message(_last(envelope.get(1), b""), _TYPE_META)
    schema = _OBJECTS.get((type_meta.get("apiVersion", ""), type_meta.get("kind", "")))
    if schema is None:
        return None
    return {**type_meta, **_message(_last(envelope.get(2), b""), schema)}


def decode(raw: bytes, schema: Schema) -> dict[str, Any]:
    """The JSON form of the fields `schema` names in the object of Kubernetes' protobuf
    envelope, whatever its kind."""
    return _message(_last(_fields(raw[len(_MAGIC) :]).get(2), b""), schema)


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    """The JSON form of the fields `schema` names in a message (others are skipped)."""
    result: dict[str, Any] = {}
    for number, values in _fields(data).items():
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "string":
            # Every string field is sent, empty or not; an empty one is unset.
            text = bytes(_last(values, b"")).decode()
            if text:
                result[name] = text
        elif kind == "strings":
            result[name] = [bytes(v).decode() for v in values]
        elif kind == "int":
            result[name] = _signed(_last(values, 0))
        elif kind == "map":
            entries = (
                _message(bytes(v), {1: ("key", "string"), 2: ("value", "string")}) for v in values
            )
            result[name] = {e.get("key", ""): e.get("value", "") for e in entries}
        else:
            result[name] = _message(bytes(_last(values, b"")), kind)
    return result


def _last(values: list[Any] | None, default: Any) -> Any:
    """A non-repeated field's value: the last one given, as protobuf decoders take it."""
    return values[-1] if values else default


def _signed(value: int) -> int:
    """An int32/int64 varint as the signed number it encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: bytes) -> dict[int, list[Any]]:
    """The fields of a message: varints as ints, length-delimited ones as bytes."""
    fields: dict[int, list[Any]] = {}
    position = 0
    try:
        while position < len(data):
            key, position = _varint(data, position)
            number, wire_type = key >> 3, key & 7
            value: int | bytes
            if wire_type == 0:
                value, position = _varint(data, position)
            elif wire_type == 2:
                length, position = _varint(data, position)
                value, position = data[position : position + length], position + length
            elif wire_type in (1, 5):
                size = 8 if wire_type == 1 else 4
                value, position = data[position : position + size], position + size
            else:
                raise ValueError(f"wire type {wire_type}")
            fields.setdefault(number, []).append(value)
    except (IndexError, ValueError) as error:
        raise bad_request(f"the body of the request could not be decoded: {error}") from error
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
