"""Unit tests for route table parsing and backend choice."""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any

import pytest

from gateway.routes import Endpoint, RouteTableError, parse_route_table

STABLE_URL = "http://127.0.0.1:40123"
CANDIDATE_URL = "http://127.0.0.1:40321"


def make_backend(key: str, server_id: int, version: int, weight: float, role: str, url: str) -> dict[str, Any]:
    return {
        "key": key, "server_id": server_id, "model": "breast-cancer-classifier", "version": version,
        "url": url, "model_name": "breast-cancer", "weight": weight, "role": role,
    }


def make_table(stable_weight: float = 90.0, candidate_weight: float = 10.0, **endpoint_fields: Any) -> dict:
    """The example table of docs/architecture.md, with the weights and fields given."""
    return {
        "revision": 12,
        "endpoints": {
            "breast-cancer": {
                "backends": [
                    make_backend("s9", 9, 3, stable_weight, "stable", STABLE_URL),
                    make_backend("s11", 11, 4, candidate_weight, "candidate", CANDIDATE_URL),
                ],
                **endpoint_fields,
            },
        },
    }


def make_endpoint(stable_weight: float = 90.0, candidate_weight: float = 10.0, **fields: Any) -> Endpoint:
    return parse_route_table(make_table(stable_weight, candidate_weight, **fields)).endpoints["breast-cancer"]


def count_choices(endpoint: Endpoint, draws: int, headers: dict[bytes, bytes] | None = None) -> Counter:
    return Counter(endpoint.choose(headers or {}).key for _ in range(draws))


@pytest.fixture(autouse=True)
def seeded_random():
    """Seed the module-level random generator so the share checks are reproducible."""
    state = random.getstate()
    random.seed(20261204)
    yield
    random.setstate(state)


# Parsing


def test_parse_contract_example():
    table = parse_route_table(make_table(sticky_header="X-Session-Id", preview={
        "header": "x-canary", "value": "always", "backend": "s11",
    }))
    endpoint = table.endpoints["breast-cancer"]
    candidate = endpoint.backends[1]

    assert table.revision == 12
    assert [backend.key for backend in endpoint.backends] == ["s9", "s11"]
    assert candidate.weight_units == 100
    assert candidate.weight == 10.0
    assert candidate.url == CANDIDATE_URL
    assert candidate.version == 4
    assert endpoint.sticky_header == b"x-session-id"
    assert endpoint.preview.backend is candidate
    assert endpoint.rules == ()


def test_parse_strips_trailing_slash_from_url():
    document = make_table()
    document["endpoints"]["breast-cancer"]["backends"][0]["url"] = STABLE_URL + "/"

    backend = parse_route_table(document).endpoints["breast-cancer"].backends[0]

    assert backend.url == STABLE_URL


def test_parse_endpoint_without_backends():
    table = parse_route_table({"revision": 1, "endpoints": {"iris": {"backends": []}}})

    assert table.endpoints["iris"].choose({}) is None


def test_parse_ignores_unknown_fields():
    document = make_table()
    document["generated_at"] = "2026-12-04T20:00:00Z"
    document["endpoints"]["breast-cancer"]["backends"][0]["health"] = "ready"

    table = parse_route_table(document)

    assert table.revision == 12


def _table_with(change) -> dict:
    document = make_table()
    change(document)
    return document


def _set_backend(field: str, value: Any):
    def change(document: dict) -> None:
        document["endpoints"]["breast-cancer"]["backends"][1][field] = value
    return change


def _set_endpoint(field: str, value: Any):
    def change(document: dict) -> None:
        document["endpoints"]["breast-cancer"][field] = value
    return change


INVALID_TABLES = [
    ("not an object", [], "route table: expected a JSON object, got a list"),
    ("missing revision", {"endpoints": {}}, "revision: expected an integer, got null or missing"),
    ("negative revision", {"revision": -1, "endpoints": {}}, "revision: expected an integer of at least 0"),
    ("endpoints not object", {"revision": 1, "endpoints": []}, "endpoints: expected a JSON object, got a list"),
    ("backends missing", {"revision": 1, "endpoints": {"iris": {}}},
     "endpoints['iris'].backends: expected a list, got null"),
    ("endpoint name with slash", {"revision": 1, "endpoints": {"a/b": {"backends": []}}},
     "endpoints['a/b']: an endpoint name must be non-empty and contain no '/'"),
    ("weights below 100", _table_with(_set_backend("weight", 5.0)),
     "endpoints['breast-cancer'].backends: weights must add up to 100, got 95.0"),
    ("weight with two decimals", _table_with(_set_backend("weight", 10.25)),
     "endpoints['breast-cancer'].backends[1].weight: expected a percentage from 0 to 100 "
     "with at most one decimal, got 10.25"),
    ("weight above 100", _table_with(_set_backend("weight", 110)),
     "endpoints['breast-cancer'].backends[1].weight: expected a percentage from 0 to 100"),
    ("weight as string", _table_with(_set_backend("weight", "10")),
     "endpoints['breast-cancer'].backends[1].weight: expected a percentage from 0 to 100 "
     "with at most one decimal, got '10'"),
    ("version as string", _table_with(_set_backend("version", "4")),
     "endpoints['breast-cancer'].backends[1].version: expected an integer, got '4'"),
    ("server id as boolean", _table_with(_set_backend("server_id", True)),
     "endpoints['breast-cancer'].backends[1].server_id: expected an integer, got True"),
    ("url without scheme", _table_with(_set_backend("url", "127.0.0.1:40321")),
     "endpoints['breast-cancer'].backends[1].url: expected an http:// or https:// URL, got '127.0.0.1:40321'"),
    ("model name with slash", _table_with(_set_backend("model_name", "a/b")),
     "endpoints['breast-cancer'].backends[1].model_name: must not contain '/'"),
    ("duplicate key", _table_with(_set_backend("key", "s9")),
     "endpoints['breast-cancer'].backends[1].key: duplicate key 's9'"),
    ("missing role", _table_with(_set_backend("role", None)),
     "endpoints['breast-cancer'].backends[1].role: expected a non-empty string, got null or missing"),
    ("preview to unknown backend", _table_with(_set_endpoint("preview", {
        "header": "x-canary", "value": "always", "backend": "s99"})),
     "endpoints['breast-cancer'].preview.backend: no backend with key 's99' (keys: s11, s9)"),
    ("preview without value", _table_with(_set_endpoint("preview", {"header": "x-canary", "backend": "s11"})),
     "endpoints['breast-cancer'].preview.value: expected a non-empty string"),
    ("rule with invalid header", _table_with(_set_endpoint("rules", [
        {"header": "x flag", "equals": "on", "backend": "s11"}])),
     "endpoints['breast-cancer'].rules[0].header: expected an HTTP header name, got 'x flag'"),
    ("rules not a list", _table_with(_set_endpoint("rules", {})),
     "endpoints['breast-cancer'].rules: expected a list, got an object"),
    ("sticky header not a string", _table_with(_set_endpoint("sticky_header", 5)),
     "endpoints['breast-cancer'].sticky_header: expected a non-empty string, got 5"),
]


@pytest.mark.parametrize(
    ("document", "message"),
    [(document, message) for _, document, message in INVALID_TABLES],
    ids=[case for case, _, _ in INVALID_TABLES],
)
def test_parse_error_names_field(document, message):
    with pytest.raises(RouteTableError) as raised:
        parse_route_table(document)

    assert message in str(raised.value)


def test_parse_accepts_float_sums_of_one_decimal():
    document = make_table(stable_weight=66.7, candidate_weight=33.3)

    endpoint = parse_route_table(document).endpoints["breast-cancer"]

    assert [backend.weight_units for backend in endpoint.backends] == [667, 333]


# Weighted choice


def test_weighted_choice_ten_percent():
    endpoint = make_endpoint(90.0, 10.0)

    counts = count_choices(endpoint, 10_000)

    assert abs(counts["s11"] / 10_000 - 0.10) <= 0.01


def test_weighted_choice_zero_weight_gets_nothing():
    endpoint = make_endpoint(100.0, 0.0)

    counts = count_choices(endpoint, 10_000)

    assert counts["s11"] == 0
    assert counts["s9"] == 10_000


def test_weighted_choice_tenth_of_a_percent():
    endpoint = make_endpoint(99.9, 0.1)

    counts = count_choices(endpoint, 100_000)

    # Expected 100 with a standard deviation of 10.
    assert counts["s11"] > 0
    assert 50 <= counts["s11"] <= 150


def test_weighted_choice_all_to_candidate():
    endpoint = make_endpoint(0.0, 100.0)

    counts = count_choices(endpoint, 1_000)

    assert counts["s11"] == 1_000


# Sticky choice


def test_sticky_key_keeps_backend():
    endpoint = make_endpoint(50.0, 50.0, sticky_header="x-session-id")

    for number in range(200):
        headers = {b"x-session-id": f"session-{number}".encode()}
        first = endpoint.choose(headers)
        repeats = {endpoint.choose(headers).key for _ in range(20)}

        assert repeats == {first.key}


def test_sticky_key_same_in_new_table():
    first = make_endpoint(75.0, 25.0, sticky_header="x-session-id")
    second = make_endpoint(75.0, 25.0, sticky_header="x-session-id")
    keys = [f"session-{number}".encode() for number in range(1_000)]

    first_choices = [first.choose({b"x-session-id": key}).key for key in keys]
    second_choices = [second.choose({b"x-session-id": key}).key for key in keys]

    assert first_choices == second_choices


def test_sticky_ignores_backend_list_order():
    document = make_table(75.0, 25.0, sticky_header="x-session-id")
    reordered = copy.deepcopy(document)
    reordered["endpoints"]["breast-cancer"]["backends"].reverse()
    listed = parse_route_table(document).endpoints["breast-cancer"]
    reversed_ = parse_route_table(reordered).endpoints["breast-cancer"]
    keys = [f"session-{number}".encode() for number in range(1_000)]

    listed_choices = [listed.choose({b"x-session-id": key}).key for key in keys]
    reversed_choices = [reversed_.choose({b"x-session-id": key}).key for key in keys]

    assert listed_choices == reversed_choices


def test_sticky_candidate_growth_keeps_moved_keys():
    keys = [f"user-{number}".encode() for number in range(10_000)]
    on_candidate_before: set[bytes] = set()

    for weight in (10.0, 25.0, 50.0):
        endpoint = make_endpoint(100.0 - weight, weight, sticky_header="x-session-id")
        on_candidate = {key for key in keys if endpoint.choose({b"x-session-id": key}).key == "s11"}
        share = len(on_candidate) / len(keys)

        assert on_candidate_before <= on_candidate, f"keys left the candidate at weight {weight}"
        assert abs(share - weight / 100) <= 0.01, f"share {share:.4f} at weight {weight}"
        on_candidate_before = on_candidate


def test_sticky_candidate_shrink_moves_keys_back():
    keys = [f"user-{number}".encode() for number in range(10_000)]
    at_fifty = make_endpoint(50.0, 50.0, sticky_header="x-session-id")
    at_ten = make_endpoint(90.0, 10.0, sticky_header="x-session-id")

    on_candidate_at_fifty = {key for key in keys if at_fifty.choose({b"x-session-id": key}).key == "s11"}
    on_candidate_at_ten = {key for key in keys if at_ten.choose({b"x-session-id": key}).key == "s11"}

    assert on_candidate_at_ten <= on_candidate_at_fifty


def test_sticky_header_absent_uses_weights():
    endpoint = make_endpoint(90.0, 10.0, sticky_header="x-session-id")

    counts = count_choices(endpoint, 10_000, {b"x-other": b"1"})

    assert abs(counts["s11"] / 10_000 - 0.10) <= 0.01


def test_sticky_never_picks_zero_weight():
    endpoint = make_endpoint(100.0, 0.0, sticky_header="x-session-id")

    chosen = {endpoint.choose({b"x-session-id": f"user-{n}".encode()}).key for n in range(5_000)}

    assert chosen == {"s9"}


# Preview and rules


def test_preview_header_picks_backend_with_zero_weight():
    endpoint = make_endpoint(100.0, 0.0, preview={"header": "X-Canary", "value": "always", "backend": "s11"})

    counts = count_choices(endpoint, 100, {b"x-canary": b"always"})

    assert counts["s11"] == 100


def test_preview_other_value_uses_weights():
    endpoint = make_endpoint(100.0, 0.0, preview={"header": "x-canary", "value": "always", "backend": "s11"})

    counts = count_choices(endpoint, 100, {b"x-canary": b"never"})

    assert counts["s9"] == 100


def test_rules_checked_in_order():
    endpoint = make_endpoint(100.0, 0.0, rules=[
        {"header": "x-group", "equals": "beta", "backend": "s11"},
        {"header": "x-tier", "equals": "gold", "backend": "s9"},
    ])

    beta_and_gold = endpoint.choose({b"x-group": b"beta", b"x-tier": b"gold"})
    gold_only = endpoint.choose({b"x-tier": b"gold"})
    no_match = endpoint.choose({b"x-group": b"alpha"})

    assert beta_and_gold.key == "s11"
    assert gold_only.key == "s9"
    assert no_match.key == "s9"


def test_rules_checked_before_preview():
    endpoint = make_endpoint(
        50.0, 50.0,
        preview={"header": "x-canary", "value": "always", "backend": "s11"},
        rules=[{"header": "x-pin", "equals": "stable", "backend": "s9"}],
    )

    chosen = endpoint.choose({b"x-canary": b"always", b"x-pin": b"stable"})

    assert chosen.key == "s9"


def test_rules_checked_before_sticky():
    endpoint = make_endpoint(
        0.0, 100.0, sticky_header="x-session-id",
        rules=[{"header": "x-pin", "equals": "stable", "backend": "s9"}],
    )

    chosen = endpoint.choose({b"x-session-id": b"user-1", b"x-pin": b"stable"})

    assert chosen.key == "s9"


# Retry choice


def test_retry_picks_other_backend():
    endpoint = make_endpoint(90.0, 10.0)
    stable, candidate = endpoint.backends

    assert endpoint.choose_retry(stable) is candidate
    assert endpoint.choose_retry(candidate) is stable


def test_retry_single_backend_uses_same():
    table = parse_route_table({"revision": 1, "endpoints": {"iris": {"backends": [
        make_backend("s1", 1, 1, 100.0, "stable", STABLE_URL),
    ]}}})
    only = table.endpoints["iris"].backends[0]

    assert table.endpoints["iris"].choose_retry(only) is only


def test_retry_from_zero_weight_goes_to_weighted():
    endpoint = make_endpoint(100.0, 0.0)
    stable, candidate = endpoint.backends

    assert endpoint.choose_retry(candidate) is stable


# Table changes


def test_describe_changes_lists_endpoints():
    old = parse_route_table(make_table(90.0, 10.0))
    new_document = make_table(75.0, 25.0)
    new_document["revision"] = 13
    new_document["endpoints"]["iris"] = {"backends": []}
    new = parse_route_table(new_document)

    changes = new.describe_changes(old)

    assert changes == [
        "changed breast-cancer: s9 (server 9, version 3, 75.0 %), s11 (server 11, version 4, 25.0 %)",
        "added iris: no backends",
    ]


def test_describe_changes_removed_endpoint():
    old = parse_route_table(make_table())
    new = parse_route_table({"revision": 13, "endpoints": {}})

    assert new.describe_changes(old) == ["removed breast-cancer"]
