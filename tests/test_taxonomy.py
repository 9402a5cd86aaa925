from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimgw import ErrorKind, State

FINAL = {State.DELIVERED, State.UNDELIVERABLE, State.EXPIRED, State.REJECTED}


@pytest.mark.parametrize("state", list(State))
def test_final_states_are_exactly_the_documented_ones(state: State) -> None:
    assert state.final is (state in FINAL)


def test_progress_order() -> None:
    order = [State.UNKNOWN, State.ACCEPTED, State.PENDING, State.SENT, State.DELIVERED]
    for before, after in itertools.pairwise(order):
        assert before.rank < after.rank
        assert before.advance(after) is after
        assert after.advance(before) is after


@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(FINAL, 2)))
def test_a_final_state_never_changes(first: State, second: State) -> None:
    assert first.advance(second) is first


@pytest.mark.parametrize("state", [s for s in State if s is not State.UNKNOWN])
def test_unknown_never_overwrites_anything_known(state: State) -> None:
    assert state.advance(State.UNKNOWN) is state


@given(st.lists(st.sampled_from(list(State)), min_size=1, max_size=12))
def test_folding_reports_never_moves_backwards(reports: list[State]) -> None:
    current = State.UNKNOWN
    for report in reports:
        nxt = current.advance(report)
        assert nxt.rank >= current.rank
        if current.final:
            assert nxt is current
        current = nxt


# (kind, retry on the same gateway, fail over) exactly as DESIGN.md's table says
POLICY = [
    (ErrorKind.CONNECT_FAILED, True, True),
    (ErrorKind.RATE_LIMITED, True, True),
    (ErrorKind.PROVIDER_UNAVAILABLE, True, True),
    (ErrorKind.OUTCOME_UNKNOWN, False, False),
    (ErrorKind.AUTH, False, True),
    (ErrorKind.ACCESS_DENIED, False, True),
    (ErrorKind.INSUFFICIENT_BALANCE, False, True),
    (ErrorKind.SENDER_REJECTED, False, True),
    (ErrorKind.RECIPIENT_REJECTED, False, False),
    (ErrorKind.CONTENT_REJECTED, False, False),
    (ErrorKind.REQUEST_REJECTED, False, False),
    (ErrorKind.BAD_RESPONSE, False, False),
    (ErrorKind.UNSUPPORTED, False, True),
]


def test_policy_table_covers_every_kind() -> None:
    assert {row[0] for row in POLICY} == set(ErrorKind)


@pytest.mark.parametrize(("kind", "retry", "failover"), POLICY)
def test_kind_policy(kind: ErrorKind, retry: bool, failover: bool) -> None:
    assert kind.retryable is retry
    assert kind.failover is failover


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_only_unknown_outcomes_may_have_been_sent(kind: ErrorKind) -> None:
    maybe_sent = kind in (ErrorKind.OUTCOME_UNKNOWN, ErrorKind.BAD_RESPONSE)
    assert (kind.policy.sent is None) is maybe_sent
