"""Shared pieces of the reliability tests: a fault-injecting transport over the simulator,
per-message server counts, and the checks every soak and cancellation test makes.

The scenario helpers of tests/test_gateway_scenarios.py (``ServerLikeLedger``,
``number``...) are imported from there, not copied.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from test_gateway_scenarios import DINI, V4, ServerLikeLedger, fast_retry, number

from mimgw import (
    AllProvidersFailedError,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
)
from mimgw.breaker import BreakerPolicy
from mimgw.gateway import Gateway
from mimgw.ledger import IntentState, Ledger, MemoryLedger, SqliteLedger
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

__all__ = [
    "DINI",
    "FAULTS",
    "V4",
    "Chaos",
    "ServerLikeLedger",
    "check_outcomes",
    "make_ledger",
    "message_for",
    "number",
    "rich_sim",
    "sent_by_text",
]

TOKEN = re.compile(r"rel-[0-9a-z]+-\d+")
"""Every reliability message's text is one such token, so a request names its messages
whatever the wire encoding (JSON body, query string; a native batch names several)."""


def message_for(tag: str, i: int, *, keyed: bool) -> Message:
    return Message(
        to=number(i % 900_000),
        text=f"rel-{tag}-{i}",
        reference=f"ref-{tag}-{i}",
        idempotency_key=f"key-{tag}-{i}" if keyed else None,
    )


def rich_sim(seed: int = 1) -> Simulator:
    """A simulator whose gateways never run dry by themselves (faults decide)."""
    sim = Simulator(seed=seed)
    sim.mimsms_v4.balance = Decimal("1e12")
    sim.dinisoft.balance = Decimal("1e12")
    return sim


def sent_by_text(sim: Simulator) -> dict[str, Counter[str]]:
    """Per gateway, how many times it took each message text (the simulators' own
    per-message submission counters)."""
    out: dict[str, Counter[str]] = {}
    for key in (V4, DINI):
        counts: Counter[str] = Counter()
        for (_, text), n in sim.gateways[key].submissions.items():
            counts[text] += n
        out[key] = counts
    return out


def make_ledger(kind: str, tmp_path: Path, clock: FakeClock | None = None) -> Ledger:
    now = (clock or FakeClock()).now
    if kind == "memory":
        return MemoryLedger(clock=now, max_entries=None)
    if kind == "sqlite":
        return SqliteLedger(tmp_path / "ledger.db", clock=now)
    if kind == "server":
        return ServerLikeLedger(clock or FakeClock())
    raise ValueError(kind)


# -- faults -----------------------------------------------------------------------------------

FAULTS: dict[str, float] = {
    "ok": 55.0,
    "connect_error": 6.0,  # refused before the gateway: nothing sent
    "connect_timeout": 2.0,
    "reset_after": 5.0,  # the gateway processed it; the answer is lost
    "timeout_after": 5.0,
    "502_empty": 4.0,  # a proxy's bodiless 5xx; the gateway may or may not have acted
    "504_html": 3.0,
    "503_retry_after": 2.0,  # "come back later": nothing processed
    "garbled_json": 3.0,  # the gateway took it and its answer arrives cut short
    "garbled_html": 2.0,
    "429": 4.0,
    "auth": 1.0,
    "credit": 2.0,  # v4 only (DiniSoft has no such code): auth there
    "recipient": 2.0,
    "dini_code_1": 3.0,  # DiniSoft only: a refusal that does not fail over
}
"""Relative weights of what happens to one request."""

_FORCED = {
    V4: {"auth": "401", "credit": "216", "recipient": "206", "dini_code_1": "221"},
    DINI: {"auth": "109", "credit": "108", "recipient": "1", "dini_code_1": "1"},
}


@dataclass
class Chaos(httpx.AsyncBaseTransport):
    """The simulator behind a network that misbehaves at random, per request.

    What happens to a request is drawn from ``faults`` by an RNG seeded with
    ``seed``, the message the request carries and how many requests for it this
    gateway has seen, so a run is reproducible whatever the scheduling. ``plans``
    forces the fault of the n-th request of a message at a gateway.
    """

    sim: Simulator
    seed: int
    faults: dict[str, float] = field(default_factory=lambda: dict(FAULTS))
    plans: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    clock: FakeClock | None = None
    """Advanced by ``tick`` seconds per request: breakers' cool-downs pass as traffic flows."""
    tick: float = 0.5
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = httpx.ASGITransport(app=self.sim)
        self._names = list(self.faults)
        self._weights = [self.faults[n] for n in self._names]

    def _choose(self, gateway: str, tokens: list[str]) -> str:
        first = tokens[0]
        n = self.seen[(gateway, first)]
        for token in tokens:
            self.seen[(gateway, token)] += 1
        plan = self.plans.get((gateway, first)) if len(tokens) == 1 else None
        if plan is not None and n < len(plan):
            fault = plan[n]
        else:
            rng = random.Random(f"{self.seed}|{gateway}|{first}|{len(tokens)}|{n}")
            fault = rng.choices(self._names, self._weights)[0]
        self.log.extend((gateway, token, fault) for token in tokens)
        return fault

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        gw = self.sim.gateway_for(request.url.path)
        tokens = TOKEN.findall(str(request.url) + request.content.decode("utf-8", "replace"))
        if gw is None or not tokens:  # reads (balance probes...) pass untouched
            return await self.app.handle_async_request(request)
        if self.clock is not None:
            self.clock.advance(self.tick)
        fault = self._choose(gw.key, tokens)
        self.injected[fault] += 1
        if fault == "connect_error":
            raise httpx.ConnectError("chaos: connection refused", request=request)
        if fault == "connect_timeout":
            raise httpx.ConnectTimeout("chaos: connect timed out", request=request)
        if fault == "429":
            return _reply(request, 429, "", headers={"Retry-After": "1"})
        if fault == "503_retry_after":
            return _reply(request, 503, "<html>maintenance</html>", headers={"Retry-After": "5"})
        if fault in ("502_empty", "504_html"):
            # a proxy gave up: on a coin toss the gateway had already acted
            if random.Random(f"{self.seed}|proxy|{tokens[0]}|{gw.key}").random() < 0.5:
                await (await self.app.handle_async_request(request)).aread()
            if fault == "502_empty":
                return _reply(request, 502, "")
            return _reply(request, 504, "<html><body>504 Gateway Time-out</body></html>")
        if fault in _FORCED[gw.key]:
            gw.force(_FORCED[gw.key][fault])
        response = await self.app.handle_async_request(request)
        body = await response.aread()
        if fault == "reset_after":
            raise httpx.RemoteProtocolError("chaos: connection reset", request=request)
        if fault == "timeout_after":
            raise httpx.ReadTimeout("chaos: read timed out", request=request)
        if fault == "garbled_json":
            cut = body[: max(1, len(body) // 2)].decode("utf-8", "replace")
            return _reply(request, 200, cut, content_type="application/json")
        if fault == "garbled_html":
            return _reply(request, 200, "<html><body>Welcome to nginx!</body></html>")
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def aclose(self) -> None:
        await self.app.aclose()


def _reply(
    request: httpx.Request,
    status: int,
    body: str,
    *,
    content_type: str = "text/html",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": content_type, **(headers or {})},
        content=body.encode("utf-8"),
        request=request,
    )


def chaos_gateway(
    sim: Simulator,
    chaos: httpx.AsyncBaseTransport,
    clock: FakeClock,
    ledger: Ledger,
    **kwargs: Any,
) -> tuple[Gateway, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=chaos)
    providers = [sim.provider(V4, client=client), sim.provider(DINI, client=client)]
    gw = fake_gateway_for(
        *providers,
        clock=clock,
        breaker=kwargs.pop("breaker", None)
        or BreakerPolicy(clock=_ticking(clock), cooldown=5.0, account_cooldown=20.0),
        ledger=ledger,
        retry=kwargs.pop("retry", None) or fast_retry(clock, deadline=None),
        **kwargs,
    )
    return gw, client


def _ticking(clock: FakeClock, step: float = 0.2) -> Callable[[], float]:
    """A breaker clock on which time passes as the gateway looks at it, so open
    breakers close again even while no request goes out."""

    def now() -> float:
        clock.advance(step)
        return clock.monotonic()

    return now


# -- the checks -------------------------------------------------------------------------------


def may_have_been_sent(outcome: MimgwError) -> bool:
    if isinstance(outcome, ProviderError | AllProvidersFailedError):
        return outcome.may_have_been_sent
    return False


async def check_outcomes(
    sim: Simulator,
    gw: Gateway,
    pairs: Sequence[tuple[Message, Receipt | MimgwError]],
    *,
    failover: bool,
    cancelled: Iterable[Message] = (),
) -> Counter[str]:
    """Every promise of DESIGN.md section 9 for ``pairs`` (message, outcome), against
    what the simulated gateways really took. ``cancelled`` messages have no outcome but
    must still be in the ledger when a gateway took them. Returns a tally."""
    tally: Counter[str] = Counter()
    at = sent_by_text(sim)
    ledger = gw.ledger
    seen = [m.text for m, _ in pairs] + [m.text for m in cancelled]
    assert len(seen) == len(set(seen)), "one outcome per message"
    unknown_refs: set[str] = set()
    for message, outcome in pairs:
        counts = {k: at[k][message.text] for k in (V4, DINI)}
        total = sum(counts.values())
        assert max(counts.values()) <= 1, (message.text, counts, outcome)
        if not failover:
            assert total <= 1, (message.text, counts, outcome)
        history = await gw.history(message.reference)
        intent = await ledger.intent(message.idempotency_key) if message.idempotency_key else None
        if isinstance(outcome, Receipt):
            tally["accepted"] += 1
            if total > 1:
                tally[f"dup:{total}"] += 1
            assert counts[outcome.provider] == 1, (message.text, counts, outcome)
            if total > 1:  # only on_unknown="failover" allows it: the other may have sent
                assert failover
                if intent is not None:
                    assert any(a.may_have_been_sent for a in intent.attempts[:-1]), intent
            keyed = [(e.provider, e.message_id) for e in history]
            assert keyed == [(outcome.provider, outcome.message_id)], (message.text, history)
            if intent is not None:
                assert intent.state is IntentState.ACCEPTED and intent.receipt == outcome
            continue
        assert isinstance(outcome, MimgwError), outcome
        maybe = may_have_been_sent(outcome)
        tally["maybe_sent" if maybe else "not_sent"] += 1
        tally["processed_unknown"] += maybe and total > 0
        if total > 0:  # issue 9 #1: a server took it, the error must say so
            assert maybe, (message.text, counts, repr(outcome))
        assert history == [], (message.text, history)
        if maybe:
            unknown_refs.add(message.reference)
        if intent is not None:
            expected = IntentState.UNKNOWN if maybe else IntentState.NOT_SENT
            assert intent.state is expected, (message.text, intent, repr(outcome))
    for message in cancelled:
        tally["cancelled"] += 1
        total = at[V4][message.text] + at[DINI][message.text]
        history = await gw.history(message.reference)
        assert len(history) <= total, (message.text, history)
        if total and not history:  # taken, no receipt back: must be an open intent
            unknown_refs.add(message.reference)
    unresolved = {i.reference for i in await ledger.unresolved()}
    assert unresolved >= unknown_refs, sorted(unknown_refs - unresolved)[:5]
    extra = unresolved - unknown_refs
    if not list(cancelled):
        assert not extra, sorted(extra)[:5]
    tally["unresolved"] = len(unresolved)
    return tally
