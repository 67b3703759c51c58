"""Paged lists: pages, continue tokens and the resourceVersions clients send back."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from gyre_local.store.errors import bad_request


@dataclass(frozen=True)
class ListPage:
    """One page of a list: items, the list resourceVersion, continue token and remaining count."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None
    remaining: int | None = None


def parse_resource_version(value: str) -> int:
    """A resourceVersion a client sent, as a number; raises BadRequest if it is not one."""
    if not value.isdigit():
        raise bad_request(f'invalid resource version "{value}"')
    return int(value)


def encode_continue(rv: int, last: tuple[str, str]) -> str:
    """The continue token resuming a list made at `rv` after the (namespace, name) `last`."""
    raw = json.dumps({"rv": rv, "start": list(last)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    """The list resourceVersion and last (namespace, name) of a continue token."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as error:
        raise bad_request("continue key is not valid: illegal base64 data") from error
