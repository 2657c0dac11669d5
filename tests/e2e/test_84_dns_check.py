"""`appliance dns check` in the running appliance: the records print-dns prints are
published in the test DNS (the world's DNS here) one by one, and the check, asking
through the appliance's Unbound, reports the one deliberately left out."""

from __future__ import annotations

import re

from tests.e2e.conftest import APPLIANCE_IP, DOMAIN, Appliance, TestDNS

HOST = f"mail.{DOMAIN}"


def zone_records(appliance: Appliance) -> list[tuple[str, str, str]]:
    """(absolute name, type, value) of each record print-dns asks for."""
    out = appliance.exec("appliance", "print-dns", DOMAIN).stdout
    records = []
    for line in out.splitlines():
        line = line.removeprefix("; ") if " IN " in line and line.startswith("; ") else line
        m = re.match(r"(\S+) IN (\S+) (.+?)(?: ; .*| \(in the zone of .*\))?$", line)
        if not m or line.startswith(";"):
            continue
        name, rdtype, value = m.groups()
        if rdtype == "TXT":
            value = "".join(re.findall(r'"([^"]*)"', value))
        fqdn = name.rstrip(".") if name.endswith(".") else (
            DOMAIN if name == "@" else f"{name}.{DOMAIN}")
        records.append((fqdn, rdtype, value))
    return records


def flush(appliance: Appliance) -> None:
    """Unbound forgets what it cached for the domain: the test changes the world's DNS
    faster than any TTL."""
    appliance.exec("unbound-control", "-c", "/etc/unbound/unbound.conf", "flush_zone", DOMAIN)


def test_dns_check_reports_a_missing_dkim_record_then_passes(appliance: Appliance,
                                                            zones: TestDNS) -> None:
    records = zone_records(appliance)
    types = {rdtype for _name, rdtype, _value in records}
    assert {"MX", "A", "TXT", "CNAME", "SRV"} <= types, records
    dkim = [r for r in records if "._domainkey." in r[0]]
    assert len(dkim) == 1
    published: dict[tuple[str, str], list[str]] = {}
    for name, rdtype, value in records:
        if rdtype == "A":
            value = APPLIANCE_IP  # the placeholder, replaced as the admin would
        if (name, rdtype) != dkim[0][:2]:
            published.setdefault((name, rdtype), []).append(value)
    try:
        zones.remove(dkim[0][0])  # an earlier test may have published it (test_50)
        for (name, rdtype), values in published.items():
            zones.names.setdefault(name, {})[rdtype] = values
        zones.write()
        flush(appliance)
        proc = appliance.exec("appliance", "dns", "check", check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        [line] = [x for x in lines[:-1] if "_domainkey" in x]
        assert line.startswith(f"missing {dkim[0][0]} TXT: expected v=DKIM1;"), line
        assert [x for x in lines[:-1] if not x.startswith("ok ")] == [line], proc.stdout
        assert lines[-1] == f"{DOMAIN}: {len(lines) - 2} ok, 1 missing: {dkim[0][0]} TXT"
        status = appliance.exec("appliance", "status", check=False).stdout
        assert f"DNS {DOMAIN}: {len(lines) - 2} ok, 1 missing" in status, status

        zones.set(dkim[0][0], "TXT", dkim[0][2])
        flush(appliance)
        proc = appliance.exec("appliance", "dns", "check", check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-1] == f"{DOMAIN}: {len(lines) - 1} ok"
    finally:
        for name, _rdtype, _value in records:
            zones.names.pop(name.lower(), None)
        zones.write()
        flush(appliance)
