"""CRD schema and CEL validation of custom resources, worded as kube-apiserver words it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import kubernetes
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre_local.schema.validation import FieldError, SchemaValidator, go_float, to_json_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["model", "source"],
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.canary) || has(self.rollout)",
                    "message": "canary needs a rollout",
                    "fieldPath": ".rollout",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.replicas <= self.maxReplicas",
                    "messageExpression": "'replicas must be at most ' + string(self.maxReplicas)",
                },
            ],
            "properties": {
                "model": {
                    "type": "string",
                    "minLength": 3,
                    "maxLength": 12,
                    "pattern": "^[a-z][a-z0-9-]*$",
                    "x-kubernetes-validations": [
                        {"rule": "self == oldSelf", "message": "model is immutable"}
                    ],
                },
                "source": {
                    "type": "object",
                    "required": ["uri"],
                    "properties": {
                        "uri": {"type": "string", "format": "uri"},
                        "format": {"type": "string", "enum": ["csv", "parquet"], "default": "csv"},
                        "checksum": {"type": "string", "format": "byte"},
                    },
                },
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "maxReplicas": {"type": "integer", "maximum": 10, "default": 5},
                "threshold": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "maximum": 1,
                    "exclusiveMaximum": True,
                    "multipleOf": 0.25,
                },
                "mode": {"type": "string", "nullable": True, "enum": ["fast", "safe"]},
                "note": {"type": "string", "nullable": True},
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
                "canary": {"type": "boolean"},
                "rollout": {
                    "type": "object",
                    "properties": {
                        "steps": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 3,
                            "x-kubernetes-validations": [
                                {
                                    "rule": "self.all(s, s.weight > 0)",
                                    "message": "every step needs weight",
                                },
                                {"rule": "self.map(s, s.weight).isSorted()"},
                            ],
                            "items": {
                                "type": "object",
                                "required": ["weight"],
                                "properties": {
                                    "weight": {"type": "integer", "maximum": 100},
                                    "pause": {"type": "string", "default": "1m"},
                                },
                            },
                        },
                        "strategy": {
                            "type": "string",
                            "x-kubernetes-validations": [
                                {
                                    "rule": "oldSelf != 'Replace' || self == 'Replace'",
                                    "message": "cannot leave Replace",
                                    "reason": "FieldValueForbidden",
                                }
                            ],
                        },
                    },
                },
                "tags": {
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "number": {
                                "type": "integer",
                                "x-kubernetes-validations": [
                                    {"rule": "self == oldSelf", "message": "port is immutable"}
                                ],
                            },
                        },
                    },
                },
                "labels": {
                    "type": "object",
                    "maxProperties": 2,
                    "additionalProperties": {
                        "type": "string",
                        "x-kubernetes-validations": [
                            {"rule": "self.size() < 5", "message": "label too long"}
                        ],
                    },
                },
                "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "endpoint": {"type": "string", "format": "hostname"},
                "address": {"type": "string", "format": "ipv4"},
                "createdAt": {"type": "string", "format": "date-time"},
                "namespace": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self != 'kube-system'"}],
                },
                "options": {
                    "type": "object",
                    "properties": {"namespace": {"type": "string"}},
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.__namespace__ != 'kube-system'",
                            "message": "no system namespace",
                        }
                    ],
                },
                "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.5"}]},
                "extra": {
                    "type": "object",
                    "properties": {"key": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self.missing == 'x'"}],
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return SchemaValidator(SCHEMA)


def manifest(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "wine", "source": {"uri": "s3://bucket/wine.csv"}}
    base.update(spec)
    return {
        "apiVersion": "gyre.example/v1",
        "kind": "Deployment",
        "metadata": {"name": "wine", "namespace": "default"},
        "spec": base,
    }


def errors_of(
    validator: SchemaValidator, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> list[FieldError]:
    prepared_old = validator.prepare(old) if old is not None else None
    return validator.validate(validator.prepare(obj), prepared_old)


def test_a_valid_object_has_no_errors(validator: SchemaValidator) -> None:
    assert errors_of(validator, manifest()) == []


SKIPPED = (
    '<nil>: Invalid value: "null": some validation rules were not checked because the object '
    "was invalid; correct the existing errors to complete validation"
)

SCHEMA_CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    (
        "type",
        {"replicas": "string"},
        "spec.replicas",
        "FieldValueTypeInvalid",
        'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
    ),
    (
        "type-object",
        {"source": "s3://x"},
        "spec.source",
        "FieldValueTypeInvalid",
        'Invalid value: "string": spec.source in body must be of type object: "string"',
    ),
    (
        "required",
        {"source": {"format": "csv"}},
        "spec.source.uri",
        "FieldValueRequired",
        "Required value",
    ),
    (
        "enum",
        {"source": {"uri": "s3://x", "format": "xlsx"}},
        "spec.source.format",
        "FieldValueNotSupported",
        'Unsupported value: "xlsx": supported values: "csv", "parquet"',
    ),
    (
        "minimum",
        {"replicas": -1},
        "spec.replicas",
        "FieldValueInvalid",
        "Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
    ),
    (
        "maximum",
        {"rollout": {"steps": [{"weight": 150}]}},
        "spec.rollout.steps[0].weight",
        "FieldValueInvalid",
        "Invalid value: 150: spec.rollout.steps[0].weight in body should be less than or equal "
        "to 100",
    ),
    (
        "exclusive-maximum",
        {"threshold": 1},
        "spec.threshold",
        "FieldValueInvalid",
        "Invalid value: 1: spec.threshold in body should be less than 1",
    ),
    (
        "exclusive-minimum",
        {"threshold": 0.0},
        "spec.threshold",
        "FieldValueInvalid",
        "Invalid value: 0: spec.threshold in body should be greater than 0",
    ),
    (
        "multiple-of",
        {"threshold": 0.3},
        "spec.threshold",
        "FieldValueInvalid",
        "Invalid value: 0.3: spec.threshold in body should be a multiple of 0.25",
    ),
    (
        "min-length",
        {"model": "ab"},
        "spec.model",
        "FieldValueInvalid",
        'Invalid value: "ab": spec.model in body should be at least 3 chars long',
    ),
    (
        "max-length",
        {"model": "a-very-long-model"},
        "spec.model",
        "FieldValueTooLong",
        "Too long: may not be more than 12 bytes",
    ),
    (
        "pattern",
        {"model": "Wine"},
        "spec.model",
        "FieldValueInvalid",
        "Invalid value: \"Wine\": spec.model in body should match '^[a-z][a-z0-9-]*$'",
    ),
    (
        "min-items",
        {"rollout": {"steps": []}},
        "spec.rollout.steps",
        "FieldValueInvalid",
        "Invalid value: 0: spec.rollout.steps in body should have at least 1 items",
    ),
    (
        "max-items",
        {"rollout": {"steps": [{"weight": 1}, {"weight": 2}, {"weight": 3}, {"weight": 4}]}},
        "spec.rollout.steps",
        "FieldValueTooMany",
        "Too many: 4: must have at most 3 items",
    ),
    (
        "max-properties",
        {"labels": {"a": "1", "b": "2", "c": "3"}},
        "spec.labels",
        "FieldValueTooMany",
        "Too many: 3: must have at most 2 items",
    ),
    (
        "map-value-type",
        {"labels": {"team": 7}},
        "spec.labels.team",
        "FieldValueTypeInvalid",
        'Invalid value: "integer": spec.labels.team in body must be of type string: "integer"',
    ),
    (
        "format-uri",
        {"source": {"uri": "not a uri"}},
        "spec.source.uri",
        "FieldValueTypeInvalid",
        'Invalid value: "not a uri": spec.source.uri in body must be of type uri: "not a uri"',
    ),
    (
        "format-hostname",
        {"endpoint": "-bad-"},
        "spec.endpoint",
        "FieldValueTypeInvalid",
        'Invalid value: "-bad-": spec.endpoint in body must be of type hostname: "-bad-"',
    ),
    (
        "format-ipv4",
        {"address": "10.0.0.300"},
        "spec.address",
        "FieldValueTypeInvalid",
        'Invalid value: "10.0.0.300": spec.address in body must be of type ipv4: "10.0.0.300"',
    ),
    (
        "format-date-time",
        {"createdAt": "yesterday"},
        "spec.createdAt",
        "FieldValueTypeInvalid",
        'Invalid value: "yesterday": spec.createdAt in body must be of type date-time: "yesterday"',
    ),
    (
        "format-byte",
        {"source": {"uri": "s3://x", "checksum": "***"}},
        "spec.source.checksum",
        "FieldValueTypeInvalid",
        'Invalid value: "***": spec.source.checksum in body must be of type byte: "***"',
    ),
    (
        "int-or-string",
        {"port": True},
        "spec.port",
        "FieldValueTypeInvalid",
        'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
    ),
    (
        "nullable-enum",
        {"mode": None},
        "spec.mode",
        "FieldValueNotSupported",
        'Unsupported value: "null": supported values: "fast", "safe"',
    ),
    (
        "list-set",
        {"tags": ["a", "b", "a"]},
        "spec.tags[2]",
        "FieldValueDuplicate",
        'Duplicate value: "a"',
    ),
    (
        "list-map",
        {"ports": [{"name": "http"}, {"name": "http", "number": 2}]},
        "spec.ports[1]",
        "FieldValueDuplicate",
        'Duplicate value: {"name":"http"}',
    ),
]


@pytest.mark.parametrize(
    ("spec", "field", "reason", "message"),
    [case[1:] for case in SCHEMA_CASES],
    ids=[case[0] for case in SCHEMA_CASES],
)
def test_schema_errors_are_worded_as_kube_apiserver(
    validator: SchemaValidator, spec: dict[str, Any], field: str, reason: str, message: str
) -> None:
    errors = errors_of(validator, manifest(**spec))
    assert FieldError(field, reason, message, errors[0].value) == errors[0]
    assert str(errors[0]) == f"{field}: {message}"


def test_blocking_schema_errors_skip_every_cel_rule(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(replicas="many", maxReplicas=1, canary=True))
    assert [str(e) for e in errors] == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type '
        'integer: "string"',
        SKIPPED,
    ]


def test_non_blocking_schema_errors_still_run_cel_rules(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(replicas=-1, canary=True))
    assert [e.field for e in errors] == ["spec.replicas", "spec.rollout"]


def test_all_errors_are_reported_together(validator: SchemaValidator) -> None:
    spec = {"model": "X", "source": {"format": "xlsx"}, "replicas": 1.5}
    fields = {e.field for e in errors_of(validator, manifest(**spec))}
    assert fields == {
        "spec.model",
        "spec.source.uri",
        "spec.source.format",
        "spec.replicas",
        "<nil>",
    }


def test_integral_floats_are_integers(validator: SchemaValidator) -> None:
    assert errors_of(validator, manifest(replicas=2.0)) == []


def test_int_or_string_accepts_both(validator: SchemaValidator) -> None:
    assert errors_of(validator, manifest(port=8080)) == []
    assert errors_of(validator, manifest(port="http")) == []


def test_nullable_keeps_null_and_checks_it(validator: SchemaValidator) -> None:
    prepared = validator.prepare(manifest(note=None, mode=None))
    assert prepared["spec"]["note"] is None
    assert validator.validate(prepared) == [
        FieldError(
            "spec.mode",
            "FieldValueNotSupported",
            'Unsupported value: "null": supported values: "fast", "safe"',
            None,
        ),
        FieldError("<nil>", "FieldValueInvalid", SKIPPED.removeprefix("<nil>: "), None),
    ]


def test_null_in_a_non_nullable_field_is_dropped_or_defaulted(validator: SchemaValidator) -> None:
    prepared = validator.prepare(manifest(endpoint=None, replicas=None))
    assert "endpoint" not in prepared["spec"]
    assert prepared["spec"]["replicas"] == 1


def test_null_without_prepare_is_a_type_error(validator: SchemaValidator) -> None:
    errors = validator.validate(manifest(endpoint=None))
    assert str(errors[0]) == (
        'spec.endpoint: Invalid value: "null": spec.endpoint in body must be of type string: "null"'
    )


def test_prepare_applies_defaults_at_every_level(validator: SchemaValidator) -> None:
    prepared = validator.prepare(manifest(rollout={"steps": [{"weight": 10}, {"weight": 20}]}))
    spec = prepared["spec"]
    assert spec["replicas"] == 1
    assert spec["maxReplicas"] == 5
    assert spec["source"]["format"] == "csv"
    assert [s["pause"] for s in spec["rollout"]["steps"]] == ["1m", "1m"]


def test_prepare_keeps_given_values_and_does_not_touch_the_input(
    validator: SchemaValidator,
) -> None:
    obj = manifest(replicas=3, source={"uri": "s3://x", "format": "parquet"})
    original = copy.deepcopy(obj)
    prepared = validator.prepare(obj)
    assert obj == original
    assert prepared["spec"]["replicas"] == 3
    assert prepared["spec"]["source"]["format"] == "parquet"


def test_prepare_prunes_unknown_fields(validator: SchemaValidator) -> None:
    obj = manifest(unknown=1, source={"uri": "s3://x", "extra": True})
    obj["status"] = {"phase": "Ready"}
    obj["junk"] = "x"
    prepared = validator.prepare(obj)
    assert "unknown" not in prepared["spec"]
    assert "extra" not in prepared["spec"]["source"]
    assert "status" not in prepared
    assert "junk" not in prepared
    assert prepared["apiVersion"] == "gyre.example/v1"
    assert prepared["metadata"] == {"name": "wine", "namespace": "default"}


def test_prepare_keeps_what_the_schema_preserves(validator: SchemaValidator) -> None:
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "x"}]},
    }
    obj = manifest(params={"lr": 0.1, "nested": {"any": [1, 2]}}, template=template)
    obj["spec"]["labels"] = {"team": "ml"}
    prepared = validator.prepare(obj)
    assert prepared["spec"]["params"] == {"lr": 0.1, "nested": {"any": [1, 2]}}
    assert prepared["spec"]["template"] == template
    assert prepared["spec"]["labels"] == {"team": "ml"}


def test_embedded_resource_keeps_only_its_type_and_metadata_without_preserve() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "properties": {"spec": {"type": "object"}},
                    }
                },
            }
        },
    }
    obj = {
        "spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "other": 1}},
    }
    prepared = SchemaValidator(schema).prepare(obj)
    assert prepared["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {}}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Wine_Model",
            'Invalid value: "Wine_Model": a lowercase RFC 1123 subdomain must consist of lower '
            "case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        ("a" * 254, None),
        (None, "Required value: name or generateName is required"),
    ],
    ids=["subdomain", "too-long", "missing"],
)
def test_metadata_name_must_be_a_dns_subdomain(
    validator: SchemaValidator, name: str | None, message: str | None
) -> None:
    obj = manifest()
    obj["metadata"]["name"] = name
    errors = [e for e in errors_of(validator, obj) if e.field == "metadata.name"]
    if message is None:
        assert errors[0].message.endswith("must be no more than 253 characters")
    else:
        assert errors[0].message == message


def test_generate_name_stands_in_for_name(validator: SchemaValidator) -> None:
    obj = manifest()
    obj["metadata"] = {"generateName": "wine-"}
    assert errors_of(validator, obj) == []


# --- CEL ----------------------------------------------------------------------------------------


def test_immutability_rule_holds_on_create_and_unchanged_update(
    validator: SchemaValidator,
) -> None:
    assert errors_of(validator, manifest(model="wine")) == []
    assert errors_of(validator, manifest(model="wine"), manifest(model="wine")) == []


def test_immutability_rule_refuses_a_change(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(model="beer"), manifest(model="wine"))
    assert errors == [
        FieldError(
            "spec.model",
            "FieldValueInvalid",
            'Invalid value: "string": model is immutable',
            "string",
        )
    ]


def test_transition_rule_is_skipped_when_the_field_is_new(validator: SchemaValidator) -> None:
    old = manifest()
    new = manifest(rollout={"strategy": "Gradual", "steps": [{"weight": 5}]})
    assert errors_of(validator, new, old) == []


def test_transition_rule_with_reason_forbidden(validator: SchemaValidator) -> None:
    old = manifest(rollout={"strategy": "Replace", "steps": [{"weight": 5}]})
    new = manifest(rollout={"strategy": "Gradual", "steps": [{"weight": 5}]})
    assert [str(e) for e in errors_of(validator, new, old)] == [
        "spec.rollout.strategy: Forbidden: cannot leave Replace"
    ]
    assert errors_of(validator, new, old)[0].type == "FieldValueForbidden"


def test_list_rule_with_all(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(rollout={"steps": [{"weight": 0}, {"weight": 10}]}))
    assert [str(e) for e in errors] == [
        'spec.rollout.steps: Invalid value: "array": every step needs weight'
    ]


def test_rule_without_message_reports_the_rule(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(rollout={"steps": [{"weight": 30}, {"weight": 10}]}))
    assert [str(e) for e in errors] == [
        'spec.rollout.steps: Invalid value: "array": failed rule: self.map(s, s.weight).isSorted()'
    ]


def test_has_rule_with_field_path_and_reason(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(canary=True))
    assert errors == [
        FieldError("spec.rollout", "FieldValueRequired", "Required value: canary needs a rollout")
    ]
    assert errors_of(validator, manifest(canary=True, rollout={"steps": [{"weight": 1}]})) == []


def test_message_expression(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(replicas=7, maxReplicas=6))
    assert [str(e) for e in errors] == ['spec: Invalid value: "object": replicas must be at most 6']


def test_rules_on_map_values_name_the_key(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(labels={"team": "machine-learning"}))
    assert [str(e) for e in errors] == [
        'spec.labels[team]: Invalid value: "string": label too long'
    ]


def test_map_list_items_are_correlated_by_key(validator: SchemaValidator) -> None:
    old = manifest(ports=[{"name": "http", "number": 80}, {"name": "grpc", "number": 90}])
    reordered = manifest(ports=[{"name": "grpc", "number": 90}, {"name": "http", "number": 80}])
    assert errors_of(validator, reordered, old) == []
    changed = manifest(ports=[{"name": "grpc", "number": 91}, {"name": "new", "number": 1}])
    assert [str(e) for e in errors_of(validator, changed, old)] == [
        'spec.ports[0].number: Invalid value: "integer": port is immutable'
    ]


def test_reserved_property_names_are_escaped(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(options={"namespace": "kube-system"}))
    assert [str(e) for e in errors] == [
        'spec.options: Invalid value: "object": no system namespace'
    ]


def test_scalar_rule_on_a_property_named_like_a_keyword(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(namespace="kube-system"))
    assert [str(e) for e in errors] == [
        "spec.namespace: Invalid value: \"string\": failed rule: self != 'kube-system'"
    ]


def test_numbers_are_doubles_in_cel(validator: SchemaValidator) -> None:
    assert errors_of(validator, manifest(ratio=1)) == []
    assert [e.field for e in errors_of(validator, manifest(ratio=2))] == ["spec.ratio"]


def test_a_missing_key_is_an_evaluation_error(validator: SchemaValidator) -> None:
    errors = errors_of(validator, manifest(extra={"key": "x"}))
    assert [str(e) for e in errors] == [
        'spec.extra: Invalid value: "object": no such key: missing evaluating rule: '
        "self.missing == 'x'"
    ]


def test_optional_old_self_is_evaluated_on_create() -> None:
    schema = {
        "type": "object",
        "properties": {
            "size": {
                "type": "integer",
                "x-kubernetes-validations": [
                    {
                        "rule": "oldSelf.hasValue() ? self >= oldSelf.value() : self > 10",
                        "optionalOldSelf": True,
                        "message": "too small",
                    }
                ],
            }
        },
    }
    check = SchemaValidator(schema)
    assert [str(e) for e in check.validate({"size": 5})] == [
        'size: Invalid value: "integer": too small'
    ]
    assert check.validate({"size": 20}) == []
    assert check.validate({"size": 5}, {"size": 4}) == []
    assert [e.field for e in check.validate({"size": 5}, {"size": 6})] == ["size"]


def test_root_rules_report_the_root_path() -> None:
    schema = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.a < self.b", "message": "a must be below b"}],
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    }
    assert [str(e) for e in SchemaValidator(schema).validate({"a": 2, "b": 1})] == [
        '<nil>: Invalid value: "object": a must be below b'
    ]


def test_unsupported_kubernetes_functions_are_reported_not_passed() -> None:
    schema = {
        "type": "object",
        "properties": {
            "memory": {
                "type": "string",
                "x-kubernetes-validations": [
                    {"rule": "quantity(self).isLessThan(quantity('1Gi'))"}
                ],
            }
        },
    }
    check = SchemaValidator(schema)
    assert [e.field for e in check.rule_errors] == [
        "openAPIV3Schema.properties[memory].x-kubernetes-validations[0].rule"
    ]
    errors = check.validate({"memory": "2Gi"})
    assert len(errors) == 1
    assert errors[0].type == "InternalError"
    assert errors[0].field == "memory"
    assert "'quantity' is not supported" in errors[0].message


def test_rules_that_do_not_compile_are_reported() -> None:
    rules = [{"rule": "self.size( > 1"}]
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "x-kubernetes-validations": rules}},
    }
    check = SchemaValidator(schema)
    assert "compilation failed" in check.rule_errors[0].message
    assert check.validate({}) == []
    assert [(e.field, e.type) for e in check.validate({"name": "x"})] == [("name", "InternalError")]


# --- conversion and formatting ------------------------------------------------------------------


def test_to_json_schema_translates_kubernetes_extensions() -> None:
    converted = to_json_schema(SCHEMA["properties"]["spec"])
    props = converted["properties"]
    assert props["mode"] == {"type": ["string", "null"], "enum": ["fast", "safe"]}
    assert props["port"] == {"type": ["integer", "string"]}
    assert "x-kubernetes-validations" not in converted
    assert "default" not in props["replicas"]
    assert "x-kubernetes-list-type" not in props["tags"]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (100.0, "100"),
        (1.5, "1.5"),
        (0.25, "0.25"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.0, "-2"),
    ],
)
def test_numbers_print_as_go_prints_float64(number: float, text: str) -> None:
    assert go_float(number) == text


# --- properties ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
spec_keys = st.sampled_from(
    ["model", "source", "replicas", "mode", "port", "rollout", "tags", "ports", "labels", "params"]
)
specs = st.dictionaries(spec_keys | st.text(max_size=5), json_values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(spec=specs, old_spec=specs)
def test_random_objects_never_crash_and_prepare_is_idempotent(
    validator: SchemaValidator, spec: dict[str, Any], old_spec: dict[str, Any]
) -> None:
    obj = {"apiVersion": "gyre.example/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    prepared = validator.prepare({**obj, "spec": spec})
    assert validator.prepare(prepared) == prepared
    old = validator.prepare({**obj, "spec": old_spec})
    for error in validator.validate(prepared, old):
        assert isinstance(error, FieldError)
        assert error.field and error.message


# --- ratcheting ---------------------------------------------------------------------------------


def test_an_update_may_keep_an_invalid_value_it_does_not_change(
    validator: SchemaValidator,
) -> None:
    old = manifest(replicas=-1, labels={"a": "1", "b": "2", "c": "3"}, model="Wine")
    assert (
        errors_of(validator, manifest(replicas=-1, labels=old["spec"]["labels"], model="Wine"), old)
        == []
    )


def test_an_update_may_not_change_a_value_into_another_invalid_one(
    validator: SchemaValidator,
) -> None:
    old = manifest(replicas=-1)
    errors = errors_of(validator, manifest(replicas=-2), old)
    assert [e.field for e in errors] == ["spec.replicas"]


def test_ratcheting_follows_map_list_keys(validator: SchemaValidator) -> None:
    old = manifest(ports=[{"name": "a", "number": "x"}])
    moved = manifest(ports=[{"name": "b", "number": 1}, {"name": "a", "number": "x"}])
    assert errors_of(validator, moved, old) == []
    other = manifest(ports=[{"name": "b", "number": "x"}])
    errors = errors_of(validator, other, old)
    assert errors[0].field == "spec.ports[0].number"


def test_unchanged_values_are_not_held_to_their_rules_again(validator: SchemaValidator) -> None:
    old = manifest(labels={"team": "machine-learning"})
    assert errors_of(validator, manifest(labels={"team": "machine-learning"}), old) == []
    changed = manifest(labels={"team": "data-science"})
    assert [e.field for e in errors_of(validator, changed, old)] == ["spec.labels[team]"]


# --- the Kubernetes CEL libraries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "holds"),
    [
        ("self.isSorted()", [1, 2, 3], True),
        ("self.isSorted()", [2, 1], False),
        ("self.sum() == 6", [1, 2, 3], True),
        ("self.min() == 1 && self.max() == 3", [3, 1, 2], True),
        ("sets.contains(self, [1, 2])", [1, 2, 3], True),
        ("sets.intersects(self, [7])", [1, 2, 3], False),
        ("sets.equivalent(self, [3, 2, 1])", [1, 2, 3], True),
        ("self.all(x, x.matches('^[a-z]+$'))", ["ab", "cd"], True),
        ("self[0].find('[0-9]+') == '12'", ["ab12cd"], True),
        ("self[0].findAll('[0-9]+') == ['1', '22']", ["a1b22"], True),
        ("self.exists(x, x.lowerAscii() == 'ab')", ["AB"], True),
        ("math.greatest(self) == 3", [1, 3], True),
    ],
)
def test_kubernetes_library_functions(rule: str, value: list[Any], holds: bool) -> None:
    schema = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"x-kubernetes-int-or-string": True},
                "x-kubernetes-validations": [{"rule": rule}],
            }
        },
    }
    check = SchemaValidator(schema)
    assert check.rule_errors == []
    assert (check.validate({"items": value}) == []) is holds


def test_wrong_operand_types_at_run_time_are_reported_as_kube_apiserver_does() -> None:
    schema = {
        "type": "object",
        "properties": {
            "port": {
                "x-kubernetes-int-or-string": True,
                "x-kubernetes-validations": [{"rule": "self > 0"}],
            }
        },
    }
    errors = SchemaValidator(schema).validate({"port": "http"})
    assert [str(e) for e in errors] == [
        "port: Invalid value: \"\": 'no such overload': call arguments did not match a supported "
        "operator, function or macro signature for rule: self > 0"
    ]


def test_list_index_of_is_reported_as_unsupported() -> None:
    schema = {"type": "array", "x-kubernetes-validations": [{"rule": "self.indexOf(1) == 0"}]}
    assert "'indexOf' is not supported" in SchemaValidator(schema).rule_errors[0].message


# --- through the API server ---------------------------------------------------------------------

MODEL_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "models.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "models", "singular": "model", "kind": "Model"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": SCHEMA},
            }
        ],
    },
}


@pytest.mark.cluster
def test_rules_guard_writes_through_the_api_server(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    kubernetes.client.ApiextensionsV1Api(kube_client).create_custom_resource_definition(MODEL_CRD)
    api = kubernetes.client.CustomObjectsApi(kube_client)
    body = manifest(unknown=True)
    body["apiVersion"] = "example.com/v1"
    body["kind"] = "Model"
    created = api.create_namespaced_custom_object("example.com", "v1", "default", "models", body)
    assert created["spec"]["replicas"] == 1
    assert "unknown" not in created["spec"]

    created["spec"]["model"] = "beer"
    with pytest.raises(kubernetes.client.ApiException) as refused:
        api.replace_namespaced_custom_object(
            "example.com", "v1", "default", "models", "wine", created
        )
    assert refused.value.status == 422
    causes = json.loads(refused.value.body)["details"]["causes"]
    assert causes == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.model",
            "message": 'Invalid value: "string": model is immutable',
        }
    ]


@pytest.mark.parametrize("missing", ["jsonschema", "cel_expr_python"])
def test_a_missing_validator_library_fails_loudly_naming_the_local_extra(missing: str) -> None:
    script = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "try:\n"
        "    import gyre_local.store.store\n"
        "except ImportError as error:\n"
        "    print(error.name, error)\n"
        "else:\n"
        "    print('imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith(f"{missing} ")
    assert "pip install 'gyre-operator[local]'" in result.stdout
