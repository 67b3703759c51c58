"""CEL rules of CRD schemas (x-kubernetes-validations), compiled and run as kube-apiserver does."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext.ext_bindings import ExtBindings
from cel_expr_python.ext.ext_encoders import ExtEncoders
from cel_expr_python.ext.ext_math import ExtMath
from cel_expr_python.ext.ext_optional import ExtOptional
from cel_expr_python.ext.ext_strings import ExtStrings

# Functions of the Kubernetes CEL libraries that the local cluster does not implement; a rule using
# one of them is reported as unsupported rather than as a plain compilation failure.
UNSUPPORTED_FUNCTIONS = frozenset(
    {"quantity", "isQuantity", "url", "isURL", "ip", "isIP", "cidr", "isCIDR", "semver"}
    | {"isSemver", "format", "authorizer", "indexOf", "lastIndexOf"}
)

_CEL_RESERVED = frozenset(
    {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for"}
    | {"function", "if", "import", "let", "loop", "package", "namespace", "return", "var"}
    | {"void", "while"}
)
_UNKNOWN_FUNCTION = re.compile(
    r"(?:undeclared reference to|found no matching overload for) '([A-Za-z_][A-Za-z0-9_.]*)'"
)
_OLD_SELF = re.compile(r"\boldSelf\b")
NO_SUCH_OVERLOAD = "no such overload"
"""How CEL reports, at run time, an operator or function applied to values of the wrong types."""
HAS_OLD_SELF = "__hasOldSelf"
"""The activation variable telling an optionalOldSelf rule whether an old value exists."""


class RuleCompileError(Exception):
    """A rule that cannot be compiled, or that uses a Kubernetes function missing here."""


class RuleEvaluationError(Exception):
    """A rule whose evaluation failed at run time (missing key, bad overload, division by zero)."""


def _is_sorted(items: list[Any]) -> bool:
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def _list_sum(items: list[Any]) -> Any:
    return sum(items[1:], items[0]) if items else 0


def _find(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    found = [match.group(0) for match in re.finditer(pattern, text)]
    return found if limit < 0 else found[:limit]


def _contains(items: list[Any], wanted: list[Any]) -> bool:
    return all(item in items for item in wanted)


def _intersects(items: list[Any], others: list[Any]) -> bool:
    return any(item in items for item in others)


def _equivalent(items: list[Any], others: list[Any]) -> bool:
    return _contains(items, others) and _contains(others, items)


def _function(
    name: str, result: cel.Type, *overloads: tuple[list[cel.Type], Any], member: bool = True
) -> cel.FunctionDecl:
    return cel.FunctionDecl(
        name,
        [
            cel.Overload(f"{name}_{len(params)}", result, params, is_member=member, impl=impl)
            for params, impl in overloads
        ],
    )


def _kubernetes_library() -> list[cel.FunctionDecl]:
    """The parts of the Kubernetes lists, regex and sets libraries the local cluster offers."""
    string, dyn, number = cel.Type.STRING, cel.Type.DYN, cel.Type.INT
    items = cel.Type.List(dyn)
    return [
        _function("isSorted", cel.Type.BOOL, ([items], _is_sorted)),
        _function("sum", dyn, ([items], _list_sum)),
        _function("min", dyn, ([items], min)),
        _function("max", dyn, ([items], max)),
        _function("find", string, ([string, string], _find)),
        _function(
            "findAll",
            cel.Type.List(string),
            ([string, string], _find_all),
            ([string, string, number], _find_all),
        ),
        _function("sets.contains", cel.Type.BOOL, ([items, items], _contains), member=False),
        _function("sets.intersects", cel.Type.BOOL, ([items, items], _intersects), member=False),
        _function("sets.equivalent", cel.Type.BOOL, ([items, items], _equivalent), member=False),
    ]


@functools.cache
def _environment() -> cel.Env:
    return cel.NewEnv(
        variables={"self": cel.Type.DYN, "oldSelf": cel.Type.DYN, HAS_OLD_SELF: cel.Type.BOOL},
        extensions=[ExtStrings(), ExtMath(), ExtOptional(), ExtEncoders(), ExtBindings()],
        functions=_kubernetes_library(),
    )


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> cel.Expression:
    """The compiled program of a CEL expression (cached by source text); raises RuleCompileError."""
    try:
        return _environment().compile(source)
    except RuntimeError as error:
        detail = str(error).removeprefix("INVALID_ARGUMENT: ")
        for name in _UNKNOWN_FUNCTION.findall(detail):
            if name in UNSUPPORTED_FUNCTIONS:
                raise RuleCompileError(
                    f"the Kubernetes CEL function {name!r} is not supported by the local cluster"
                ) from None
        raise RuleCompileError(f"compilation failed: {detail}") from None


@dataclass(frozen=True)
class CompiledRule:
    """One entry of `x-kubernetes-validations`, compiled."""

    rule: str
    message: str
    message_expression: cel.Expression | None
    reason: str | None
    field_path: str | None
    uses_old_self: bool
    optional_old_self: bool
    program: cel.Expression

    @classmethod
    def compile(cls, spec: dict[str, Any]) -> CompiledRule:
        """Compile a rule declaration; raises RuleCompileError."""
        rule = spec["rule"]
        message_source = spec.get("messageExpression")
        optional_old_self = bool(spec.get("optionalOldSelf", False))

        def program(source: str) -> cel.Expression:
            if optional_old_self:
                # With optionalOldSelf, oldSelf is an optional value, empty on create.
                old = f"{HAS_OLD_SELF} ? optional.of(oldSelf) : optional.none()"
                source = f"cel.bind(oldSelf, {old}, (\n{source}\n))"
            return compile_expression(source)

        return cls(
            rule=rule,
            message=(spec.get("message") or "").strip(),
            message_expression=program(message_source) if message_source else None,
            reason=spec.get("reason"),
            field_path=spec.get("fieldPath"),
            uses_old_self=bool(_OLD_SELF.search(rule)),
            optional_old_self=optional_old_self,
            program=program(rule),
        )

    def failure_detail(self, activation: dict[str, Any]) -> str:
        """The message of a failed rule: messageExpression, else message, else the rule itself."""
        if self.message_expression is not None:
            result = self.message_expression.eval(data=activation)
            text = result.value() if result.type() == cel.Type.STRING else None
            # kube-apiserver falls back to the static message when the expression gives no
            # usable single-line string.
            if isinstance(text, str) and text.strip() and "\n" not in text:
                return text.strip()
        return self.message or f"failed rule: {self.rule.strip()}"

    def passes(self, activation: dict[str, Any]) -> bool:
        """Whether the rule holds; raises RuleEvaluationError when evaluation fails."""
        result = self.program.eval(data=activation)
        if result.type() == cel.Type.ERROR:
            raise RuleEvaluationError(_kubernetes_wording(str(result.value())))
        return result.type() == cel.Type.BOOL and result.value() is True


def _kubernetes_wording(detail: str) -> str:
    key = re.match(r'NOT_FOUND: Key not found in map : "(.*)"$', detail)
    if key:
        return f"no such key: {key.group(1)}"
    if "No matching overloads" in detail:
        return NO_SUCH_OVERLOAD
    return detail.split(": ", 1)[-1]


def escape_property(name: str) -> str:
    """A property name as CEL expressions see it (Kubernetes escaping of keywords and symbols)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )
