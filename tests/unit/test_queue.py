"""`appliance queue list` formatting (the commands themselves run against Postfix in e2e)."""

from __future__ import annotations

from appliance.queue import Message, counts, format_list


def test_list_shows_age_size_sender_recipients_and_why() -> None:
    msgs = [
        Message("4F2A1", "deferred", 1000, 2048, "alice@corp.example",
                [("bob@unreachable.test", "connect to 198.51.100.99[...]:25: timed out")]),
        Message("4F2A2", "hold", 4000, 512, "<>", [("x@remote.test", "")]),
    ]
    out = format_list(msgs, now=1000 + 2 * 3600 + 5 * 60)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["4F2A1", "deferred", "2h05m"]
    assert "(connect to 198.51.100.99" in lines[1]
    assert lines[-1] == "2 messages: 0 active, 1 deferred, 1 on hold"
    assert counts(msgs) == {"active": 0, "deferred": 1, "hold": 1, "incoming": 0}
