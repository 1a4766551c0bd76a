"""Strict readers for settings that come from environment variables.

Each reader raises ImproperlyConfigured with the variable's name, the value it
found and the form it expects, so a typo stops the start with a message
instead of running with a silently wrong setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _invalid(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is invalid: expected {expected}.")


def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    value = _raw(name, environ)
    return default if value is None else value


def env_required(name: str, *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    if value is None:
        raise ImproperlyConfigured(f"Environment variable {name} is missing: set it to a non-empty value.")
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default

    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _invalid(name, value, "one of true, false, 1, 0, yes, no, on, off")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default

    try:
        number = int(value)
    except ValueError:
        raise _invalid(name, value, "a whole number") from None

    if minimum is not None and number < minimum:
        raise _invalid(name, value, f"a whole number of at least {minimum}")
    if maximum is not None and number > maximum:
        raise _invalid(name, value, f"a whole number of at most {maximum}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default

    try:
        number = float(value)
    except ValueError:
        raise _invalid(name, value, "a number such as 2.5") from None

    if number != number or number in (float("inf"), float("-inf")):
        raise _invalid(name, value, "a finite number")
    if minimum is not None and number < minimum:
        raise _invalid(name, value, f"a number of at least {minimum}")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Read a comma-separated list; empty items are dropped."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(
    name: str,
    default: str | None,
    *,
    schemes: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Read a URL whose scheme is one of `schemes`; the error never echoes a password."""
    value = _raw(name, environ)
    if value is None:
        return default

    parts = urlsplit(value)
    shown = url_without_password(value)
    if parts.scheme not in schemes:
        raise _invalid(name, shown, f"a URL starting with {' or '.join(s + '://' for s in schemes)}")
    if not parts.netloc and not parts.path.strip("/"):
        raise _invalid(name, shown, f"a URL with a host, such as {schemes[0]}://127.0.0.1/")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    if value not in choices:
        raise _invalid(name, value, f"one of {', '.join(choices)}")
    return value


def url_without_password(url: str) -> str:
    """Return `url` with its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
