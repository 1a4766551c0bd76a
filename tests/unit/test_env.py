import pytest
from django.core.exceptions import ImproperlyConfigured

from mlops_portal.env import env_bool, env_choice, env_float, env_int, env_list, env_required, env_url


def test_env_bool_missing_returns_default():
    assert env_bool("FLAG", True, environ={}) is True


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False)])
def test_env_bool_accepts_common_spellings(raw, expected):
    assert env_bool("FLAG", not expected, environ={"FLAG": raw}) is expected


def test_env_bool_invalid_names_variable():
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe'"):
        env_bool("FLAG", False, environ={"FLAG": "maybe"})


def test_env_int_parses_number():
    assert env_int("WORKERS", 1, environ={"WORKERS": " 4 "}) == 4


def test_env_int_invalid_says_expected_form():
    with pytest.raises(ImproperlyConfigured, match="expected a whole number"):
        env_int("WORKERS", 1, environ={"WORKERS": "four"})


def test_env_int_below_minimum_names_minimum():
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("WORKERS", 1, minimum=1, environ={"WORKERS": "0"})


def test_env_int_above_maximum_names_maximum():
    with pytest.raises(ImproperlyConfigured, match="at most 64"):
        env_int("WORKERS", 1, maximum=64, environ={"WORKERS": "65"})


def test_env_float_rejects_nan():
    with pytest.raises(ImproperlyConfigured, match="finite"):
        env_float("DELAY", 1.0, environ={"DELAY": "nan"})


def test_env_float_empty_returns_default():
    assert env_float("DELAY", 2.5, environ={"DELAY": "  "}) == 2.5


def test_env_list_drops_empty_items():
    assert env_list("HOSTS", [], environ={"HOSTS": "a.example, ,b.example,"}) == ["a.example", "b.example"]


def test_env_required_missing_names_variable():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY is missing"):
        env_required("DJANGO_SECRET_KEY", environ={})


def test_env_url_wrong_scheme_lists_schemes():
    with pytest.raises(ImproperlyConfigured, match="redis:// or rediss://"):
        env_url("REDIS_URL", None, schemes=("redis", "rediss"), environ={"REDIS_URL": "http://127.0.0.1:6379"})


def test_env_url_error_hides_password():
    with pytest.raises(ImproperlyConfigured) as error:
        env_url("DATABASE_URL", None, schemes=("postgres",), environ={"DATABASE_URL": "mysql://user:secret@db/x"})
    assert "secret" not in str(error.value)


def test_env_url_without_host_is_invalid():
    with pytest.raises(ImproperlyConfigured, match="with a host"):
        env_url("REDIS_URL", None, schemes=("redis",), environ={"REDIS_URL": "redis://"})


def test_env_choice_lists_choices():
    with pytest.raises(ImproperlyConfigured, match="one of local, docker"):
        env_choice("RUNTIME", "local", ("local", "docker"), environ={"RUNTIME": "podman"})
