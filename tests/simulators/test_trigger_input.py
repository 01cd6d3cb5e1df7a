"""The simulated Rapid²'s trigger input (reached in-process through the port's RTS line): it fires the
armed, charged unit, repeats at the unit's rated rate for the output, and protects itself."""

from __future__ import annotations

import socket

import pytest

from tmsctl.lab.testing import attached_simulator
from tmsctl.simulators.magstim import energy_j, rapid2_max_frequency_hz


def _edge_at(driver, clock, t: float) -> None:
    clock.sleep_until(t)
    driver.trigger_via_rts(pulse_width_s=0.001)


def test_edges_at_the_rated_rate_fire_and_a_faster_one_is_ignored_and_logged() -> None:
    with attached_simulator("rapid2", "sim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)  # rated 37 Hz at 40 %: one pulse every 27.0 ms
        driver.arm()
        driver.wait_ready()
        start = clock.now()
        period = 1 / rapid2_max_frequency_hz(40)
        for k in range(3):
            _edge_at(driver, clock, start + k * period)
        _edge_at(driver, clock, start + 2 * period + 0.010)  # 10 ms after the last: too soon
        device = instance.device
        assert [p.t - start for p in device.truth()] == pytest.approx([0, period, 2 * period], abs=1e-9)
        assert len(device.interlocks) == 1 and "RTS trigger: not ready" in device.interlocks[0][1]


def test_an_edge_on_a_disarmed_unit_fires_nothing() -> None:
    with attached_simulator("rapid2", "sim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        _edge_at(driver, clock, clock.now() + 0.01)
        assert instance.device.truth() == ()
        assert "not ready" in instance.device.interlocks[-1][1]


def test_the_trigger_input_keeps_to_the_energy_budget() -> None:
    # 100 % at the rated 15 Hz puts out 3.8 kJ/s against 1.05 kJ/s shed: the 63 kJ budget fills in
    # about 23 s, and the unit refuses the edge that would overfill it.
    with attached_simulator("rapid2", "sim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(100)
        driver.arm()
        driver.wait_ready()
        start = clock.now()
        period = 1 / rapid2_max_frequency_hz(100)
        k = 0
        while not instance.device.interlocks and k < 1000:
            _edge_at(driver, clock, start + k * period)
            if k % 5 == 4:
                driver.keepalive()  # an armed unit must hear from the host
            k += 1
        device = instance.device
        assert "energy budget" in device.interlocks[0][1]
        fired = device.pulse_count
        assert 300 < fired < 400
        assert fired * energy_j(100) - (fired - 1) * period * 1050 <= 63_000 + energy_j(100)


@pytest.mark.parametrize("attachment", ["pty", "tcp"])
def test_a_served_unit_takes_its_trigger_input_through_the_side_channel(attachment: str) -> None:
    # A pty carries no RTS and a socket no modem line at all: a trigger box outside the host drives
    # the served unit's input through its trigger port instead (docs/simulators.md).
    from tmsctl.core.clock import SystemClock
    from tmsctl.core.registry import open_driver
    from tmsctl.lab.testing import serving
    from tmsctl.simulators import registry as sims

    clock = SystemClock()
    instance = sims.create("rapid2", clock=clock)
    ports: list[str] = []
    with serving(instance.device, attachment, clock, trigger_port=ports.append) as address:
        url = f"magstim-rapid2://{address}" if attachment == "pty" else f"magstim-rapid2+socket://{address}"
        driver = open_driver(url, clock, driver_options=dict(instance.profile.driver_options))
        try:
            driver.connect()
            driver.set_intensity(30)
            driver.arm()
            driver.wait_ready()
            host, _, port = ports[0].rpartition(":")
            with socket.create_connection((host, int(port)), timeout=2) as box:
                box.sendall(b"1")
                box.sendall(b"0")
                deadline = clock.now() + 2.0
                while instance.device.pulse_count == 0 and clock.now() < deadline:
                    driver.keepalive()
                    clock.sleep(0.05)
                status = driver.status()
            with instance.lock:
                truth = instance.device.truth()
            assert [(p.source, p.intensity_pct) for p in truth] == [("ttl", 30)]
            assert status.armed
        finally:
            driver.close()
