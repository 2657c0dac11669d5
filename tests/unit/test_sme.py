"""SME Server's config/db/signal-event commands, run verbatim against a toml file."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from appliance import paths
from appliance.commands import sme
from appliance.config import ConfigError, load

START = """\
# my own comment, kept
[system]
hostname = "mail"
domain = "corp.example"

[users.alice]
[users.tom]
[users.jack]
[groups.group1]
members = ["alice", "tom", "jack"]
[groups.group2]
members = ["jack"]
[domains."test.com"]
"""


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(START)
    monkeypatch.setattr(paths, "CONFIG", path)
    return path


def run(command: str) -> str:
    """One SME command line, as an admin would type it."""
    argv = shlex.split(command)
    out: list[str] = []
    if argv[0] == "config":
        sme.run_db("configuration", argv[1:], out.append)
    elif argv[0] == "db":
        sme.run_db(argv[1], argv[2:], out.append)
    return "".join(out)


def value(toml: Path, dotted: str):
    from appliance.config import edit

    return edit.get_value(load(toml), dotted)


def test_setprop_enables_plugins_and_keeps_comments(toml: Path) -> None:
    run("config setprop qpsmtpd DNSBL enabled RHSBL enabled")
    assert value(toml, "smtpd.dnsbl.enabled") is True
    assert value(toml, "smtpd.rhsbl.enabled") is True
    assert "# my own comment, kept" in toml.read_text()
    assert run("config getprop qpsmtpd DNSBL") == "enabled\n"


def test_colon_separated_sbllist_and_quoted_rbllist_with_message(toml: Path) -> None:
    run("config setprop qpsmtpd SBLList multi.surbl.org:rhsbl.sorbs.net:dbl.spamhaus.org")
    assert value(toml, "smtpd.rhsbl.zones") == [
        "multi.surbl.org", "rhsbl.sorbs.net", "dbl.spamhaus.org"]
    run("config setprop qpsmtpd RBLList server1.test,'b.barracudacentral.org:Blocked - see "
        "<http://bbl.barracudacentral.com/q.cgi?ip=%IP%>'")
    assert value(toml, "smtpd.dnsbl.zones")[1].startswith("b.barracudacentral.org:Blocked")
    run("config setprop qpsmtpd UBLList multi.surbl.org:8-16-64-128,black.uribl.com")
    assert value(toml, "smtpd.uribl.zones") == ["multi.surbl.org:8-16-64-128",
                                                "black.uribl.com"]


def test_show_lists_every_property_in_sme_format(toml: Path) -> None:
    shown = run("config show qpsmtpd")
    assert shown.startswith("qpsmtpd=service\n")
    assert "    DNSBL=disabled\n" in shown
    assert "    Instances=40\n" in shown
    assert "    TlsBeforeAuth=1\n" in shown


def test_value_keys_get_and_set(toml: Path) -> None:
    run("config set DelegateMailServer 192.0.2.25")
    assert run("config show DelegateMailServer") == "DelegateMailServer=192.0.2.25\n"
    assert run("config get DomainName") == "corp.example\n"
    run("config set DomainName example.org")
    assert value(toml, "system.domain") == "example.org"


def test_qmail_and_smtpd_properties(toml: Path) -> None:
    run("config setprop qmail ConcurrencyRemote 10")
    run("config setprop qmail DoubleBounceTo devnull")
    run("config setprop smtpd HeloHost mx.corp.example")
    assert value(toml, "queue.concurrency_remote") == 10
    assert value(toml, "queue.double_bounce_to") == "devnull"
    assert value(toml, "delivery.helo_host") == "mx.corp.example"


def test_accounts_show_works_with_the_wikis_awk_pipeline(toml: Path) -> None:
    shown = run("db accounts show")
    users = [line.split("=")[0] for line in shown.splitlines() if "=user" in line]
    assert users == ["alice", "jack", "tom"]
    for user in users:
        run(f"db accounts setprop {user} Visible internal")
    assert value(toml, "users.tom.visible") == "internal"
    run("db accounts delprop tom Visible")
    assert value(toml, "users.tom.visible") == "public"


def test_group_exclusions_and_everyone(toml: Path) -> None:
    run("db accounts setprop group1 EmailExcludeUsers tom,jack")
    run("db accounts setprop group1 EmailExcludeGroups group2")
    run("db accounts setprop alice EveryoneEmail no")
    assert value(toml, "groups.group1.exclude_users") == ["tom", "jack"]
    assert value(toml, "groups.group1.exclude_groups") == ["group2"]
    assert value(toml, "users.alice.everyone_email") is False
    assert run("db accounts getprop alice EveryoneEmail") == "no\n"


def test_forwarding_like_the_server_manager(toml: Path) -> None:
    run("db accounts setprop alice ForwardAddress alice@remote.test EmailForward both")
    assert value(toml, "users.alice.forward") == ["alice@remote.test"]
    assert run("db accounts getprop alice EmailForward") == "both\n"
    run("db accounts setprop alice EmailForward local")
    assert value(toml, "users.alice.forward") == []
    with pytest.raises(ConfigError, match="ForwardAddress"):
        run("db accounts setprop tom EmailForward forward")


def test_domain_mail_server_set_and_removed(toml: Path) -> None:
    run("db domains setprop test.com MailServer a.b.c.d")
    assert value(toml, 'domains.test.com.mail_server') == "a.b.c.d"
    run("db domains setprop test.com DKIMSigning disabled")
    assert value(toml, "domains.test.com.dkim_signing") is False
    run("db domains delprop test.com MailServer")
    assert value(toml, "domains.test.com.mail_server") == ""


def test_accounts_and_domains_can_be_created_and_deleted(toml: Path) -> None:
    run("db accounts set bob user Visible internal")
    run("db accounts set sales group Members alice,bob")
    run("db accounts set info pseudonym Account sales")
    run("db domains set new.example domain Description 'second shop'")
    config = load(toml)
    assert config.data["users"]["bob"]["visible"] == "internal"
    assert config.data["groups"]["sales"]["members"] == ["alice", "bob"]
    assert config.data["pseudonyms"]["info"]["account"] == "sales"
    assert config.data["domains"]["new.example"]["description"] == "second shop"
    # the wiki: "Can be either a user, pseudonym or group"
    run("db accounts setprop info Visible public")
    run("db accounts setprop sales Visible public")
    assert value(toml, "pseudonyms.info.visible") == "public"
    assert value(toml, "groups.sales.visible") == "public"
    run("db accounts delprop info Visible")
    assert value(toml, "pseudonyms.info.visible") == "account"  # follows sales again
    run("db accounts delete info")
    assert "info" not in load(toml).data["pseudonyms"]


def test_the_wikis_spam_and_virus_commands(toml: Path) -> None:
    run("config setprop spamassassin status enabled Sensitivity custom TagLevel 4 "
        "RejectLevel 12 SortSpam enabled UseBayes 1 BayesAutoLearnThresholdSpam 6.00 "
        "BayesAutoLearnThresholdNonspam 0.10 MessageRetentionTime 60 PyzorTimeout 15")
    run("config setprop clamav HeuristicScanPrecedence yes MaxFileSize 20M")
    run("config setprop qpsmtpd VirusScan enabled MaxScannerSize 30000000 PatternsScan "
        "enabled")
    run("db accounts setprop alice SortSpam disabled")
    spam = load(toml).data["spamassassin"]
    assert (spam["sensitivity"], spam["tag_level"], spam["reject_level"]) == ("custom", 4, 12)
    assert spam["use_bayes"] and spam["sort_spam"] and spam["message_retention_days"] == 60
    assert spam["bayes_auto_learn_threshold_nonspam"] == 0.1 and spam["pyzor_timeout"] == 15
    assert run("config getprop spamassassin UseBayes") == "1\n"
    clam = load(toml).data["clamav"]
    assert clam["heuristic_scan_precedence"] and clam["max_file_size"] == "20M"
    assert clam["max_scanner_size"] == 30000000
    assert load(toml).data["smtpd"]["pattern_filter"]["enabled"]
    assert load(toml).data["users"]["alice"]["sort_spam"] == "disabled"


def test_wbl_global_white_and_black(toml: Path) -> None:
    for entry in ("*@vonage.com White", "*domain2.com White", "user@domain3.com White",
                  "spammer@spamdomain.com Black", "*@*.xyz Black"):
        run(f"db spamassassin setprop wbl.global {entry}")
    spam = load(toml).data["spamassassin"]
    assert spam["whitelist"] == ["*@vonage.com", "*domain2.com", "user@domain3.com"]
    assert spam["blacklist"] == ["spammer@spamdomain.com", "*@*.xyz"]
    run("db spamassassin setprop wbl.global user@domain3.com Black")  # moves it
    run("db spamassassin delprop wbl.global *domain2.com")
    assert run("db spamassassin show") == (
        "wbl.global=wbl\n    *@vonage.com=White\n    spammer@spamdomain.com=Black\n"
        "    *@*.xyz=Black\n    user@domain3.com=Black\n")
    assert run("db spamassassin getprop wbl.global *@*.xyz") == "Black\n"
    with pytest.raises(ConfigError, match="White or Black"):
        run("db spamassassin setprop wbl.global a@b.example Grey")


def test_bad_value_is_refused_and_the_file_is_untouched(toml: Path) -> None:
    with pytest.raises(ConfigError, match="HeloPolicy|policy"):
        run("config setprop qpsmtpd HeloPolicy sloppy")
    with pytest.raises(ConfigError, match="no such user"):
        run("db accounts setprop group1 EmailExcludeUsers nobody")
    assert toml.read_text() == START


@pytest.mark.parametrize("command", [
    "config setprop php UploadMaxFilesize 10M",
    "config setprop qpsmtpd Proxy 25",
    "db configuration getprop LearnAsSpam dir",
])
def test_what_does_not_apply_here_says_why(toml: Path, command: str) -> None:
    with pytest.raises(ConfigError, match="not available here: .{20,}"):
        run(command)
    assert toml.read_text() == START


def test_webmail_and_imap_access_settings_map_to_the_toml(toml: Path) -> None:
    run("config setprop imap access public")
    run("config setprop pop3 access public")
    run("config setprop imap ConcurrencyLimit 200")
    run("config setprop horde Name 'MyDomain Mail'")
    data = load(toml).data
    assert data["imap"]["access"] == data["pop3"]["access"] == "public"
    assert data["imap"]["connections"] == 200
    assert data["webmail"]["title"] == "MyDomain Mail"
    with pytest.raises(ConfigError, match="private|public"):
        run("config setprop imap access open")


def test_unknown_property_is_refused_by_name(toml: Path) -> None:
    with pytest.raises(ConfigError, match="unknown property Colour of qpsmtpd"):
        run("config setprop qpsmtpd Colour blue")


def test_signal_event_refuses_unknown_events_and_explains_reboot() -> None:
    with pytest.raises(ConfigError, match="docker compose restart"):
        sme.signal_event(["reboot"])
    with pytest.raises(ConfigError, match="unknown event"):
        sme.signal_event(["party"])


def test_console_settings_mtu_and_dns_forwarder(toml: Path) -> None:
    run("config setprop InternalInterface MTU 1492")
    run("config setprop dnscache Forwarder 192.0.2.53,192.0.2.54")
    data = load(toml).data["network"]
    assert data["mtu"] == 1492
    assert data["dns_forwarders"] == ["192.0.2.53", "192.0.2.54"]
    with pytest.raises(ConfigError, match="not a usable MTU"):
        run("config setprop InternalInterface MTU 100")


def test_dns_forwarder_and_forwarder2_are_the_first_and_second_forwarders(
        toml: Path) -> None:
    def forwarders() -> list[str]:
        return load(toml).data["network"]["dns_forwarders"]

    run("config setprop dnscache Forwarder2 192.0.2.54 Forwarder 192.0.2.53")  # any order
    assert forwarders() == ["192.0.2.53", "192.0.2.54"]
    run("config setprop dnscache Forwarder 192.0.2.60")  # the second one stays
    assert forwarders() == ["192.0.2.60", "192.0.2.54"]
    assert run("config getprop dnscache Forwarder2").strip() == "192.0.2.54"
    run("config setprop dnscache Forwarder2 192.0.2.70,192.0.2.71")  # the rest, as a list
    assert forwarders() == ["192.0.2.60", "192.0.2.70", "192.0.2.71"]
    assert "Forwarder2=192.0.2.70,192.0.2.71" in run("config show dnscache")
    run("config delprop dnscache Forwarder2")
    assert forwarders() == ["192.0.2.60"]
    assert run("config getprop dnscache Forwarder2").strip() == ""
    with pytest.raises(ConfigError, match="not an IP address"):
        run("config setprop dnscache Forwarder2 dns.example.net")
    assert forwarders() == ["192.0.2.60"]
    run("config setprop dnscache Forwarder2 192.0.2.54")
    run("config setprop dnscache Forwarder ''")  # SME's empty value: full recursion
    assert forwarders() == []
    with pytest.raises(ConfigError, match="before the others"):
        run("config setprop dnscache Forwarder2 192.0.2.54")
    run("config setprop dnscache Forwarder 192.0.2.53 Forwarder2 192.0.2.54")
    run("config delprop dnscache Forwarder")
    assert forwarders() == []


def test_show_hides_passwords_that_getprop_gives(toml: Path) -> None:
    run("config setprop SMTPAUTHPROXY Userid office Passwd S3cret-relay")
    shown = run("config show SMTPAUTHPROXY")
    assert "Passwd=(set)" in shown and "S3cret" not in shown and "Userid=office" in shown
    assert run("config getprop SMTPAUTHPROXY Passwd").strip() == "S3cret-relay"


SME_COMMANDS = ("config", "db", "signal-event", "sa-learn", "qpsmtpd-print-dns")


def readme_sme_examples() -> list[str]:
    """Every command of README.md's SME table (its first column), markdown unescaped."""
    import re

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## SME Server habits", 1)[1].split("\n## ", 1)[0]
    spans = []
    for row in section.splitlines():
        if row.startswith("| `"):
            first = re.split(r"(?<!\\)\|", row)[1]
            spans += [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", first)]
    return spans


def test_every_sme_example_in_the_readme_is_a_command_that_works(toml: Path) -> None:
    """Typed as shown, in the table's order: no placeholder, no fragment, no refusal."""
    examples = readme_sme_examples()
    assert len(examples) > 40
    ran = 0
    for command in examples:
        assert command.split()[0] in SME_COMMANDS, f"not a whole command: {command!r}"
        if command.split()[0] in ("config", "db") and " | " not in command:
            try:
                run(command)
            except ConfigError as e:
                raise AssertionError(f"README's {command!r} is refused: {e}") from None
            ran += 1
    assert ran > 35


def test_db_domains_show_lists_the_primary_domain_first(toml: Path) -> None:
    shown = run("db domains show")
    assert shown.startswith("corp.example=domain\n")
    assert "test.com=domain" in shown
    assert run("db domains keys") == "corp.example\ntest.com\n"
    assert "MailServer" not in run("db domains show corp.example")  # DelegateMailServer
    run("db domains setprop corp.example DKIMSigning disabled")
    assert value(toml, "domains.corp.example.dkim_signing") is False
    assert load(toml).local_domains == ["corp.example", "test.com"]
    with pytest.raises(ConfigError, match="primary domain"):
        run("db domains delete corp.example")
