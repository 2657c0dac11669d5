"""appliance.smtpd.dmarc.evaluate: the verdict the dmarc plugin acts on, on its own."""

from __future__ import annotations

import pytest

from appliance.smtpd.dmarc import evaluate
from appliance.smtpd.hooks import DkimSignature, SpfCheck, Transaction
from tests.unit.plugins.conftest import StubResolver, message


def mail(spf: str = "fail", sigs: tuple[DkimSignature, ...] = (),
         from_: str = "someone@sender.example") -> Transaction:
    t = Transaction(sender="someone@sender.example")
    t.data = message({"From": from_})
    t.spf = SpfCheck(spf, "", "sender.example")
    t.dkim = list(sigs)
    return t


@pytest.fixture
def dns() -> StubResolver:
    r = StubResolver()
    r.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject; pct=50; rua=mailto:r@sender.example")
    return r


async def judge(dns: StubResolver, t: Transaction, *, may_reject: bool = True,
                sample: float = 0.0) -> evaluate.Evaluation:
    return await evaluate.evaluate(dns, t, helo="mx.sender.example", may_reject=may_reject,
                                   sample=lambda: sample)


async def test_aligned_dkim_passes_and_names_the_policy(dns: StubResolver) -> None:
    ev = await judge(dns, mail(sigs=(DkimSignature("mail.sender.example", "s1", True, "pass"),)))
    assert (ev.result, ev.dkim_aligned, ev.spf_aligned, ev.disposition) == (
        "pass", True, False, "none")
    assert ev.auth_result == "dmarc=pass (p=reject dis=none) header.from=sender.example"
    assert ev.judged


async def test_failure_is_sampled_then_softened_by_the_local_policy(dns: StubResolver) -> None:
    applied = await judge(dns, mail(), sample=0.1)  # 10 < pct 50: the policy applies
    sampled_out = await judge(dns, mail(), sample=0.9)
    local = await judge(dns, mail(), sample=0.1, may_reject=False)

    assert (applied.result, applied.disposition, applied.reason) == ("fail", "reject", "")
    assert (sampled_out.disposition, sampled_out.reason) == ("quarantine", "sampled_out")
    assert (local.disposition, local.reason) == ("quarantine", "local_policy")
    assert local.auth_result == "dmarc=fail (p=reject dis=quarantine) header.from=sender.example"


async def test_an_aligned_identifier_lost_to_dns_is_temperror_not_fail(dns: StubResolver) -> None:
    ev = await judge(dns, mail(spf="temperror"), sample=0.1)
    assert (ev.result, ev.disposition, ev.judged) == ("temperror", "none", False)
    assert ev.auth_result == "dmarc=temperror header.from=sender.example"


async def test_no_record_no_domain_and_a_dead_resolver(dns: StubResolver) -> None:
    no_record = await judge(dns, mail(from_="someone@other.example"))
    several = await judge(dns, mail(from_="a@sender.example, b@other.example"))
    dns.timeouts.add("_dmarc.sender.example")
    dead = await judge(dns, mail())

    assert (no_record.result, no_record.record) == ("none", None)
    assert no_record.auth_result == "dmarc=none header.from=other.example"
    assert several.domain is None
    assert several.auth_result == "dmarc=none (no single From domain)"
    assert dead.result == "temperror" and "timeout" in dead.error
    assert dead.auth_result == "dmarc=temperror header.from=sender.example"


async def test_without_the_spf_plugin_the_envelope_domain_is_what_was_not_checked(
    dns: StubResolver
) -> None:
    t = mail()
    t.spf = None
    ev = await judge(dns, t, sample=0.1)
    assert ev.spf == SpfCheck("none", "", "sender.example")
    assert ev.result == "fail"
