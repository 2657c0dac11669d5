"""One SMTP daemon process: `appliance smtpd smtp|smtps|submission`.

Binds its port as root, loads the TLS key, then drops to the unprivileged `qpsmtpd`
user. SIGHUP re-reads the settings file (users, domains, plugins) and the TLS
certificate without dropping connections; SIGTERM stops accepting, lets sessions
finish for a while, then exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from appliance import paths
from appliance.config.schema import SMTP_DAEMONS, SUBMISSION_DAEMONS
from appliance.privileges import drop_privileges
from appliance.security.bans import BanStore
from appliance.smtpd import replies, txlog
from appliance.smtpd.auth import PasswordChecker
from appliance.smtpd.handler import Handler, State
from appliance.smtpd.handoff import PostfixHandoff
from appliance.smtpd.peers import LocalNetworks
from appliance.smtpd.pipeline import Pipelines, context
from appliance.smtpd.server import ConnectionLimits, SMTPServer
from appliance.smtpd.settings import Settings, SettingsError, from_json
from appliance.smtpd.settings import from_dict as settings_from_dict
from appliance.tls import fingerprint

log = logging.getLogger("appliance.smtpd")

SHUTDOWN_GRACE_S = 20.0
TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def read_settings(path: Path = paths.SMTPD_CONFIG) -> Settings:
    """The settings file, checked whole: SettingsError naming the key if it is not one
    this version writes."""
    with open(path, encoding="utf-8") as f:
        return from_json(f.read())


def build_state(settings: Settings | Mapping[str, Any], daemon: str = "smtp") -> State:
    """Everything derived from settings (a Settings, or the file's parsed JSON); raises
    SettingsError naming the key on a bad file, PluginError on a bad plugin setting."""
    if not isinstance(settings, Settings):
        settings = settings_from_dict(settings)
    return State(
        settings=settings,
        pipelines=Pipelines(daemon, settings, context(settings)),
        passwords=PasswordChecker(settings.users, list(settings.local_domains),
                                  app_passwords=settings.app_passwords),
        # opened on first use: the config checker builds this as root in a staging run
        bans=(BanStore(Path(settings.bans_db), settings.security)
              if settings.security.enabled else None),
    )


def tls_context(cert: str, key: str, min_version: str, ciphers: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = TLS_VERSIONS[min_version]
    if ciphers:
        ctx.set_ciphers(ciphers)
    if ctx.minimum_version < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS < 1.2 at its default security level; port 25 keeps
        # old senders on (weak) TLS rather than pushing them to plaintext.
        ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    return ctx


# Every address, IPv6 and IPv4 alike: one dual-stack socket on "::" (IPv4 clients
# arrive as ::ffff:a.b.c.d, which the server reads as plain IPv4).
ANY_ADDRESS = "::"


def _family_socket(host: str) -> tuple[socket.socket, str]:
    """A TCP socket for HOST and the address to bind it to. "::" is a dual-stack socket,
    or an IPv4 one on 0.0.0.0 where the kernel has no IPv6 at all (booted with
    ipv6.disable=1); a container whose network has no IPv6 still has the family, and
    "::" binds there and takes IPv4."""
    if host == ANY_ADDRESS:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:  # EAFNOSUPPORT: no IPv6 in this kernel
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM), "0.0.0.0"
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return sock, host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM), host


def listen_socket(port: int, host: str = ANY_ADDRESS, maxseg: int = 0) -> socket.socket:
    sock, address = _family_socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if maxseg:
        # MSS clamp ([network] mtu): accepted sockets inherit it and the SYN-ACK
        # advertises it, so a path with a smaller MTU never needs PMTU discovery.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, maxseg)
    sock.bind((address, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class Daemon:
    """One listener and everything it needs."""

    def __init__(self, name: str, settings: Settings, *, host: str = ANY_ADDRESS,
                 sock: socket.socket | None = None) -> None:
        if name not in SMTP_DAEMONS:
            raise ValueError(f"unknown daemon {name!r}; one of {', '.join(SMTP_DAEMONS)}")
        self.name = name
        self.settings = settings
        cfg = settings.daemons[name]
        self.implicit_tls = name == "smtps"
        self.certificate = self.pair_fingerprint(settings)
        self.ssl = self.load_certificate(settings, self.certificate)  # new sessions' TLS
        self.trusted_proxies = LocalNetworks(settings.trusted_proxies)
        self.limits = ConnectionLimits(cfg.instances, cfg.instances_per_ip)
        hand = settings.handoff
        self.handoff = PostfixHandoff(
            hand.host, hand.port, hand.timeout, settings.hostname,
            pool_size=min(cfg.instances, 32),
        )
        self.handler = Handler(build_state(settings, name), self.handoff)
        self.sock = sock or listen_socket(cfg.port, host, cfg.tcp_maxseg)
        self.server: asyncio.AbstractServer | None = None

    def protocol(self) -> SMTPServer:
        s = self.settings
        cfg = s.daemons[self.name]
        submission = self.name in SUBMISSION_DAEMONS
        mechanisms = {m.upper() for m in s.plugin_settings.auth.mechanisms}
        return SMTPServer(
            self.handler,
            daemon=self.name,
            limits=self.limits,
            implicit_tls=self.implicit_tls,
            # 465's TLS starts in the session, after a load balancer's PROXY header
            implicit_tls_context=self.ssl if self.implicit_tls else None,
            trusted_proxies=self.trusted_proxies,
            hostname=s.hostname,
            ident=s.greeting,
            data_size_limit=s.max_message_size,
            timeout=s.timeout,
            min_data_rate=s.min_data_rate,
            # 465 is TLS from the first byte: no STARTTLS to offer, AUTH at once.
            tls_context=None if self.implicit_tls else self.ssl,
            require_starttls=self.name == "submission",
            auth_required=submission,
            # SME: TlsBeforeAuth is a setting on 25 and always on for 465/587.
            auth_require_tls=not self.implicit_tls and (
                submission or cfg.tls_before_auth),
            auth_exclude_mechanism=[m for m in ("CRAM-MD5", "PLAIN", "LOGIN")
                                    if m not in mechanisms],
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.protocol, sock=self.sock)

    def reload(self) -> None:
        try:
            settings = read_settings()
            state = build_state(settings, self.name)
        except Exception as e:  # keep serving with what we have
            log.error("%s: reload failed, keeping the running settings: %s", self.name, e)
            return
        self.settings = settings
        self.trusted_proxies = LocalNetworks(settings.trusted_proxies)
        self.handler.state = state
        self.handoff.reset()  # Postfix was reloaded first: its new maps need new sessions
        log.info("%s: settings reloaded (%d users, %d domains)", self.name,
                 len(settings.users), len(settings.local_domains))
        self.reload_certificate()

    @staticmethod
    def pair_fingerprint(settings: Settings) -> str:
        tls = settings.tls
        return fingerprint(Path(tls.cert).read_bytes(), Path(tls.key).read_bytes())

    def load_certificate(self, settings: Settings, expected: str) -> ssl.SSLContext:
        """A whole new context for the pair in the settings, which must still be EXPECTED
        once loaded; OSError or ssl.SSLError if it does not load or changed meanwhile."""
        tls, cfg = settings.tls, settings.daemons[self.name]
        ctx = tls_context(tls.cert, tls.key, cfg.tls_min_version, cfg.tls_ciphers)
        if self.pair_fingerprint(settings) != expected:
            raise OSError("the certificate or key changed while it was loading")
        return ctx

    def reload_certificate(self) -> None:
        """A new certificate for the sessions to come (open ones keep theirs). It is
        loaded into a context of its own, so a pair that does not load leaves the one in
        use untouched; the pair now served is reported for apply to check."""
        try:
            certificate = self.pair_fingerprint(self.settings)
            if certificate != self.certificate:  # a reload for new users costs no TLS work
                self.ssl = self.load_certificate(self.settings, certificate)
                self.certificate = certificate
                log.info("%s: new TLS certificate loaded", self.name)
        except (OSError, ssl.SSLError) as e:
            log.error("%s: keeping the certificate in use, the new one did not load: %s",
                      self.name, e)
            return  # unreported: apply restarts this daemon
        self.report_certificate()

    def report_certificate(self, owner: str | None = None) -> None:
        """Say which pair this daemon serves (tls.report_dir/serving-NAME). Made by root at
        start and given to OWNER, to be rewritten in place after privileges are dropped."""
        folder = self.settings.tls.report_dir
        if not folder:
            return
        path = Path(folder) / f"serving-{self.name}"
        try:
            with open(path, "w", encoding="ascii") as f:
                f.write(self.certificate + "\n")
            if owner is not None and os.geteuid() == 0:
                pw = pwd.getpwnam(owner)
                os.chown(path, pw.pw_uid, pw.pw_gid)
        except OSError as e:  # apply then restarts this daemon to be sure
            log.error("%s: cannot report the certificate in use: %s", self.name, e)

    async def stop(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        if self.server is not None:
            self.server.close()
        try:
            await asyncio.wait_for(self.limits.idle.wait(), grace)
        except TimeoutError:
            log.warning("%s: closing %d sessions still open", self.name, self.limits.total)
            for proto in list(self.limits.open):
                if proto.transport is not None:
                    # RFC 5321 3.8: say 421 before closing for a shutdown.
                    cast(asyncio.WriteTransport, proto.transport).write(
                        replies.SHUTTING_DOWN.encode() + b"\r\n")
                    proto.transport.close()
        await self.handoff.close()
        self.handler.state.pipelines.close()


# smtpd.log_level is syslog's 0-7 (SME LogLevel); Python has fewer levels.
SYSLOG_TO_PYTHON = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.CRITICAL,
                    3: logging.ERROR, 4: logging.WARNING, 5: logging.WARNING,
                    6: logging.INFO, 7: logging.DEBUG}


def _configure_logging(level: int = 6) -> None:
    logging.basicConfig(
        level=SYSLOG_TO_PYTHON[level],
        format="%(name)s: %(message)s",
    )
    # aiosmtpd logs every command line at INFO: far too much, and slow.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


async def serve(name: str) -> None:
    settings = read_settings()
    daemon = Daemon(name, settings)
    if settings.terse_log:
        try:
            txlog.to_file(settings.terse_log, name, settings.run_as)
        except OSError as e:  # stdout still has every line
            log.error("%s: cannot write the transaction log file: %s", name, e)
    daemon.report_certificate(owner=settings.run_as)
    drop_privileges(settings.run_as)
    await daemon.start()
    cfg = settings.daemons[name]
    log.info("%s: listening on port %d (instances %d, per address %d)", name, cfg.port,
             cfg.instances, cfg.instances_per_ip)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    await stopping.wait()
    log.info("%s: shutting down", name)
    await daemon.stop()


def main(name: str) -> int:
    try:
        level = read_settings().log_level
    except (OSError, SettingsError) as e:  # never a daemon on half its settings
        _configure_logging()
        log.error("%s: cannot start: %s: %s", name, paths.SMTPD_CONFIG, e)
        return 1
    _configure_logging(level)
    asyncio.run(serve(name))
    return 0
