"""The create-only kinds of authorization.k8s.io and authentication.k8s.io, and ServiceAccount
tokens: access reviews allow everything (nothing is authorized locally), SelfSubjectReview
names the caller, TokenRequest (and the kubelet, for projected volumes: `issue_token`) issues
signed tokens that TokenReview authenticates.

kubectl posts these kinds in protobuf, so their few request fields are read from protobuf
(or JSON/YAML) bodies here; answers are JSON, which kubectl accepts too."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from gyre_local.apiserver import protobuf
from gyre_local.apiserver.protobuf import Schema
from gyre_local.clock import format_rfc3339
from gyre_local.store.admission import TOKEN_EXPIRATION_SECONDS
from gyre_local.store.builtins import ResourceType
from gyre_local.store.store import ApiError, Store, bad_request, invalid

AUTHORIZATION_GROUP = "authorization.k8s.io"
AUTHENTICATION_GROUP = "authentication.k8s.io"
TOKEN_SUBRESOURCE = "token"
NOT_ENFORCED = "the local cluster does not enforce authorization"
ADMIN_USER = {"username": "local-admin", "groups": ["system:masters", "system:authenticated"]}
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
# kube-apiserver's default and floor for TokenRequest.spec.expirationSeconds (the default is
# a projected token's too).
DEFAULT_TOKEN_EXPIRATION = 3600
_MIN_EXPIRATION = 600
# kube-apiserver (--service-account-extend-token-expiration) issues pod-bound tokens asked for
# with the kubelet's projected expiration for a year, sparing clients that never re-read them,
# while reporting the expiry asked for.
_EXTENDED_EXPIRATION = 365 * 24 * 3600
# Signs the tokens this process issues; tokens do not outlive it, as nothing else is persisted.
_SIGNING_KEY = secrets.token_bytes(32)
# Names the TokenRequest in errors, as kube-apiserver does.
_TOKEN_REQUEST = ResourceType(AUTHENTICATION_GROUP, "v1", "TokenRequest", "tokenrequests", True)

_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string"), 2: ("verb", "string")}
_ACCESS_SPEC: Schema = {
    1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
    3: ("user", "string"),
    4: ("groups", "strings"),
    6: ("uid", "string"),
}
_SPECS: dict[str, Schema] = {
    "SelfSubjectAccessReview": _ACCESS_SPEC,
    "SubjectAccessReview": _ACCESS_SPEC,
    "LocalSubjectAccessReview": _ACCESS_SPEC,
    "SelfSubjectRulesReview": {1: ("namespace", "string")},
    "SelfSubjectReview": {},
    "TokenReview": {1: ("token", "string"), 2: ("audiences", "strings")},
    "ServiceAccount": {
        1: ("audiences", "strings"),
        3: (
            "boundObjectRef",
            {
                1: ("kind", "string"),
                2: ("apiVersion", "string"),
                3: ("name", "string"),
                4: ("uid", "string"),
            },
        ),
        4: ("expirationSeconds", "int"),
    },
}


def handles(rtype: ResourceType, subresource: str | None) -> bool:
    """Whether a request is for a create-only kind answered here rather than stored."""
    if rtype.group in (AUTHORIZATION_GROUP, AUTHENTICATION_GROUP):
        return True
    return (rtype.group, rtype.kind, subresource) == ("", "ServiceAccount", TOKEN_SUBRESOURCE)


def create(
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str | None,
    method: str,
    raw: bytes,
    content_type: str,
    authorization: str,
) -> dict[str, Any]:
    """The answer to a create (POST) of a review, or of a ServiceAccount's token."""
    if method != "POST" or (name is None) == (rtype.kind == "ServiceAccount"):
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    spec = _spec(raw, content_type, _SPECS[rtype.kind])
    if rtype.kind == "ServiceAccount":
        return _token_request(store, namespace or "", name or "", spec)
    answer: dict[str, Any] = {
        "kind": rtype.kind,
        "apiVersion": f"{rtype.group}/{rtype.version}",
        "metadata": {"creationTimestamp": None},
    }
    if rtype.kind == "SelfSubjectReview":
        return {**answer, "status": {"userInfo": _caller(store, authorization)}}
    answer["spec"] = spec
    if rtype.kind == "TokenReview":
        return {**answer, "status": _token_review(store, spec)}
    if rtype.kind == "SelfSubjectRulesReview":
        return {**answer, "status": _all_rules()}
    if rtype.kind == "LocalSubjectAccessReview":
        answer["metadata"]["namespace"] = namespace
    return {**answer, "status": {"allowed": True, "reason": NOT_ENFORCED}}


def _caller(store: Store, authorization: str) -> dict[str, Any]:
    """Who a request's Authorization header names: the service account of a token this server
    issued, else the local administrator (no credential is required)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer":
        user = _token_user(store, token.strip(), ())
        if user is not None:
            return user
    return dict(ADMIN_USER)


def _all_rules() -> dict[str, Any]:
    return {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False,
    }


# ---- tokens ----


def _token_request(store: Store, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Issue a token for a ServiceAccount (which must exist), as TokenRequest does."""
    expiration = spec.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION
    if not isinstance(expiration, int) or expiration < _MIN_EXPIRATION:
        raise invalid(
            _TOKEN_REQUEST,
            name,
            [
                (
                    "FieldValueInvalid",
                    "spec.expirationSeconds",
                    f"Invalid value: {expiration}: may not specify a duration less than 10 minutes",
                )
            ],
        )
    audiences = spec.get("audiences") or [API_AUDIENCE]
    bound = spec.get("boundObjectRef") or {}
    pod = _bound_pod(store, namespace, bound) if bound.get("kind") == "Pod" else None
    token, expires = issue_token(
        store, namespace, name, audiences=audiences, expiration=expiration, pod=pod
    )
    return {
        "kind": "TokenRequest",
        "apiVersion": f"{AUTHENTICATION_GROUP}/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {**spec, "audiences": audiences, "expirationSeconds": expiration},
        "status": {
            "token": token,
            "expirationTimestamp": format_rfc3339(datetime.fromtimestamp(expires, UTC)),
        },
    }


def _bound_pod(store: Store, namespace: str, reference: dict[str, Any]) -> dict[str, Any]:
    """The pod a TokenRequest binds its token to (404 if missing, 409 if its uid differs)."""
    pod = store.get("", "pods", namespace, str(reference.get("name") or ""))
    uid = reference.get("uid")
    if uid and uid != pod["metadata"]["uid"]:
        raise ApiError(
            409,
            "Conflict",
            f"the UID in the bound object reference ({uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated",
        )
    return pod


def issue_token(
    store: Store,
    namespace: str,
    name: str,
    *,
    audiences: Sequence[str] = (API_AUDIENCE,),
    expiration: int = DEFAULT_TOKEN_EXPIRATION,
    pod: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """A token of the ServiceAccount namespace/name (which must exist), bound to `pod` when
    given, and its expiry as it is reported (epoch seconds)."""
    account = store.get("", "serviceaccounts", namespace, name)
    issued = int(time.time())
    lifetime = expiration
    if pod is not None and expiration == TOKEN_EXPIRATION_SECONDS:
        lifetime = _EXTENDED_EXPIRATION
    identity: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
    }
    if pod is not None:
        identity["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
    claims = {
        "aud": list(audiences),
        "exp": issued + lifetime,
        "iat": issued,
        "iss": API_AUDIENCE,
        "kubernetes.io": identity,
        "nbf": issued,
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }
    return _sign(claims), issued + expiration


def _token_review(store: Store, spec: dict[str, Any]) -> dict[str, Any]:
    """A TokenReview status: authenticated for a live token this server issued."""
    wanted = tuple(spec.get("audiences") or ())
    user = _token_user(store, str(spec.get("token") or ""), wanted)
    if user is None:
        return {"user": {}}
    claims = _claims(str(spec["token"])) or {}
    audiences = [a for a in claims.get("aud", []) if not wanted or a in wanted]
    return {"authenticated": True, "user": user, "audiences": audiences}


def _token_user(store: Store, token: str, audiences: tuple[str, ...]) -> dict[str, Any] | None:
    """The user of a token this server issued that has not expired, is for one of `audiences`
    (any when none is given) and whose ServiceAccount still exists; else None."""
    claims = _claims(token)
    if claims is None or claims.get("exp", 0) <= time.time():
        return None
    if audiences and not set(audiences) & set(claims.get("aud", [])):
        return None
    identity = claims["kubernetes.io"]
    namespace, account = identity["namespace"], identity["serviceaccount"]
    try:
        live = store.get("", "serviceaccounts", namespace, account["name"])
    except ApiError:
        return None
    if live["metadata"]["uid"] != account["uid"]:
        return None
    user: dict[str, Any] = {
        "username": claims["sub"],
        "uid": account["uid"],
        "groups": [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ],
    }
    if pod := identity.get("pod"):
        if not _pod_exists(store, namespace, pod):
            return None
        user["extra"] = {
            "authentication.kubernetes.io/pod-name": [pod["name"]],
            "authentication.kubernetes.io/pod-uid": [pod["uid"]],
        }
    return user


def _pod_exists(store: Store, namespace: str, pod: Mapping[str, str]) -> bool:
    """Whether the pod a token is bound to still exists (the same pod: same uid)."""
    try:
        live = store.get("", "pods", namespace, pod["name"])
    except ApiError:
        return False
    return bool(live["metadata"]["uid"] == pod["uid"])


def _sign(claims: dict[str, Any]) -> str:
    header = _b64(_compact({"alg": "HS256", "kid": "gyre-local", "typ": "JWT"}))
    payload = _b64(_compact(claims))
    signing_input = f"{header}.{payload}"
    signature = hmac.new(_SIGNING_KEY, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(token: str) -> dict[str, Any] | None:
    """The claims of a token signed here, or None."""
    header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    expected = hmac.new(_SIGNING_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(expected), signature):
        return None
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- request bodies ----


def _spec(raw: bytes, content_type: str, schema: Schema) -> dict[str, Any]:
    """The spec of a request body in protobuf, JSON or YAML."""
    if protobuf.is_protobuf(raw):
        spec: dict[str, Any] = protobuf.decode(raw, {2: ("spec", schema)}).get("spec", {})
        return spec
    try:
        body = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw or b"{}")
    except (ValueError, yaml.YAMLError) as error:
        raise bad_request(f"the body of the request could not be decoded: {error}") from error
    given = body.get("spec") if isinstance(body, dict) else None
    return dict(given) if isinstance(given, dict) else {}
