"""The conformance suite for every built-in driver + simulator pair (Magstim 200², BiStim², Rapid²,
MagPro, DuoMAG): the exchange checks and the stateful safety machine from ``tmsctl.lab.conformance``."""

from __future__ import annotations

import pytest

from tmsctl.lab.conformance import BUILTIN_TARGETS, EXCHANGE_CHECKS, ConformanceTarget, run_stateful

TARGETS = {target.name: target for target in BUILTIN_TARGETS}


@pytest.mark.parametrize("check", sorted(EXCHANGE_CHECKS))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_exchange_check(target: str, check: str) -> None:
    EXCHANGE_CHECKS[check](TARGETS[target])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_safety_machine(target: str) -> None:
    run_stateful(TARGETS[target])


def test_every_builtin_driver_family_has_a_target() -> None:
    assert set(TARGETS) == {
        "magstim-200",
        "magstim-bistim",
        "magstim-rapid2",
        "magventure-magpro",
        "deymed-duomag",
    }


def test_a_target_names_its_driver_in_the_url() -> None:
    target = ConformanceTarget("magpro-r30", driver="magventure-magpro-r30")
    assert target.url("x") == "magventure-magpro-r30+sim://x"
    assert target.name == "magventure-magpro-r30@magpro-r30"


def test_every_simulator_profile_speaks_to_a_registered_driver_and_every_family_is_covered() -> None:
    from tmsctl.core.registry import drivers
    from tmsctl.simulators import registry as sims

    registered = drivers()
    profiles = sims.profiles()
    assert {profile.driver for profile in profiles.values()} <= set(registered)
    covered = {profiles[target.profile].driver for target in BUILTIN_TARGETS}
    for name in registered:
        assert any(name == driver or name.startswith(driver + "-") for driver in covered), (
            f"driver {name} has no conformance target"
        )
