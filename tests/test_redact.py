"""The redactor against every spelling the HTTP layer can give a secret."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from urllib.parse import quote, quote_plus

import httpx
import pytest

from mimgw.http import build_query
from mimgw.redact import REDACTED, SHORT_SECRET, Redactor

SECRETS = [
    "ab,cd1234",
    "ab/cd+ef==",
    "p%20ss%word",
    "two words here",
    "a&b#c=d?e",
    'qu"ote\\back',
    "পাসওয়ার্ড১২৩",
    "mixবাংলা,/+ &#%",
]


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def wire_forms(secret: str) -> dict[str, str]:
    """How a secret looks on the wire and in logs, computed here independently."""
    forms = {
        "raw": secret,
        "build_query": build_query({"k": secret})[2:],
        "httpx params": httpx.URL("http://h/", params={"k": secret}).query.decode()[2:],
        "httpx form body": httpx.Request("POST", "http://h/", data={"k": secret})
        .read()
        .decode()[2:],
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "json ascii": json.dumps(secret)[1:-1],
        "json utf-8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json slash": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "bytes repr": repr(secret.encode())[2:-1],
    }
    with contextlib.suppress(ImportError):  # the aiohttp transport hands yarl the URL
        import yarl

        forms["yarl"] = str(yarl.URL("http://h/?k=" + forms["build_query"])).split("?k=", 1)[1]
    forms["lower hex"] = _lower_hex(forms["build_query"])
    forms["lower hex plus"] = _lower_hex(forms["httpx params"])
    escapes = re.compile(r"\\u([0-9a-fA-F]{4})")
    forms["json lower"] = escapes.sub(lambda m: "\\u" + m.group(1).lower(), forms["json ascii"])
    forms["json upper"] = escapes.sub(lambda m: "\\u" + m.group(1).upper(), forms["json ascii"])
    return forms


@pytest.mark.parametrize("secret", SECRETS)
def test_every_wire_form_is_redacted_in_context(secret: str) -> None:
    redact = Redactor([secret])
    for name, form in wire_forms(secret).items():
        for template in ("key={}&next=1", '{{"password":"{}"}}', "prefix {} suffix", "{}"):
            text = template.format(form)
            cleaned = redact(text)
            assert form not in cleaned, (name, text, cleaned)
            assert REDACTED in cleaned, (name, text)


@pytest.mark.parametrize("secret", SECRETS)
def test_a_real_httpx_request_leaves_no_trace(secret: str) -> None:
    redact = Redactor([secret])
    request = httpx.Request(
        "POST",
        "https://gw.test/send?" + build_query({"key": secret}),
        params={"again": secret},
        json={"password": secret},
    )
    shown = redact(f"{request.url} {request.read().decode()} {request!r}")
    assert "***" in shown
    for form in wire_forms(secret).values():
        assert form not in shown


def test_basic_auth_token_is_redacted() -> None:
    redact = Redactor()
    header = redact.add_basic_auth("user", "pa:ss বাং")
    token = base64.b64encode("user:pa:ss বাং".encode()).decode()
    assert header == f"Basic {token}"
    assert redact(f"Authorization: {header}") == "Authorization: Basic ***"
    assert redact(f"(b'authorization', b'{header}')") == "(b'authorization', b'Basic ***')"


def test_redactor_handles_the_issue_cases() -> None:
    redact = Redactor(["k,ey"])
    assert redact("https://h/?apikey=k,ey&x=1") == "https://h/?apikey=***&x=1"
    assert redact("https://h/?apikey=k%2Cey&x=1") == "https://h/?apikey=***&x=1"
    assert redact("https://h/?apikey=k%2cey&x=1") == "https://h/?apikey=***&x=1"


@pytest.mark.parametrize("secret", ["y", "a", "7", ",", "ab", "xyz"])
def test_a_short_secret_does_not_garble_other_text(secret: str) -> None:
    assert len(secret) < SHORT_SECRET
    redact = Redactor([secret])
    prose = "trying the next gateway after 7 attempts, a b c; xyz-abc"
    assert redact(prose) == prose
    encoded = quote(secret, safe=",")
    assert redact(f"https://h/send?user=u&password={encoded}&to=1") == (
        "https://h/send?user=u&password=***&to=1"
    )
    assert redact(f"https://h/send?password={encoded}") == "https://h/send?password=***"
    assert redact(json.dumps({"password": secret})) == '{"password": "***"}'
    assert redact(f"password: {secret}") == "password: ***"


def test_secrets_of_the_threshold_length_go_anywhere() -> None:
    redact = Redactor(["4242"])
    assert redact("TRX4242") == "TRX***"


def test_empty_secrets_are_ignored() -> None:
    redact = Redactor(["", None])
    assert not redact
    assert redact("anything = ") == "anything = "
    redact.add("")
    assert not redact


def test_repr_shows_no_secret() -> None:
    redact = Redactor(["hunter2!"])
    assert "hunter2" not in repr(redact)
    assert repr(redact) == "Redactor(1 secrets)"
