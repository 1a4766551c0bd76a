"""Route table: which model server versions serve each endpoint, and the backend choice.

The portal publishes the table as JSON (see "Route table" in docs/architecture.md).
`parse_route_table` validates it into immutable objects, so the hot path never checks
types, and the gateway replaces the whole table in one assignment when a new revision
arrives.

Weights are percentages with one decimal. They are stored as integer tenths of a
percent ("units"), so 100 % is 1000 units and the arithmetic is exact.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import random
import re
from collections.abc import Mapping
from typing import Any

UNITS_PER_PERCENT = 10
TOTAL_UNITS = 100 * UNITS_PER_PERCENT

# Header field names are RFC 9110 tokens. The gateway compares them in lower case,
# as ASGI servers deliver them.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")

# Roles whose slice of the sticky key space starts at 0, so that it grows in place
# when their weight grows (see Endpoint.split_order).
_GROWING_ROLES = ("candidate",)


class RouteTableError(ValueError):
    """The route table JSON is invalid; the message names the field and the problem."""


@dataclasses.dataclass(frozen=True, slots=True)
class Backend:
    """One model server that serves an endpoint, with its share of the traffic."""

    key: str
    server_id: int
    model: str
    version: int
    url: str
    model_name: str
    weight_units: int
    role: str

    @property
    def weight(self) -> float:
        """Weight as a percentage, as the portal sends it."""
        return self.weight_units / UNITS_PER_PERCENT

    def describe(self) -> str:
        return f"{self.key} (server {self.server_id}, version {self.version}, {self.weight:.1f} %)"


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderRule:
    """A request whose header `name` equals `value` goes to `backend`.

    Names are lower case and values are compared byte for byte (UTF-8), because that
    is how ASGI delivers request headers.
    """

    name: bytes
    value: bytes
    backend: Backend


class Endpoint:
    """An endpoint's backends and the rules that pick one backend per request."""

    __slots__ = (
        "name", "backends", "sticky_header", "preview", "rules",
        "split_order", "_bounds", "_sticky_salt", "spec",
    )

    def __init__(
        self,
        name: str,
        backends: tuple[Backend, ...],
        sticky_header: bytes | None,
        preview: HeaderRule | None,
        rules: tuple[HeaderRule, ...],
        spec: Any = None,
    ) -> None:
        self.name = name
        self.backends = backends
        self.sticky_header = sticky_header
        self.preview = preview
        self.rules = rules
        self.spec = spec

        # The weighted backends cover the range [0, TOTAL_UNITS) in split_order, each
        # with a slice as wide as its weight. Candidates come first, then the others by
        # server id, whatever order the portal listed them in. A candidate's slice then
        # grows from 0 as its weight grows, so a sticky key that moved to it stays, and
        # the share of the key space it gets is exactly its weight.
        weighted = [backend for backend in backends if backend.weight_units > 0]
        weighted.sort(key=lambda b: (b.role not in _GROWING_ROLES, b.server_id, b.key))
        self.split_order = tuple(weighted)

        bounds = []
        upper = 0
        for backend in self.split_order:
            upper += backend.weight_units
            bounds.append(upper)
        self._bounds = bounds

        # Salting the hash with the endpoint name keeps one session id from landing
        # on the candidate of every endpoint at once.
        self._sticky_salt = name.encode() + b"\0"

    def choose(self, headers: Mapping[bytes, bytes]) -> Backend | None:
        """Pick the backend for a request, or None when the endpoint has no weighted backend.

        Order: `rules` in table order, then `preview`, then the sticky hash when the
        request carries `sticky_header`, then a weighted random draw.
        """
        for rule in self.rules:
            if headers.get(rule.name) == rule.value:
                return rule.backend

        preview = self.preview
        if preview is not None and headers.get(preview.name) == preview.value:
            return preview.backend

        if not self._bounds:
            return None

        if self.sticky_header is not None:
            sticky_key = headers.get(self.sticky_header)
            if sticky_key is not None:
                return self.backend_at(self.sticky_position(sticky_key))

        return self.backend_at(random.randrange(TOTAL_UNITS))

    def sticky_position(self, sticky_key: bytes) -> int:
        """Map a sticky key onto [0, TOTAL_UNITS) with a hash that is the same in every process."""
        digest = hashlib.blake2b(self._sticky_salt + sticky_key, digest_size=8).digest()
        return (int.from_bytes(digest, "big") * TOTAL_UNITS) >> 64

    def backend_at(self, position: int) -> Backend:
        """Return the weighted backend whose slice of [0, TOTAL_UNITS) contains `position`."""
        return self.split_order[bisect.bisect_right(self._bounds, position)]

    def choose_retry(self, failed: Backend) -> Backend:
        """Pick a backend to retry on after the connection to `failed` failed before a response.

        Prefer a weighted backend other than `failed`, then any other backend, and fall
        back to `failed` itself when it is the only one.
        """
        others = [backend for backend in self.split_order if backend.key != failed.key]
        if others:
            weights = [backend.weight_units for backend in others]
            return random.choices(others, weights=weights)[0]

        others = [backend for backend in self.backends if backend.key != failed.key]
        if others:
            return others[0]

        return failed


@dataclasses.dataclass(frozen=True, slots=True)
class RouteTable:
    """One revision of the route table, replaced as a whole when the portal publishes a new one."""

    revision: int
    endpoints: Mapping[str, Endpoint]

    def describe_changes(self, previous: RouteTable | None) -> list[str]:
        """List the endpoints added, removed or changed since `previous`, for the log."""
        old = {} if previous is None else previous.endpoints
        changes = []

        for name in sorted(set(old) | set(self.endpoints)):
            before = old.get(name)
            after = self.endpoints.get(name)

            if after is None:
                changes.append(f"removed {name}")
            elif before is None or before.spec != after.spec:
                verb = "added" if before is None else "changed"
                backends = ", ".join(backend.describe() for backend in after.backends) or "no backends"
                changes.append(f"{verb} {name}: {backends}")

        return changes


def parse_route_table(document: Any) -> RouteTable:
    """Validate the decoded route table JSON and build a RouteTable.

    Raises RouteTableError naming the first invalid field, for example
    `endpoints["iris"].backends[1].weight`. Unknown fields are ignored, so the portal
    can add fields before the gateway uses them.
    """
    if not isinstance(document, dict):
        raise RouteTableError(f"route table: expected a JSON object, got {_type_name(document)}")

    revision = _integer(document, "revision", "revision", minimum=0)

    raw_endpoints = document.get("endpoints")
    if not isinstance(raw_endpoints, dict):
        raise RouteTableError(f"endpoints: expected a JSON object, got {_type_name(raw_endpoints)}")

    endpoints = {}
    for name, raw_endpoint in raw_endpoints.items():
        endpoints[name] = _parse_endpoint(name, raw_endpoint)

    return RouteTable(revision=revision, endpoints=endpoints)


def _parse_endpoint(name: str, raw: Any) -> Endpoint:
    where = f"endpoints[{name!r}]"
    if not name or "/" in name:
        raise RouteTableError(f"{where}: an endpoint name must be non-empty and contain no '/'")
    if not isinstance(raw, dict):
        raise RouteTableError(f"{where}: expected a JSON object, got {_type_name(raw)}")

    raw_backends = raw.get("backends")
    if not isinstance(raw_backends, list):
        raise RouteTableError(f"{where}.backends: expected a list, got {_type_name(raw_backends)}")

    backends = []
    by_key: dict[str, Backend] = {}
    for index, raw_backend in enumerate(raw_backends):
        backend = _parse_backend(f"{where}.backends[{index}]", raw_backend)
        if backend.key in by_key:
            raise RouteTableError(f"{where}.backends[{index}].key: duplicate key {backend.key!r}")
        by_key[backend.key] = backend
        backends.append(backend)

    total_units = sum(backend.weight_units for backend in backends)
    if backends and total_units != TOTAL_UNITS:
        raise RouteTableError(
            f"{where}.backends: weights must add up to 100, got {total_units / UNITS_PER_PERCENT:.1f}"
        )

    sticky_header = None
    if raw.get("sticky_header") is not None:
        sticky_header = _header_name(raw, "sticky_header", f"{where}.sticky_header")

    preview = None
    if raw.get("preview") is not None:
        preview = _parse_rule(f"{where}.preview", raw["preview"], "value", by_key)

    raw_rules = raw.get("rules")
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise RouteTableError(f"{where}.rules: expected a list, got {_type_name(raw_rules)}")
    rules = tuple(
        _parse_rule(f"{where}.rules[{index}]", raw_rule, "equals", by_key)
        for index, raw_rule in enumerate(raw_rules)
    )

    return Endpoint(name, tuple(backends), sticky_header, preview, rules, spec=raw)


def _parse_backend(where: str, raw: Any) -> Backend:
    if not isinstance(raw, dict):
        raise RouteTableError(f"{where}: expected a JSON object, got {_type_name(raw)}")

    url = _string(raw, "url", f"{where}.url")
    if not _URL.match(url):
        raise RouteTableError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")

    model_name = _string(raw, "model_name", f"{where}.model_name")
    if "/" in model_name:
        raise RouteTableError(f"{where}.model_name: must not contain '/', got {model_name!r}")

    return Backend(
        key=_string(raw, "key", f"{where}.key"),
        server_id=_integer(raw, "server_id", f"{where}.server_id"),
        model=_string(raw, "model", f"{where}.model"),
        version=_integer(raw, "version", f"{where}.version"),
        url=url.rstrip("/"),
        model_name=model_name,
        weight_units=_weight_units(raw, f"{where}.weight"),
        role=_string(raw, "role", f"{where}.role"),
    )


def _parse_rule(where: str, raw: Any, value_field: str, by_key: Mapping[str, Backend]) -> HeaderRule:
    if not isinstance(raw, dict):
        raise RouteTableError(f"{where}: expected a JSON object, got {_type_name(raw)}")

    name = _header_name(raw, "header", f"{where}.header")
    value = _string(raw, value_field, f"{where}.{value_field}")

    key = _string(raw, "backend", f"{where}.backend")
    if key not in by_key:
        known = ", ".join(sorted(by_key)) or "none"
        raise RouteTableError(f"{where}.backend: no backend with key {key!r} (keys: {known})")

    return HeaderRule(name=name, value=value.encode(), backend=by_key[key])


def _string(raw: dict, field: str, where: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value:
        raise RouteTableError(f"{where}: expected a non-empty string, got {_describe(value)}")
    return value


def _integer(raw: dict, field: str, where: str, minimum: int | None = None) -> int:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RouteTableError(f"{where}: expected an integer, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise RouteTableError(f"{where}: expected an integer of at least {minimum}, got {value}")
    return value


def _weight_units(raw: dict, where: str) -> int:
    value = raw.get("weight")
    expected = "expected a percentage from 0 to 100 with at most one decimal"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RouteTableError(f"{where}: {expected}, got {_describe(value)}")

    units = round(value * UNITS_PER_PERCENT)
    # Most tenths have no exact binary float, so compare the product with a tolerance.
    if abs(value * UNITS_PER_PERCENT - units) > 1e-6 or not 0 <= units <= TOTAL_UNITS:
        raise RouteTableError(f"{where}: {expected}, got {value!r}")
    return units


def _header_name(raw: dict, field: str, where: str) -> bytes:
    name = _string(raw, field, where).lower()
    if not _HEADER_NAME.match(name):
        raise RouteTableError(f"{where}: expected an HTTP header name, got {raw[field]!r}")
    return name.encode("ascii")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _describe(value: Any) -> str:
    if value is None:
        return "null or missing"
    if isinstance(value, (str, int, float)):
        return repr(value)
    return _type_name(value)
