"""appliance.limits: the limits derived from settings, at their edges."""

from __future__ import annotations

import pytest

from appliance import limits
from appliance.config import parse
from appliance.services import postfix, webmail
from appliance.services import smtpd as render_smtpd
from appliance.smtpd import storage

MB = 1024 * 1024


@pytest.mark.parametrize(("size", "limit"), [
    (1000, 1000 + 65536),  # the schema's smallest max_message_size
    (15_000_000, 15_065_536),  # SME's MaxMessageSize
    (2_000_000_000, 2_000_065_536),  # the schema's largest
])
def test_postfix_takes_what_the_daemons_accept_plus_our_headers(size: int, limit: int) -> None:
    assert limits.postfix_message_size_limit(size) == limit


@pytest.mark.parametrize(("limit", "free"), [(0, 0), (1, 1), (2, 3), (10_000_000, 15_000_000),
                                             (15_065_536, 22_598_304)])
def test_min_free_is_one_and_a_half_times_the_limit_rounded_down(limit: int, free: int) -> None:
    assert limits.min_free(limit) == free
    assert storage.min_free(limit) == free  # the daemons' MAIL check uses the same rule


def test_queue_minfree_follows_the_message_size() -> None:
    assert limits.queue_minfree(15_000_000) == int(1.5 * (15_000_000 + 65536))
    config = parse("[smtpd]\nmax_message_size = 1000\n")
    assert postfix.queue_minfree(config) == limits.queue_minfree(1000) == 99_804
    assert render_smtpd.settings(config).queue_min_free == 99_804


@pytest.mark.parametrize(("mtu", "mss"), [(0, 0), (576, 536), (1492, 1452), (1500, 1460),
                                          (9000, 8960)])
def test_mss_is_the_mtu_less_ip_and_tcp_headers_and_0_without_an_mtu(mtu: int,
                                                                     mss: int) -> None:
    assert limits.mss(mtu) == mss


@pytest.mark.parametrize(("wanted", "size", "upload"), [
    (10, 15_000_000, 10),  # the defaults: 10 MB fits 15 MB once base64-encoded
    (20, 15_000_000, 10),  # 15 MB * 3/4 = 10.7 MB: lowered to 10
    (1, 1000, 1),  # a tiny mail limit still lets 1 MB through (never 0)
    (500, 2_000_000_000, 500),
    (14, 4 * 14 * MB // 3 + 3, 14),  # exactly fits
    (14, 4 * 14 * MB // 3 - 1, 13),  # one byte short
])
def test_upload_limit_fits_the_mail_size_once_encoded(wanted: int, size: int,
                                                      upload: int) -> None:
    assert limits.upload_max_mb(wanted, size) == upload
    assert limits.post_max_mb(wanted, size) == upload + 2
    assert limits.request_max_mb(wanted, size) == upload + 3


def test_webmail_renders_the_same_upload_limits() -> None:
    config = parse("[webmail]\nupload_max_mb = 20\n")
    assert webmail.upload_max_mb(config) == 10
    assert "client_max_body_size 13m;" in webmail.nginx_conf(config)
    assert "php_admin_value[post_max_size] = 12M" in webmail.php_fpm_conf(config)
