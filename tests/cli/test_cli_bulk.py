"""send-bulk: outcomes written as they complete, resumable, keyed, interruptible."""

from __future__ import annotations

import csv
import json
import os
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx
from rich.progress import Progress

from mimgw.cli import send
from mimgw.cli.bulk import FIELDS, file_key
from mimgw.gateway import Gateway
from mimgw.models import Message, Receipt
from mimgw.providers.base import Outgoing
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.taxonomy import ErrorKind
from mimgw.testing import FakeProvider, fake_gateway_for

CliRun = Callable[..., tuple[int, str, str]]

NUMBERS = [f"0171234{n:04d}" for n in range(1, 21)]


def write_input(path: Path, count: int = 6, extra: str = "") -> Path:
    lines = ["to,text,reference" + (",key" if extra else "")]
    for i, number in enumerate(NUMBERS[:count], start=1):
        lines.append(
            f"{number},Your parcel {i} ships today,order-{i}" + (f",k{i}" if extra else "")
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_output(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == FIELDS
        return list(reader)


class SignallingFake(FakeProvider):
    """A fake that presses Ctrl-C (SIGINT to this process) during chosen submits."""

    def __init__(self, *, press_at: dict[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.press_at = press_at or {}
        self.messages: list[Message] = []

    async def _send(self, outgoing: Outgoing) -> Receipt:
        self.messages.append(outgoing.message)
        for _ in range(self.press_at.get(len(self.messages), 0)):
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep(0.05)
        return await super()._send(outgoing)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., SignallingFake]:
    """Make send-bulk use a gateway over a fresh fake provider (one per CLI run)."""
    made: list[SignallingFake] = []

    def configure(**kwargs: Any) -> SignallingFake:
        provider = SignallingFake(name="fake", **kwargs)
        made.append(provider)
        return provider

    async def open_gateway(args: Any, stack: AsyncExitStack) -> Gateway:
        gateway = Gateway([made[-1]])
        await stack.enter_async_context(gateway)
        return gateway

    monkeypatch.setattr(send, "open_gateway", open_gateway)
    return configure


def test_outcome_file_in_input_order_with_kinds_and_references(cli: CliRun, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "to,text,reference\n"
        "01712345678,Your parcel ships today,order-1\n"
        "12345,bad number,order-2\n"
        "01812345679,আপনার পার্সেল আজ পাঠানো হবে,order-3\n"
        "01912345670,,order-4\n",
        encoding="utf-8-sig",
    )
    target = tmp_path / "out.csv"
    code, out, err = cli("send-bulk", source, "--simulator", "--output", target)
    assert code == 1, out + err
    rows = read_output(target)
    assert [r["line"] for r in rows] == ["2", "3", "4", "5"]
    assert [r["outcome"] for r in rows] == ["accepted", "failed", "accepted", "failed"]
    assert [r["reference"] for r in rows] == ["order-1", "order-2", "order-3", "order-4"]
    assert rows[1]["error_kind"] == rows[3]["error_kind"] == "invalid_message"
    assert rows[0]["message_id"] and rows[0]["provider"] == "mimsms_v4"
    assert "line 3" in out and "invalid_message" in out
    assert "InvalidMessageError" not in out + target.read_text()


def test_default_output_sits_next_to_the_input(cli: CliRun, tmp_path: Path) -> None:
    source = write_input(tmp_path / "customers.csv", 2)
    code, out, _ = cli("send-bulk", source, "--simulator")
    assert code == 0
    target = tmp_path / "customers.csv.outcomes.csv"
    assert [r["outcome"] for r in read_output(target)] == ["accepted", "accepted"]
    assert "customers.csv.outcomes.csv" in " ".join(out.split())


def test_each_row_is_keyed_by_the_input_and_its_line(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    source = write_input(tmp_path / "in.csv", 3)
    provider = fake()
    assert cli("send-bulk", source, "-o", tmp_path / "out.csv")[0] == 0
    digest = file_key(source)
    keys = sorted(m.idempotency_key or "" for m in provider.messages)
    assert keys == [f"csv-{digest}-{line}" for line in (2, 3, 4)]
    assert [r["idempotency_key"] for r in read_output(tmp_path / "out.csv")] == keys


def test_a_key_column_gives_the_keys(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    source = write_input(tmp_path / "in.csv", 3, extra="key")
    provider = fake()
    assert cli("send-bulk", source, "-o", tmp_path / "out.csv", "--key-column", "key")[0] == 0
    assert sorted(m.idempotency_key or "" for m in provider.messages) == ["k1", "k2", "k3"]
    code, _, err = cli("send-bulk", source, "-o", tmp_path / "x.csv", "--key-column", "nope")
    assert code == 1 and "no column named 'nope'" in err


def test_a_rerun_sends_only_what_is_not_recorded(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    source, target = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    first = fake()
    first.fail(ErrorKind.OUTCOME_UNKNOWN)  # row 1 (one at a time: in order)
    first.fail(ErrorKind.RECIPIENT_REJECTED)  # row 2: provably not sent
    code, _, _ = cli("send-bulk", source, "-o", target, "--concurrency", "1")
    assert code == 1
    rows = read_output(target)
    assert [r["outcome"] for r in rows] == ["unknown", "failed"] + ["accepted"] * 4
    # as if the run had been killed after four rows: keep those lines only
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows[:4])
    second = fake()
    code, out, _ = cli("send-bulk", source, "-o", target, "--concurrency", "1")
    sent_again = sorted(m.to for m in second.messages)
    # the unknown row and the accepted ones are not sent; the failed row and the two
    # unrecorded ones are
    assert sent_again == sorted(["88" + NUMBERS[i] for i in (1, 4, 5)])
    assert "3 row(s) already recorded" in out
    final = read_output(target)
    assert [r["line"] for r in final] == [str(n) for n in range(2, 8)]
    assert [r["outcome"] for r in final] == ["unknown"] + ["accepted"] * 5
    assert code == 1  # the unknown row still needs a look
    third = fake()
    assert cli("send-bulk", source, "-o", target)[0] == 1
    assert third.messages == []


def test_an_outcome_file_of_another_input_is_refused(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    target = tmp_path / "out.csv"
    fake()
    assert cli("send-bulk", write_input(tmp_path / "a.csv", 3), "-o", target)[0] == 0
    other = tmp_path / "b.csv"
    other.write_text("to,text\n01912345670,hi\n")
    provider = fake()
    code, _, err = cli("send-bulk", other, "-o", target)
    assert code == 1
    assert "belongs to another input" in " ".join(err.split())
    assert provider.messages == []
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    code, _, err = cli("send-bulk", other, "-o", tmp_path / "notes.csv")
    assert code == 1 and "not a send-bulk outcome file" in " ".join(err.split())


def test_ctrl_c_finishes_what_is_in_flight_and_leaves_a_valid_file(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    source, target = write_input(tmp_path / "in.csv", 12), tmp_path / "out.csv"
    fake(press_at={3: 1})
    code, out, _ = cli("send-bulk", source, "-o", target, "--concurrency", "2")
    assert code == 130
    assert "stopping" in out and "interrupted" in out
    rows = read_output(target)
    assert 3 <= len(rows) < 12
    assert all(r["outcome"] == "accepted" for r in rows)
    second = fake()
    assert cli("send-bulk", source, "-o", target, "--concurrency", "2")[0] == 0
    assert len(second.messages) == 12 - len(rows)
    assert [r["line"] for r in read_output(target)] == [str(n) for n in range(2, 14)]


def test_second_ctrl_c_records_the_rows_in_flight_as_unknown(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    source, target = write_input(tmp_path / "in.csv", 8), tmp_path / "out.csv"
    fake(press_at={2: 2})  # both presses come while row 2 is in flight
    code, _, _ = cli("send-bulk", source, "-o", target, "--concurrency", "1")
    assert code == 130
    rows = read_output(target)
    assert [r["outcome"] for r in rows] == ["accepted", "unknown"][: len(rows)]
    assert rows[-1]["outcome"] == "unknown"
    assert rows[-1]["error_kind"] == "outcome_unknown"
    second = fake()
    assert cli("send-bulk", source, "-o", target)[0] == 1  # the unknown row needs a look
    assert len(second.messages) == 8 - len(rows)
    assert "88" + NUMBERS[len(rows) - 1] not in {m.to for m in second.messages}


def test_progress_moves_per_row_and_shows_rate_and_eta(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advances: list[float] = []

    class Spy(Progress):
        def update(self, task: Any, **fields: Any) -> None:  # type: ignore[override]
            if "advance" in fields:
                advances.append(fields["advance"])
            super().update(task, **fields)

    monkeypatch.setattr(send, "Progress", Spy)
    source = write_input(tmp_path / "in.csv", 5)
    code, out, _ = cli("send-bulk", source, "--simulator", "-o", tmp_path / "out.csv")
    assert code == 0
    assert advances == [1] * 5
    assert "msg/s" in out and "ETA" in out


def test_rows_sharing_a_key_are_sent_once(
    cli: CliRun, tmp_path: Path, fake: Callable[..., SignallingFake]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("to,text,key\n01712345678,hello,same\n01712345678,hello,same\n")
    provider = fake()
    code, _, _ = cli("send-bulk", source, "-o", tmp_path / "out.csv", "--key-column", "key")
    assert code == 0
    assert len(provider.submits) == 1
    rows = read_output(tmp_path / "out.csv")
    assert rows[0]["message_id"] == rows[1]["message_id"] != ""


def test_send_takes_an_idempotency_key(cli: CliRun) -> None:
    code, out, err = cli(
        "send", "01712345678", "hi", "--simulator", "--idempotency-key", "otp-1", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["provider"] == "mimsms_v4"


V4_BASE = "https://api.mimsms.com/api/SmsSending"
V4_OK = {"statusCode": "200", "status": "Success", "trxnId": "TRX", "responseResult": "ok"}


@pytest.fixture
def v4_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """send-bulk over MiMSMS v4 (which takes many messages in one request), its wire mocked."""

    async def open_gateway(args: Any, stack: AsyncExitStack) -> Gateway:
        provider = MimSmsV4(username="u@x.example", api_key="k-123456", sender="Shop")
        return await stack.enter_async_context(fake_gateway_for(provider))

    monkeypatch.setattr(send, "open_gateway", open_gateway)


@pytest.mark.usefixtures("v4_gateway")
@pytest.mark.parametrize(("flags", "requests"), [((), (1, 0)), (("--no-batch",), (0, 12))])
@respx.mock
def test_rows_go_in_native_batches_unless_told_each_with_its_own_outcome(
    cli: CliRun, tmp_path: Path, flags: tuple[str, ...], requests: tuple[int, int]
) -> None:
    dsms = respx.post(f"{V4_BASE}/DSMS").respond(json=V4_OK)
    ids = iter(range(100))
    single = respx.post(f"{V4_BASE}/SMS").mock(
        side_effect=lambda _: httpx.Response(200, json={**V4_OK, "trxnId": f"S{next(ids)}"})
    )
    source, target = write_input(tmp_path / "in.csv", 12), tmp_path / "out.csv"
    code, _, err = cli("send-bulk", source, "-o", target, *flags)
    assert code == 0, err
    assert (dsms.call_count, single.call_count) == requests
    if dsms.called:  # one DSMS request with every row's own text, in order
        sent = json.loads(dsms.calls[0].request.content)["SmsData"]
        assert [d["Message"] for d in sent] == [
            f"Your parcel {i} ships today" for i in range(1, 13)
        ]
    rows = read_output(target)
    assert [r["outcome"] for r in rows] == ["accepted"] * 12
    assert [r["reference"] for r in rows] == [f"order-{i}" for i in range(1, 13)]
    assert len({r["message_id"] for r in rows}) == 12  # one ledger entry per row


@pytest.mark.usefixtures("v4_gateway")
@respx.mock
def test_a_batch_of_unknown_outcome_is_unknown_for_every_row_in_it(
    cli: CliRun, tmp_path: Path
) -> None:
    respx.post(f"{V4_BASE}/DSMS").mock(side_effect=httpx.ReadTimeout("slow"))
    source, target = write_input(tmp_path / "in.csv", 4), tmp_path / "out.csv"
    code, _, _ = cli("send-bulk", source, "-o", target)
    assert code == 1
    rows = read_output(target)
    assert [(r["outcome"], r["error_kind"]) for r in rows] == [("unknown", "outcome_unknown")] * 4


@pytest.mark.usefixtures("v4_gateway")
@respx.mock
def test_second_ctrl_c_leaves_rows_whose_send_never_began_unrecorded(
    cli: CliRun, tmp_path: Path
) -> None:
    async def press_twice(request: httpx.Request) -> httpx.Response:
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep(0.05)
        return httpx.Response(200, json=V4_OK)  # pragma: no cover - cancelled before

    respx.post(f"{V4_BASE}/DSMS").mock(side_effect=press_twice)
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    # three local rows go as one batch; the two foreign ones (MiMSMS v4 takes Bangladeshi
    # numbers only) wait their turn behind it and never start
    rows = [
        f"{n},hello {i}" for i, n in enumerate([*NUMBERS[:3], "+919812345678", "+919812345679"])
    ]
    source.write_text("to,text\n" + "\n".join(rows) + "\n")
    code, _, _ = cli("send-bulk", source, "-o", target, "--concurrency", "1")
    assert code == 130
    recorded = read_output(target)
    assert [(r["line"], r["outcome"]) for r in recorded] == [(str(n), "unknown") for n in (2, 3, 4)]


async def test_rows_abandoned_in_flight_are_recorded_as_the_ledger_knows_them() -> None:
    from mimgw.cli.bulk import Outcome, Row, Run
    from mimgw.ledger import IntentState
    from mimgw.ledger.entry import utcnow
    from mimgw.ledger.intent import Intent

    gateway = Gateway([FakeProvider(name="fake")])
    now = utcnow()
    states = {"k-sent": IntentState.ACCEPTED, "k-unknown": IntentState.UNKNOWN}
    states |= {"k-flying": IntentState.IN_FLIGHT, "k-not-sent": IntentState.NOT_SENT}
    rows = [Row(line, {}, Message(to=NUMBERS[line], text="hi", idempotency_key=key), key=key)
            for line, key in enumerate(["k-never", *states])]  # fmt: skip
    receipt = Receipt(provider="fake", message_id="F1", to=rows[1].message.to)  # type: ignore[union-attr]
    for row in rows[1:]:
        assert row.message is not None and row.key is not None
        intent = Intent.for_message(row.message, now=now)
        await gateway.ledger.begin(intent)
        state = states[row.key]
        if state is not IntentState.IN_FLIGHT:
            got = receipt if state is IntentState.ACCEPTED else None
            await gateway.ledger.finish(intent.finished(state, now=now, receipt=got))
    recorded: list[Outcome] = []
    run = Run(gateway=gateway, concurrency=1, provider=None, done=recorded.append)
    run.in_flight = {row.line: row for row in rows}
    await run._abandon()
    assert run.in_flight == {}
    # never begun and provably not sent: left for the next run
    assert [(o.row.key, o.status) for o in recorded] == [
        ("k-sent", "accepted"),
        ("k-unknown", "unknown"),
        ("k-flying", "unknown"),
    ]
    assert recorded[0].result == receipt
