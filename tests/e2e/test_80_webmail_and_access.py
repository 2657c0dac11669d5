"""Webmail, TLS policy and IMAP/POP3 access against the running container (issue 7).

A real browser (Debian's chromium, headless, driven by Selenium through Debian's
chromedriver) reads and answers mail in Roundcube; testssl.sh scans every TLS port;
plaintext logins are tried from outside the local networks, as SME documents.
"""

from __future__ import annotations

import http.cookiejar
import imaplib
import json
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    DOMAIN,
    STATE,
    Appliance,
    sink_messages,
    wait_for,
)
from tests.e2e.mail import TIMEOUT_S, ManageSieve, imap_login, imap_message, tls_context
from tests.e2e.plugins import (
    add_user,
    body,
    changed,
    delivered,
    dialogue,
    queue_drained,
    uid,
)
from tests.tls_pairs import ecdsa_pair

pytestmark = pytest.mark.e2e

BOB_PASSWORD = "Bob-e2e-passw0rd"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(context=tls_context()))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def test_http_redirects_to_https_and_the_login_page_carries_the_title(
    appliance: Appliance,
) -> None:
    code, headers, _ = fetch(f"http://{appliance.ip}/webmail/")
    assert code == 301 and headers["Location"] == f"https://{appliance.ip}/webmail/"
    changed(appliance, "config setprop horde Name 'Example Office Mail'",
            "signal-event email-update", ready=False)
    code, headers, page = fetch(f"https://{appliance.ip}/webmail/")
    assert code == 200, page[:500]
    assert "<title>Example Office Mail" in page
    assert "rcmloginuser" in page
    assert headers.get("Strict-Transport-Security")
    # what Roundcube keeps out of reach (Debian's .htaccess rules, for nginx)
    for path in ("config/config.inc.php", "SQL/sqlite.initial.sql", "composer.json",
                 "plugins/managesieve/config.inc.php.dist", "logs/errors.log"):
        assert fetch(f"https://{appliance.ip}/webmail/{path}")[0] == 404, path


def test_a_failed_webmail_login_is_in_the_container_log(appliance: Appliance) -> None:
    """Roundcube's log is the container's log, as every service's: a wrong password
    shows in `docker compose logs` with the user and the address it came from."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=tls_context()))
    base = f"https://{appliance.ip}/webmail/"
    page = opener.open(base, timeout=TIMEOUT_S).read().decode()
    token = re.search(r'name="_token" value="([^"]+)"', page)
    assert token, "no request token on the login page"
    user = f"nobody{uid()}"
    form = urllib.parse.urlencode({"_token": token[1], "_task": "login", "_action": "login",
                                   "_timezone": "UTC", "_url": "", "_user": user,
                                   "_pass": "wrong password"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(base + "?_task=login", data=form, timeout=TIMEOUT_S)
    assert refused.value.code == 401
    said = "userlogins: <"  # Roundcube's own line (Dovecot logs the failure as well)
    logs = wait_for(lambda: f"Failed login for {user} from" in (out := appliance.compose(
        "logs", "--no-log-prefix", "--since", "2m", "appliance").stdout) and out, 30,
        "Roundcube's failed login in the container log")
    line = next(line for line in logs.splitlines() if f"Failed login for {user}" in line)
    assert line.startswith(said), line


def test_private_webmail_is_refused_outside_the_local_networks(appliance: Appliance) -> None:
    url = f"https://{appliance.ip}/webmail/"
    changed(appliance, "appliance config set webmail.access private", ready=False)
    try:
        wait_for(lambda: fetch(url)[0] == 403, 15, "nginx to refuse the outside")
    finally:
        changed(appliance, "appliance config set webmail.access public", ready=False)
    wait_for(lambda: fetch(url)[0] == 200, 15, "nginx to serve the outside again")


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.accept_insecure_certs = True  # the appliance's first-boot certificate
    # A driver path: Selenium Manager (which would download one) is never asked.
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"),
                              options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_user_reads_and_answers_mail_in_a_real_browser(appliance: Appliance,
                                                         browser: object) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    drv = browser
    app = appliance
    bob = f"web{uid()[:6]}"  # a user of its own: other tests add their own bob
    add_user(app, bob, BOB_PASSWORD)
    subject = f"webmail-{uid()}"
    raw = body(subject, extra_headers=f"Reply-To: {bob}@{DOMAIN}\n", text="Please answer.\n")
    assert dialogue(app.ip, data=raw).code("data") == 250  # through port 25
    delivered(app, subject)
    answer = f"Answered in the browser {uid()}"
    wait = WebDriverWait(drv, 60)
    try:
        drv.get(f"https://{app.ip}/webmail/")  # type: ignore[attr-defined]
        wait.until(ec.visibility_of_element_located((By.ID, "rcmloginuser"))).send_keys("alice")
        drv.find_element(By.ID, "rcmloginpwd").send_keys(ALICE_PASSWORD)  # type: ignore[attr-defined]
        drv.find_element(By.ID, "rcmloginsubmit").click()  # type: ignore[attr-defined]
        row = wait.until(ec.visibility_of_element_located(
            (By.XPATH, f"//table[@id='messagelist']//tr[contains(., '{subject}')]")))
        ActionChains(drv).double_click(row).perform()  # opens the message
        wait.until(ec.element_to_be_clickable(
            (By.XPATH, "//a[contains(@class, 'reply') and not(contains(@class, 'disabled'))"
                       " and not(contains(@class, 'all'))]"))).click()
        text = wait.until(ec.visibility_of_element_located((By.ID, "composebody")))
        text.send_keys(Keys.CONTROL, Keys.HOME)
        text.send_keys(answer + "\n")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.send"))).click()
        reply = wait_for(lambda: imap_message(app.ip, bob, BOB_PASSWORD, f"Re: {subject}"),
                         60, "the reply in the other user's INBOX")
    except Exception:
        shot = STATE / "webmail-failure.png"
        drv.save_screenshot(str(shot))  # type: ignore[attr-defined]
        (STATE / "webmail-failure.html").write_text(drv.page_source)  # type: ignore[attr-defined]
        print(f"screenshot: {shot}")
        raise
    assert answer.encode() in reply
    head = reply.split(b"\r\n\r\n")[0].decode()
    assert f"alice@{DOMAIN}" in head.split("\r\nFrom:")[1].split("\r\n")[0]
    # sent through our submission daemon, with STARTTLS and AUTH as alice, like any
    # client: its transaction log has the queue id Postfix gave the reply
    queue_id = re.search(r"\(Postfix\) with ESMTP id (\w+)", head)
    assert queue_id, head
    log = app.exec("cat", "/var/log/appliance/smtpd-submission.log").stdout
    assert re.search(rf"submission 127\.0\.0\.1 \S+ auth=alice tls=TLSv1\.[23] "
                     rf"from=<alice@{DOMAIN}> .*id={queue_id.group(1)} verdict=queued", log)
    assert imap_message(app.ip, "alice", ALICE_PASSWORD, f"Re: {subject}", "Sent")


# -- TLS ---------------------------------------------------------------------------------

TLS_PORTS = [
    pytest.param(465, [], id="smtps-465"),
    pytest.param(587, ["--starttls", "smtp"], id="submission-587"),
    pytest.param(25, ["--starttls", "smtp"], id="smtp-25"),
    pytest.param(993, [], id="imaps-993"),
    pytest.param(143, ["--starttls", "imap"], id="imap-143"),
    pytest.param(995, [], id="pop3s-995"),
    pytest.param(110, ["--starttls", "pop3"], id="pop3-110"),
    pytest.param(443, [], id="https-443"),
]


@pytest.mark.parametrize(("port", "starttls"), TLS_PORTS)
def test_testssl_finds_no_old_protocol_and_no_weak_cipher(
    appliance: Appliance, tmp_path: Path, port: int, starttls: list[str]
) -> None:
    report = tmp_path / "testssl.json"
    proc = subprocess.run(
        ["testssl", "--quiet", "--color", "0", "--warnings", "off", "-p", "-s",
         "--jsonfile", str(report), *starttls, f"{appliance.ip}:{port}"],
        capture_output=True, text=True, timeout=600, check=False)
    findings = {f["id"]: f for f in json.loads(report.read_text())}
    assert findings, proc.stdout + proc.stderr
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert "not offered" in findings[old]["finding"], (port, findings[old])
    assert findings["TLS1_2"]["finding"].startswith("offered"), findings["TLS1_2"]
    weak = {i: f["finding"] for i, f in findings.items() if i.startswith("cipherlist_")
            and f["severity"] not in ("OK", "INFO")}
    assert not weak, (port, weak)


# -- IMAP and POP3 access ------------------------------------------------------------------


def plaintext_imap_login(ip: str) -> str:
    box = imaplib.IMAP4(ip, 143, timeout=TIMEOUT_S)
    try:
        box.login("alice", ALICE_PASSWORD)
        return "OK"
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        box.shutdown()


def plaintext_pop3_login(ip: str) -> str:
    pop = poplib.POP3(ip, 110, timeout=TIMEOUT_S)
    try:
        pop.user("alice")
        pop.pass_(ALICE_PASSWORD)
        return "OK"
    except poplib.error_proto as e:
        return str(e)
    finally:
        pop.close()


def test_plaintext_logins_follow_sme_access_private_and_public(appliance: Appliance) -> None:
    app = appliance
    # private (the default): from outside the local networks, TLS first
    # the response code (RFC 5530), not Dovecot's wording, which 2.4 changed
    assert "[PRIVACYREQUIRED]" in plaintext_imap_login(app.ip)
    assert "OK" != plaintext_pop3_login(app.ip)
    imaps = imaplib.IMAP4_SSL(app.ip, 993, ssl_context=tls_context(), timeout=TIMEOUT_S)
    assert imaps.login("alice", ALICE_PASSWORD)[0] == "OK"
    imaps.logout()
    # the test client's address made local: private lets it in without TLS
    changed(app, "appliance config set network.local_networks '198.51.100.1/32'",
            ready=False)
    try:
        wait_for(lambda: plaintext_imap_login(app.ip) == "OK", 15, "a local IMAP login")
        assert plaintext_pop3_login(app.ip) == "OK"
    finally:
        changed(app, "appliance config unset network.local_networks", ready=False)
    wait_for(lambda: plaintext_imap_login(app.ip) != "OK", 15, "TLS required again")
    # public, as SME: from anywhere
    changed(app, "config setprop imap access public", "config setprop pop3 access public",
            "signal-event email-update", ready=False)
    try:
        wait_for(lambda: plaintext_imap_login(app.ip) == "OK", 15, "a public IMAP login")
        assert plaintext_pop3_login(app.ip) == "OK"
    finally:
        changed(app, "config setprop imap access private", "config setprop pop3 access private",
                "signal-event email-update", ready=False)
    wait_for(lambda: plaintext_imap_login(app.ip) != "OK", 15, "TLS required again")


def test_folders_dots_make_subfolders_and_the_spam_folders_are_subscribed(
    appliance: Appliance,
) -> None:
    box = imaplib.IMAP4_SSL(appliance.ip, 993, ssl_context=tls_context(), timeout=TIMEOUT_S)
    try:
        box.login("alice", ALICE_PASSWORD)
        name = f"www{uid()}.contribs.org"
        assert box.create(name)[0] == "OK"
        _, listed = box.list(name.split(".")[0], "*")
        names = [line.decode().rsplit(" ", 1)[-1].strip('"') for line in listed]
        top = name.split(".")[0]
        assert set(names) >= {top, f"{top}.contribs", name}, names
        _, subscribed = box.lsub()
        text = b"\n".join(subscribed).decode()
        for folder in ("junkmail", "LearnAsSpam", "LearnAsHam"):
            assert folder in text
    finally:
        box.logout()


def test_a_dropped_in_certificate_is_served_after_apply_and_a_bad_one_is_refused(
    appliance: Appliance, tmp_path: Path,
) -> None:
    app = appliance
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    # ECDSA, as certbot makes them, in place of the first boot's RSA
    ecdsa_pair(cert, key, "custom.example.net")
    tls = "/var/lib/appliance/tls"
    app.exec("cp", f"{tls}/cert.pem", f"{tls}/key.pem", "/root/")

    def served(port: int) -> bytes:
        return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((app.ip, port),
                                                                   timeout=TIMEOUT_S))

    def after_starttls(port: int) -> bytes:
        with smtplib.SMTP(app.ip, port, timeout=TIMEOUT_S) as client:
            client.starttls(context=tls_context())
            return client.sock.getpeercert(binary_form=True)

    def smtpd_pids() -> str:
        return app.exec("supervisorctl", "pid", "smtpd-smtp", "smtpd-smtps",
                        "smtpd-submission").stdout

    before = served(993)
    pids = smtpd_pids()
    try:
        # a key that is not the certificate's: refused, nothing changes
        app.exec("sh", "-c", f"cat > {tls}/cert.pem", input=cert.read_text())
        refused = app.exec("appliance", "apply", check=False)
        assert refused.returncode != 0
        assert "is not the key of the certificate" in refused.stdout + refused.stderr
        assert served(993) == before
        app.exec("sh", "-c", f"cat > {tls}/key.pem", input=key.read_text())
        # a renewal must not cut off mail being sent: this session spans the apply
        with smtplib.SMTP_SSL(app.ip, 465, timeout=TIMEOUT_S, context=tls_context()) as open_:
            assert open_.ehlo()[0] == 250
            app.exec("appliance", "apply")
            new = ssl.PEM_cert_to_DER_cert(cert.read_text())
            for port in (465, 993, 995, 443):
                wait_for(lambda p=port: served(p) == new, 30,
                         f"port {port} to serve the new certificate")
            assert after_starttls(25) == after_starttls(587) == new
            assert open_.noop()[0] == 250
        assert smtpd_pids() == pids  # reloaded (SIGHUP), not restarted
    finally:
        app.exec("cp", "/root/cert.pem", "/root/key.pem", f"{tls}/")
        app.exec("appliance", "apply")
    wait_for(lambda: served(993) == before, 30, "the old certificate back")


def test_tls_13_only_for_imap_and_pop3_refuses_a_tls_12_client(appliance: Appliance) -> None:
    def handshake(port: int) -> str:
        ctx = tls_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            with ctx.wrap_socket(socket.create_connection((appliance.ip, port), TIMEOUT_S)):
                return "TLSv1.2"
        except (ssl.SSLError, ConnectionResetError) as e:
            return f"refused: {e}"

    assert handshake(993) == handshake(995) == "TLSv1.2"
    changed(appliance, "appliance config set tls.min_version TLSv1.3", ready=False)
    try:
        for port in (993, 995):
            wait_for(lambda p=port: handshake(p).startswith("refused"), 15,
                     f"{port} to refuse TLS 1.2")
    finally:
        changed(appliance, "appliance config unset tls.min_version", ready=False)
    wait_for(lambda: handshake(993) == "TLSv1.2", 15, "TLS 1.2 accepted again")


# -- ManageSieve, Out of Office, password change ---------------------------------------------

SETTINGS = ("xpath", "//*[@id='taskmenu']//a[contains(@class, 'settings')]")
# A settings form's Save: a link or a button, by skin and plugin
SAVE = ("//*[self::a or self::button or self::input]"
        "[contains(concat(' ', @class, ' '), ' submit ')]")


def test_managesieve_answers_on_4190_over_starttls_with_the_vacation_extension(
    appliance: Appliance,
) -> None:
    app = appliance
    user = f"sieve{uid()[:6]}"
    password = f"Sieve-{uid()}-Kestrel-9!"
    add_user(app, user, password)
    sieve = ManageSieve(app.ip)
    try:
        # from the internet, no password before TLS: nothing offered, a try refused
        assert sieve.capability("STARTTLS") is not None
        assert sieve.capability("SASL") == ""
        assert sieve.authenticate(user, password).startswith("NO")
        # verified against the appliance's own certificate, for its host name
        pem = app.exec("cat", "/var/lib/appliance/tls/cert.pem").stdout
        sieve.starttls(ssl.create_default_context(cadata=pem), f"mail.{DOMAIN}")
        assert "PLAIN" in (sieve.capability("SASL") or "").split()
        assert "vacation" in (sieve.capability("SIEVE") or "").split()
        assert sieve.authenticate(user, "wrong password").startswith("NO")
        assert sieve.authenticate(user, password).startswith("OK")
        assert sieve.command("LISTSCRIPTS")[0].startswith("OK")
        assert sieve.command("LOGOUT")[0].startswith("OK")
    finally:
        sieve.close()


def _log_in(drv: object, ip: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(drv, 60)
    drv.get(f"https://{ip}/webmail/")  # type: ignore[attr-defined]
    wait.until(ec.visibility_of_element_located((By.ID, "rcmloginuser"))).send_keys(user)
    drv.find_element(By.ID, "rcmloginpwd").send_keys(password)  # type: ignore[attr-defined]
    drv.find_element(By.ID, "rcmloginsubmit").click()  # type: ignore[attr-defined]
    # logged in, and Roundcube's script ready for clicks (an empty list shows no rows)
    wait.until(lambda d: d.execute_script(
        "return !!(window.rcmail && rcmail.loaded && rcmail.task == 'mail')"))


def _settings_section(drv: object, label: str, field: str) -> None:
    """Settings, then a section of its menu, until its form (with `field`) is there: in
    the page, or in the content frame (whichever the skin uses; then switched into)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(drv, 60, poll_frequency=1)
    link = (By.XPATH, f"//*[@id='settings-menu']//a[normalize-space()='{label}']")

    def in_settings(d: Any) -> bool:
        """Roundcube ignores a click while it is busy (loading the list): click again."""
        d.switch_to.default_content()
        if d.find_elements(*link):
            return True
        if d.execute_script("return !!(window.rcmail && rcmail.loaded && !rcmail.busy)"):
            d.find_element(*SETTINGS).click()
        return False

    wait.until(in_settings)
    wait.until(lambda d: d.execute_script("return !!(rcmail.loaded && !rcmail.busy)"))
    wait.until(ec.element_to_be_clickable(link)).click()

    def form_shown(d: Any) -> bool:
        d.switch_to.default_content()
        if d.find_elements(By.ID, field):
            return True
        for frame in d.find_elements(By.ID, "preferences-frame"):
            d.switch_to.frame(frame)
            if d.find_elements(By.ID, field):
                return True
            d.switch_to.default_content()
        return False

    wait.until(form_shown)


def _shot_on_failure(drv: object, name: str) -> None:
    shot = STATE / f"{name}-failure.png"
    drv.save_screenshot(str(shot))  # type: ignore[attr-defined]
    drv.switch_to.default_content()  # type: ignore[attr-defined]
    (STATE / f"{name}-failure.html").write_text(drv.page_source)  # type: ignore[attr-defined]
    print(f"screenshot: {shot}")


def test_out_of_office_set_in_the_browser_answers_mail_from_the_internet(
    appliance: Appliance, browser: object,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    app, drv = appliance, browser
    user = f"away{uid()[:6]}"
    password = f"Away-{uid()}-Heron-9!"
    address = add_user(app, user, password)
    reply_subject = f"Away until Monday {uid()}"
    wait = WebDriverWait(drv, 60)
    try:
        _log_in(drv, app.ip, user, password)
        _settings_section(drv, "Out of Office", "vacation_subject")
        wait.until(ec.visibility_of_element_located((By.ID, "vacation_subject"))).send_keys(
            reply_subject)
        drv.find_element(By.ID, "vacation_reason").send_keys(  # type: ignore[attr-defined]
            "I am out of the office.")
        Select(drv.find_element(By.ID, "vacation_status")).select_by_value("on")  # type: ignore[attr-defined]
        drv.find_element(By.XPATH, SAVE).click()  # type: ignore[attr-defined]
        # written through ManageSieve into the user's home on the data volume, active
        wait_for(lambda: reply_subject in app.exec(
            "cat", f"/var/lib/appliance/mail/{user}/.dovecot.sieve", check=False).stdout,
            60, "the Out of Office script to be active")
    except Exception:
        _shot_on_failure(drv, "vacation")
        raise
    sender = f"friend{uid()[:6]}@remote.test"
    subject = f"are-you-there-{uid()}"
    raw = body(subject, sender=sender, to=address)
    assert dialogue(app.ip, sender=sender, recipients=(address,), data=raw).code("data") == 250
    # the same message again: our duplicate check still runs before the user's script
    assert dialogue(app.ip, sender=sender, recipients=(address,), data=raw).code("data") == 250
    delivered(app, subject, user, password)  # kept as well as answered
    reply = wait_for(lambda: next((m for m in sink_messages(sender)
                                   if reply_subject.encode() in m), None),
                     90, "the Out of Office reply at the sender's server")
    head = reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    assert re.search(r"(?im)^Auto-Submitted: auto-replied", head), head
    assert re.search(rf"(?im)^To: .*{re.escape(sender)}", head), head
    assert re.search(rf"(?im)^In-Reply-To: <{re.escape(subject)}@remote\.test>", head), head
    queue_drained(app)
    box = imaplib.IMAP4_SSL(app.ip, 993, ssl_context=tls_context(), timeout=TIMEOUT_S)
    try:
        box.login(user, password)
        box.select("INBOX", readonly=True)
        assert len(box.search(None, "SUBJECT", f'"{subject}"')[1][0].split()) == 1
    finally:
        box.logout()
    assert len([m for m in sink_messages(sender) if reply_subject.encode() in m]) == 1


def test_a_user_changes_their_password_in_the_browser_and_a_weak_one_is_refused(
    appliance: Appliance, browser: object,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    app, drv = appliance, browser
    user = f"pw{uid()[:6]}"
    old, new = f"Old-{uid()}-Falcon-9!", f"New-{uid()}-Otter-7?"
    add_user(app, user, old)
    wait = WebDriverWait(drv, 60)

    def save(current: str, password: str) -> str:
        """Fill the Password form, save, and return the message Roundcube shows."""
        _settings_section(drv, "Password", "curpasswd")
        for field, value in (("curpasswd", current), ("newpasswd", password),
                             ("confpasswd", password)):
            wait.until(ec.visibility_of_element_located((By.ID, field))).send_keys(value)
        drv.find_element(By.XPATH, SAVE).click()  # type: ignore[attr-defined]
        drv.switch_to.default_content()  # type: ignore[attr-defined]
        shown = wait.until(ec.visibility_of_element_located(
            (By.CSS_SELECTOR, "#messagestack div.error, #messagestack div.confirmation")))
        text: str = shown.text
        return text

    try:
        _log_in(drv, app.ip, user, old)
        # long enough for Roundcube's own check, too weak for system.password_strength
        refused = save(old, "abcdefghijklmnopq")
        assert "refused" in refused and "upper and lower case" in refused, refused
        assert imap_login(app.ip, user, old)  # nothing changed
        wait.until(ec.invisibility_of_element_located(
            (By.CSS_SELECTOR, "#messagestack div.error")))
        assert "Successfully saved" in save(old, new)
    except Exception:
        _shot_on_failure(drv, "password")
        raise
    wait_for(lambda: imap_login(app.ip, user, new), 30, "a login with the new password")
    assert not imap_login(app.ip, user, old)
    # the stored hash is what changed: SMTP AUTH on 587 takes the new one too
    with smtplib.SMTP(app.ip, 587, timeout=TIMEOUT_S) as s:
        s.starttls(context=tls_context())
        assert s.login(user, new)[0] == 235
