"""loadcheck: 451 while this container's load-equivalent is above max_load.

The cgroup folder is a tmp dir with the kernel's file formats; the host's load average
(os.getloadavg) is what the plugin must NOT go by while PSI is there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.smtpd import replies
from appliance.smtpd.plugins.loadcheck import cpu_pressure, usable_cpus
from appliance.smtpd.results import Verdict

BUSY_HOST = (8.3, 8.0, 7.5)  # the trial's host: load 8.3 on 2 cores


def _cgroup(folder: Path, some_avg10: float | None, cpu_max: str = "max 100000") -> Path:
    if some_avg10 is not None:
        (folder / "cpu.pressure").write_text(
            f"some avg10={some_avg10:.2f} avg60=1.00 avg300=0.50 total=123456\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    (folder / "cpu.max").write_text(cpu_max + "\n")
    return folder


def _plugin(make_plugin, cgroup: Path, max_load: int = 7, host=BUSY_HOST):
    plugin = make_plugin("loadcheck", max_load=max_load)
    plugin.cgroup = cgroup
    plugin.getloadavg = lambda: host
    return plugin


async def test_busy_host_does_not_defer_a_calm_container(make_plugin, conn, tmp_path):
    plugin = _plugin(make_plugin, _cgroup(tmp_path, some_avg10=2.0, cpu_max="200000 100000"))
    assert await plugin.hook_connect(conn()) is None


async def test_container_cpu_pressure_above_max_load_defers(make_plugin, conn, tmp_path):
    # 2 CPUs: p = 0.8 is 2 * 0.8 / 0.2 = 8 > 7; p = 0.75 is 6
    plugin = _plugin(make_plugin, _cgroup(tmp_path, some_avg10=80.0, cpu_max="200000 100000"),
                     host=(0.1, 0.1, 0.1))
    result = await plugin.hook_connect(conn())
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply == replies.SERVER_BUSY and result.reply.startswith("451 4.3.2 ")

    _cgroup(tmp_path, some_avg10=75.0, cpu_max="200000 100000")
    assert await plugin.hook_connect(conn()) is None


async def test_load_equivalent_scales_with_the_cpus_the_container_may_use(
        make_plugin, tmp_path):
    plugin = _plugin(make_plugin, _cgroup(tmp_path, some_avg10=50.0, cpu_max="400000 100000"))
    assert plugin.load()[0] == pytest.approx(4.0)  # waiting half the time on 4 CPUs
    _cgroup(tmp_path, some_avg10=50.0, cpu_max="50000 100000")
    assert plugin.load()[0] == pytest.approx(0.5)


async def test_trusted_clients_are_served_under_load(make_plugin, conn, tmp_path):
    plugin = _plugin(make_plugin, _cgroup(tmp_path, some_avg10=99.0), max_load=1)
    assert await plugin.hook_connect(conn(whitelisted=True)) is None
    assert await plugin.hook_connect(conn(relay_client=True)) is None


async def test_without_psi_the_host_load_is_scaled_to_our_cpus(make_plugin, conn, tmp_path,
                                                               monkeypatch):
    import appliance.smtpd.plugins.loadcheck as loadcheck

    monkeypatch.setattr(loadcheck.os, "cpu_count", lambda: 8)
    plugin = _plugin(make_plugin, _cgroup(tmp_path, some_avg10=None, cpu_max="200000 100000"),
                     host=(30.0, 0.0, 0.0))
    assert plugin.load()[0] == pytest.approx(7.5)  # 30 on 8 host CPUs, 2 of them ours
    assert (await plugin.hook_connect(conn())).verdict is Verdict.DENYSOFT
    plugin.getloadavg = lambda: (20.0, 0.0, 0.0)  # 5 for our share
    assert await plugin.hook_connect(conn()) is None


async def test_no_figure_at_all_means_no_deferral(make_plugin, conn, tmp_path):
    plugin = _plugin(make_plugin, tmp_path / "absent", max_load=1)

    def unavailable():
        raise OSError("no load average")

    plugin.getloadavg = unavailable
    assert await plugin.hook_connect(conn()) is None


def test_pressure_file_formats(tmp_path):
    assert cpu_pressure(tmp_path) is None  # cgroup v1: no file
    (tmp_path / "cpu.pressure").write_text("some avg10=12.50 avg60=0 avg300=0 total=1\n")
    assert cpu_pressure(tmp_path) == pytest.approx(0.125)
    (tmp_path / "cpu.pressure").write_text("some avg10=100.00 avg60=0 avg300=0 total=1\n")
    assert cpu_pressure(tmp_path) < 1  # never an infinite load
    (tmp_path / "cpu.pressure").write_text("garbage\n")
    assert cpu_pressure(tmp_path) is None


def test_usable_cpus_from_quota_else_affinity(tmp_path):
    import os

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert usable_cpus(tmp_path) == pytest.approx(1.5)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_usable_cpus_from_a_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("250000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(tmp_path) == pytest.approx(2.5)
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert usable_cpus(tmp_path) >= 1
