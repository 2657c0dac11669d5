"""The console with Textual's pilot, at 80x24: each screen's edits become the right
toml change through the real schema and apply path (checkers off: no Postfix here);
invalid input is shown next to its field and never written."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
import tomlkit
from textual.widgets import Button, DataTable, Input, Log, Static

from appliance import paths
from appliance.apply import commit
from appliance.commands.testmail import TestResult
from appliance.config import ConfigError, load
from appliance.config.default import default_toml
from appliance.services.network.interfaces import Interface, Probe, Route
from appliance.status import Service, Status
from console.app import ConsoleApp
from console.screens.apply import ApplyScreen
from console.screens.dns import DNSScreen
from console.screens.form import field_id
from console.screens.mtu import MTUScreen
from console.session import Session
from console.system import System

SIZE = (80, 24)


class FakeSystem:
    """The running system as the screens see it, without supervisord or tracepath."""

    def __init__(self) -> None:
        self.probed: list[str] = []
        self.sent: list[str] = []

    def status(self) -> Status:
        return Status(
            # every program the appliance runs: all must be in view at 80x24
            services=[Service(name, "RUNNING", "pid 10, uptime 1:00:00") for name in (
                "clamd", "dovecot", "freshclam", "nginx", "php-fpm", "postfix", "scheduler",
                "smtpd-smtp", "smtpd-smtps", "smtpd-submission")]
            + [Service("unbound", "RUNNING", "pid 11, uptime 12 days, 3:04:05"),
               Service("spamd", "FATAL", "Exited too quickly (process log may have details)")],
            queue={"active": 1, "deferred": 2, "hold": 0, "incoming": 0},
            disk_used=5 * 1024 * 1024, disk_free=10 * 1024 ** 3,
            certificate_expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=300),
            facts=["virus signatures: ClamAV 1.0, 1 file"], problems=["spamd is FATAL"])

    def recent_transactions(self, n: int = 8) -> list[str]:
        return ["2026-11-21T10:00:00 smtp 198.51.100.1 helo=x from=<a@remote.test> "
                "to=<alice@example.com> verdict=queued ms=12",
                "2026-11-21T10:05:00 smtp 198.51.100.9 helo=y from=<b@spam.test> to=- "
                "verdict=rejected by=dnsbl ms=3"]

    def interfaces(self) -> list[Interface]:
        return [Interface("lo", "UNKNOWN", 65536, addresses=["127.0.0.1/8"]),
                Interface("eth0", "UP", 1500, addresses=["198.51.100.10/24"])]

    def routes(self) -> list[Route]:
        return [Route("default", "198.51.100.1", "eth0"), Route("198.51.100.0/24", "", "eth0")]

    def interface_mtu(self, name: str) -> int | None:
        return 1500

    def probe(self, host: str) -> Probe:
        self.probed.append(host)
        return Probe(host, 1400, " 1?: [LOCALHOST] pmtu 1500\n 1:  192.0.2.1  pmtu 1400\n")

    def send_test(self, config, to: str) -> TestResult:  # noqa: ANN001
        self.sent.append(to)
        return TestResult(ok=True, transcript=["send: 'ehlo mail.example.com'",
                                               "reply: retcode (250)"], message_id="<1@x>")

    # the bans are the real store's, on the test's own file (paths.BANS_DB)
    bans = System.bans
    accounts_under_attack = System.accounts_under_attack
    unban = System.unban


class CountingCommit:
    def __init__(self, fail: str = "") -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, config, *, dry_run: bool = False):  # noqa: ANN001, ANN204
        if not dry_run:
            self.calls += 1
            if self.fail:
                raise ConfigError(self.fail)
        return commit(config, dry_run=dry_run, check=False)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    monkeypatch.setattr(paths, "BANS_DB", tmp_path / "bans.sqlite")
    paths.CONFIG.write_text(default_toml())
    return tmp_path


def toml() -> dict:
    return tomlkit.parse(paths.CONFIG.read_text()).unwrap()


def make_app(committer: CountingCommit | None = None) -> tuple[ConsoleApp, CountingCommit,
                                                                FakeSystem]:
    committer = committer or CountingCommit()
    system = FakeSystem()
    return ConsoleApp(session=Session(committer=committer), system=system), committer, system


def fits(app: ConsoleApp) -> None:
    """Every control and every line of text on the screen is fully on an 80x24 screen."""
    for widget in app.screen.query("Input, Button, DataTable, OptionList, Log, Static"):
        if not widget.display or (isinstance(widget, Static) and not str(widget.render())):
            continue
        r = widget.region
        assert r.width > 0 and r.height > 0, f"{widget} is not visible"
        assert r.right <= SIZE[0] and r.bottom <= SIZE[1], f"{widget} at {r} is off-screen"


def screen_text(app: ConsoleApp) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query(Static))


async def tab_to(pilot, app: ConsoleApp, widget_id: str) -> None:  # noqa: ANN001
    """Move the focus with Tab alone, as a keyboard-only admin would."""
    for _ in range(20):
        if app.focused is not None and app.focused.id == widget_id:
            return
        await pilot.press("tab")
    raise AssertionError(f"Tab never reaches #{widget_id}")


async def review_mtu(pilot, app: ConsoleApp, mtu: str) -> None:  # noqa: ANN001
    """From the menu: the MTU screen, a new value, ctrl+s: on the Apply screen."""
    await pilot.press("4")
    app.screen.query_one("#" + field_id("network.mtu"), Input).value = mtu
    await pilot.press("ctrl+s")
    await settle(pilot, app)


async def settle(pilot, app: ConsoleApp) -> None:  # noqa: ANN001
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_menu_lists_every_screen_and_digits_open_them(root: Path) -> None:
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        menu = app.screen.query_one("#menu")
        prompts = [str(menu.get_option_at_index(i).prompt) for i in range(menu.option_count)]
        for label in ("Status", "Networking", "DNS forwarder", "MTU", "Mail delivery",
                      "Apply", "Send a test message", "Bans"):
            assert any(label in p for p in prompts), label
        fits(app)
        await pilot.press("3")
        assert isinstance(app.screen, DNSScreen)
        await pilot.press("escape")
        await pilot.press("down", "down", "down", "enter")  # the fourth entry
        assert isinstance(app.screen, MTUScreen)


async def test_the_command_palette_opens_on_a_key_docker_exec_leaves_alone(
        root: Path) -> None:
    """ctrl+p is the first key of `docker exec`'s detach sequence: it never arrives
    at once. The palette opens on ctrl+k, from the menu and from an edit field."""
    from textual.command import CommandPalette
    from textual.widgets import Footer

    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert "^k" in str(app.screen.query_one(Footer).render()) or any(
            "^k" in str(key.render()) for key in app.screen.query("FooterKey"))
        await pilot.press("ctrl+p")
        assert not isinstance(app.screen, CommandPalette)
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")
        await pilot.press("4")  # the MTU screen, the focus in its field
        assert isinstance(app.focused, Input)
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, CommandPalette)


async def test_dns_forwarders_become_the_toml_change_and_apply_runs_once(root: Path) -> None:
    app, committer, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        fits(app)
        app.screen.query_one("#" + field_id("network.dns_forwarders"), Input).focus()
        await pilot.press(*"192.0.2.7, 192.0.2.8")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, ApplyScreen)
        fits(app)
        diff = "\n".join(app.screen.query_one("#diff", Log).lines)
        assert "+    forward-addr: 192.0.2.7" in diff and "+    forward-addr: 192.0.2.8" in diff
        assert toml()["network"]["dns_forwarders"] == []  # not before apply
        await pilot.press("a")
        await settle(pilot, app)
        await pilot.press("a")  # nothing left to do: a second apply changes nothing
        await settle(pilot, app)
    assert toml()["network"]["dns_forwarders"] == ["192.0.2.7", "192.0.2.8"]
    assert "forward-addr: 192.0.2.8" in (root / "etc/unbound/unbound.conf").read_text()
    assert committer.calls == 2
    assert load(paths.CONFIG).data["network"]["dnssec"] is True  # untouched


async def test_an_invalid_forwarder_is_shown_by_its_field_and_not_written(root: Path) -> None:
    before = paths.CONFIG.read_text()
    app, committer, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        app.screen.query_one("#" + field_id("network.dns_forwarders"), Input).focus()
        await pilot.press(*"dns.example.net")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, DNSScreen)
        error = app.screen.query_one("#" + field_id("network.dns_forwarders") + "-error",
                                     Static)
        assert "'dns.example.net' is not an IP address" in str(error.render())
    assert paths.CONFIG.read_text() == before
    assert committer.calls == 0


async def test_public_resolver_with_block_lists_warns_and_offers_recursion(root: Path) -> None:
    paths.CONFIG.write_text(default_toml().replace(
        "[smtpd.dnsbl]\n", "[smtpd.dnsbl]\nenabled = true\n", 1).replace(
        "# look up clients' addresses (SME DNSBL). Allowed: true or false.\nenabled = false\n",
        "", 1))
    assert load(paths.CONFIG).data["smtpd"]["dnsbl"]["enabled"] is True
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        forwarders = app.screen.query_one("#" + field_id("network.dns_forwarders"), Input)
        forwarders.focus()
        await pilot.press(*"8.8.8.8")
        await pilot.pause()
        warning = str(app.screen.query_one("#forwarder-warning", Static).render())
        assert "DNSBL is on" in warning and "8.8.8.8 (Google)" in warning
        button = app.screen.query_one("#full-recursion", Button)
        assert button.display
        fits(app)
        await tab_to(pilot, app, "full-recursion")
        await pilot.press("enter")
        await pilot.pause()
        assert forwarders.value == ""
        assert str(app.screen.query_one("#forwarder-warning", Static).render()) == ""


async def test_mtu_clamp_probe_and_apply(root: Path) -> None:
    app, committer, system = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        fits(app)
        mtu = app.screen.query_one("#" + field_id("network.mtu"), Input)
        assert mtu.value == "0"
        assert "not clamped" in str(app.screen.query_one("#mtu-now", Static).render())
        app.screen.query_one("#probe-host", Input).focus()
        await pilot.press(*"198.51.100.26", "enter")
        await settle(pilot, app)
        assert system.probed == ["198.51.100.26"]
        assert "smallest path MTU to 198.51.100.26: 1400" in str(
            app.screen.query_one("#probe-result", Static).render())
        await tab_to(pilot, app, "use-pmtu")
        await pilot.press("enter")
        await pilot.pause()
        assert mtu.value == "1400"
        assert "MSS: 1360" in str(app.screen.query_one("#mtu-now", Static).render())
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        assert "applied" in str(app.screen.query_one("#apply-result", Static).render())
    assert toml()["network"]["mtu"] == 1400
    smtpd = (root / "etc/appliance/smtpd.json").read_text()
    assert '"tcp_maxseg": 1360' in smtpd
    assert committer.calls == 1


async def test_mtu_out_of_range_is_refused_by_its_field(root: Path) -> None:
    app, committer, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        mtu = app.screen.query_one("#" + field_id("network.mtu"), Input)
        mtu.value = "100"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        error = str(app.screen.query_one("#" + field_id("network.mtu") + "-error",
                                         Static).render())
        assert error == "✗ not a usable MTU; must be an integer: 0, or 576 to 9000"
    assert toml()["network"]["mtu"] == 0 and committer.calls == 0


async def test_mail_delivery_smarthost_and_per_domain_server(root: Path) -> None:
    # two domains whose names differ only where . and - are: each has its own field
    paths.CONFIG.write_text(default_toml() + '\n[domains."shop-example.org"]\n'
                            '[domains."shop.example-org.net"]\n')
    app, committer, _ = make_app()
    password = " S3cret pw "  # spaces are part of a password
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        fits(app)
        screen = app.screen

        def set_field(dotted: str, value: str) -> None:
            screen.query_one("#" + field_id(dotted), Input).value = value

        set_field("delivery.smarthost", "bad host")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert "'bad host' is not a host name or address" in str(screen.query_one(
            "#" + field_id("delivery.smarthost") + "-error", Static).render())
        set_field("delivery.smarthost", "smtp.example.net:587")
        set_field("delivery.smarthost_user", "office")
        set_field("delivery.smarthost_password", password)
        set_field("delivery.smarthost_tls", "encrypt")
        set_field("delivery.helo_host", "out.example.com")
        set_field("domains.shop-example.org.mail_server", "10.0.0.5")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, ApplyScreen)
        shown = "\n".join(app.screen.query_one("#diff", Log).lines)
        assert "smarthost_auth: changed (it holds a password: not shown)" in shown
        assert "S3cret" not in shown + screen_text(app)
        await pilot.press("a")
        await settle(pilot, app)
    data = toml()
    assert data["delivery"]["smarthost"] == "smtp.example.net:587"
    assert data["delivery"]["smarthost_user"] == "office"
    assert data["delivery"]["smarthost_password"] == password
    assert data["delivery"]["smarthost_tls"] == "encrypt"
    assert data["delivery"]["helo_host"] == "out.example.com"
    assert data["domains"]["shop-example.org"] == {"mail_server": "10.0.0.5"}
    assert data["domains"]["shop.example-org.net"] == {}
    assert data["delivery"]["delegate_mail_server"] == ""  # unchanged: not rewritten
    assert committer.calls == 1


async def test_internal_mail_server_for_all_mail(root: Path) -> None:
    app, committer, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        app.screen.query_one("#" + field_id("delivery.delegate_mail_server"), Input).value = \
            "192.0.2.25"
        await tab_to(pilot, app, "review")  # the screen's button, not ctrl+s
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, ApplyScreen)
        assert "transport" in "\n".join(app.screen.query_one("#diff", Log).lines)
        await pilot.press("a")
        await settle(pilot, app)
    assert toml()["delivery"]["delegate_mail_server"] == "192.0.2.25"
    assert committer.calls == 1


async def test_a_hand_broken_toml_is_reported_and_the_console_stays(root: Path) -> None:
    app, committer, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await review_mtu(pilot, app, "1492")
        paths.CONFIG.write_text("[network\nmtu = 1400\n")  # someone edits it by hand, badly
        await pilot.press("d")  # read it again
        await settle(pilot, app)
        assert app.is_running and isinstance(app.screen, ApplyScreen)
        assert "✗" in str(app.screen.query_one("#apply-result", Static).render())
        await pilot.press("a")  # the edit still stands, and is refused: the file changed
        await settle(pilot, app)
        result = str(app.screen.query_one("#apply-result", Static).render())
        assert "changed by someone else" in result and "Press d" in result
    assert committer.calls == 1


async def test_quitting_with_edits_not_applied_asks_for_a_second_q(root: Path) -> None:
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await review_mtu(pilot, app, "1492")
        await pilot.press("escape", "q")
        assert app.is_running
        assert "q again quits without them" in screen_text(app)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert toml()["network"]["mtu"] == 0


async def test_esc_waits_for_a_running_apply_to_finish(root: Path) -> None:
    class Slow(CountingCommit):
        def __call__(self, config, *, dry_run: bool = False):  # noqa: ANN001, ANN204
            if not dry_run:
                time.sleep(0.5)
            return super().__call__(config, dry_run=dry_run)

    app, committer, _ = make_app(Slow())
    async with app.run_test(size=SIZE) as pilot:
        await review_mtu(pilot, app, "1492")
        await pilot.press("a", "escape")
        assert isinstance(app.screen, ApplyScreen)  # not left before the result
        await settle(pilot, app)
        assert "applied" in str(app.screen.query_one("#apply-result", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, ApplyScreen)
    assert committer.calls == 1


async def test_a_refused_apply_changes_nothing_and_says_why(root: Path) -> None:
    before = paths.CONFIG.read_text()
    app, committer, _ = make_app(CountingCommit(fail="postfix refused the new "
                                                "configuration: bad"))
    async with app.run_test(size=SIZE) as pilot:
        await review_mtu(pilot, app, "1492")
        await pilot.press("a")
        await settle(pilot, app)
        result = str(app.screen.query_one("#apply-result", Static).render())
        assert "not applied, nothing changed" in result and "postfix refused" in result
    assert paths.CONFIG.read_text() == before
    assert committer.calls == 1


async def test_an_unexpected_apply_failure_is_said_and_the_console_stays(root: Path) -> None:
    class Exploding(CountingCommit):
        def __call__(self, config, *, dry_run: bool = False):  # noqa: ANN001, ANN204
            if not dry_run:
                self.calls += 1
                raise OSError(28, "No space left on device")
            return super().__call__(config, dry_run=True)

    app, committer, _ = make_app(Exploding())
    async with app.run_test(size=SIZE) as pilot:
        await review_mtu(pilot, app, "1492")
        await pilot.press("a")
        await settle(pilot, app)
        result = str(app.screen.query_one("#apply-result", Static).render())
        assert app.is_running and "No space left on device" in result
        assert "nothing changed" not in result and "appliance apply" in result
    assert committer.calls == 1


async def test_status_shows_services_queue_problems_and_recent_mail(root: Path) -> None:
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        await settle(pilot, app)
        text = screen_text(app)
        assert re.search(r"spamd +FATAL +Exited too q", text)
        assert re.search(r"unbound +RUNNING +12d 3:04:05", text)
        assert re.search(r"smtpd-submission +RUNNING +1:00:00", text)
        assert re.search(r"nginx +RUNNING +1:00:00", text)
        assert "queue: 1 active, 2 deferred" in text
        assert "Problems: spamd is FATAL" in text
        older = "10:00:00 smtp 198.51.100.1 a@remote.test -> alice@example.com queued"
        newer = "10:05:00 smtp 198.51.100.9 b@spam.test -> - rejected by dnsbl"
        assert older in text and newer in text
        assert text.index(newer) < text.index(older)  # newest first, in view
        assert "virus signatures: ClamAV 1.0" in text
        fits(app)


async def test_a_status_that_cannot_be_read_is_said_not_fatal(root: Path) -> None:
    app, _, system = make_app()

    def broken() -> Status:
        raise OSError(2, "No such file or directory", "/var/lib/appliance")

    system.status = broken  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        await settle(pilot, app)
        assert app.is_running
        assert "status could not be read" in screen_text(app)


async def test_networking_shows_interfaces_and_gateway(root: Path) -> None:
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot, app)
        table = app.screen.query_one("#interfaces", DataTable)
        assert list(table.get_row_at(1)) == ["eth0", "UP", "1500", "198.51.100.10/24"]
        assert "default via 198.51.100.1 dev eth0" in screen_text(app)
        fits(app)


async def test_send_test_message_shows_the_transcript(root: Path) -> None:
    app, _, system = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        fits(app)
        await pilot.press(*"not an address", "enter")
        await pilot.pause()
        assert "type an address" in screen_text(app) and system.sent == []
        app.screen.query_one("#to", Input).value = "alice@example.com"
        await pilot.press("enter")
        await settle(pilot, app)
        assert system.sent == ["alice@example.com"]
        assert "reply: retcode (250)" in app.screen.query_one("#transcript", Log).lines
        assert "accepted for alice@example.com" in screen_text(app)


async def test_the_bans_screen_lists_the_bans_and_lifts_the_one_picked(root: Path) -> None:
    from appliance.services.security import open_store

    store = open_store(load(paths.CONFIG))
    store.add("203.0.113.9", 7200, "by hand")
    for _ in range(10):
        store.failed("198.51.100.77", "imap", "bob")
    store.close()
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        await settle(pilot, app)
        table = app.screen.query_one("#bans", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["198.51.100.77", "203.0.113.9"]  # newest first
        # an hour left, or a second or two less on a slow machine
        assert re.fullmatch(r"1h|59m( \d+s)?", rows[0][1]), rows[0][1]
        assert "10 failed logins in 10m (imap, bob)" in rows[0][2]
        fits(app)
        await pilot.press("u")  # the cursor is on the first row
        await settle(pilot, app)
        assert "ban lifted: 198.51.100.77" in screen_text(app)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [
            "203.0.113.9"]
    store = open_store(load(paths.CONFIG))
    assert store.banned("198.51.100.77") is None and store.banned("203.0.113.9") is not None


async def test_a_login_name_full_of_markup_is_shown_as_it_is(root: Path) -> None:
    from appliance.services.security import open_store

    store = open_store(load(paths.CONFIG))
    for _ in range(10):
        store.failed("198.51.100.78", "smtps", "[/x]\x1b]0;owned\x07")
    store.close()
    app, _, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        await settle(pilot, app)
        table = app.screen.query_one("#bans", DataTable)
        assert "[/x]?]0;owned?" in str(table.get_row_at(0)[2])
