"""Per-send cost: no retry machinery on a first success, one prepare and one parse per send."""

from __future__ import annotations

from typing import Any

import pytest
import respx

import mimgw.retry as retry_module
from mimgw import ErrorKind, Message, ProviderError
from mimgw.http import HttpResponse
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RetryPolicy, retry_call
from mimgw.testing import FakeClock, fake_gateway_for

OK = {"statusCode": "200", "status": "Success", "trxnId": "T1", "responseResult": "sent"}


class Forbidden:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("AsyncRetrying built for a call that needed no retry")


async def test_a_first_success_builds_no_retry_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_module, "AsyncRetrying", Forbidden)

    async def ok() -> str:
        return "done"

    assert await retry_call(ok, policy=RetryPolicy(), operation="submit") == "done"


async def test_a_final_first_failure_builds_none_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_module, "AsyncRetrying", Forbidden)
    error = ProviderError.of(ErrorKind.AUTH, "p", None, "no")

    async def refused() -> str:
        raise error

    with pytest.raises(ProviderError) as caught:
        await retry_call(refused, policy=RetryPolicy(), operation="submit")
    assert caught.value is error


async def test_retries_after_the_first_failure_keep_their_waits_and_count() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=4, jitter=False, sleep=clock.sleep, clock=clock.monotonic)
    tries = 0

    async def flaky() -> str:
        nonlocal tries
        tries += 1
        if tries < 4:
            raise ProviderError.of(ErrorKind.CONNECT_FAILED, "p", None, "down")
        return "ok"

    assert await retry_call(flaky, policy=policy, operation="submit") == "ok"
    assert tries == 4 and clock.sleeps == [0.2, 0.4, 0.8]


@respx.mock
async def test_gateway_send_prepares_once_and_parses_the_answer_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    respx.post("https://api.mimsms.com/api/SmsSending/SMS").respond(json=OK)
    provider = MimSmsV4(username="u@x.example", api_key="k-123456", sender="Shop")
    prepares = 0
    original = MimSmsV4.prepare

    def counting(self: MimSmsV4, message: Message) -> Any:
        nonlocal prepares
        prepares += 1
        return original(self, message)

    parses = 0
    real_json = HttpResponse.json

    def counting_json(self: HttpResponse) -> Any:
        nonlocal parses
        if self.parsed is None:
            parses += 1
        return real_json(self)

    monkeypatch.setattr(MimSmsV4, "prepare", counting)
    monkeypatch.setattr(HttpResponse, "json", counting_json)
    gw = fake_gateway_for(provider)
    receipt = await gw.send("01712345678", "hello")
    assert receipt.message_id == "T1"
    assert (prepares, parses) == (1, 1)
