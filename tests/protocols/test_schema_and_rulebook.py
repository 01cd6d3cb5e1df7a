"""The checked-in JSON Schema stays in step with the models; the rulebook data is what safety.md says."""

from __future__ import annotations

import inspect
import json

import pytest
from protocols_helpers import rtms
from ruamel.yaml import YAML

from tmsctl.core.errors import InvalidArgument
from tmsctl.protocols import SitePolicy, check, list_library, rulebook
from tmsctl.protocols.schema_file import REGENERATE, generate_schema, render_schema, schema_path


def test_checked_in_schema_matches_the_models() -> None:
    on_disk = schema_path().read_text(encoding="utf-8")
    assert on_disk == render_schema(), (
        f"protocols/schema/protocol.schema.json is out of date; run: {REGENERATE}"
    )


def test_library_files_validate_against_the_published_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(generate_schema())
    yaml = YAML(typ="safe", pure=True)
    for entry in list_library():
        errors = list(validator.iter_errors(yaml.load(entry.path.read_text(encoding="utf-8"))))
        assert errors == [], (entry.id, [error.message for error in errors])


def test_schema_refuses_unknown_keys_everywhere() -> None:
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    objects = list(walk(json.loads(render_schema())))
    assert objects and all(node.get("additionalProperties") is False for node in objects)


def test_wassermann_cells_match_safety_md() -> None:
    book = rulebook()
    cells = book.wassermann_cells
    assert len(cells) == 5 * 13
    assert (cells[(10, 120)].limit_s, cells[(10, 120)].open_ended) == (4.2, False)
    assert (cells[(1, 100)].limit_s, cells[(1, 100)].open_ended) == (1800, True)
    assert (cells[(5, 130)].limit_s, cells[(5, 130)].open_ended) == (10, True)
    assert cells[(10, 150)].limit_s < cells[(10, 160)].limit_s  # not monotone, kept as published
    assert cells[(5, 200)].limit_s < cells[(5, 210)].limit_s
    assert book.wassermann.status == "R"


def test_rule_data_carries_sources_and_status() -> None:
    book = rulebook()
    for family in ("H1", "H4", "H7"):
        rules = book.family(family)
        assert rules.table == "envelope" and rules.source and rules.status
    assert book.family("figure8").table == "wassermann"
    assert book.family("double_cone").table == "none"
    assert book.chen.min_inter_train_interval_s == 5 and book.chen.applies_above_pct_mt == 100
    assert (book.site.max_pulses_per_day, book.site.max_sessions_per_day) == (18000, 10)
    assert book.site.min_minutes_between_session_starts == 50


def test_rulebook_version_names_the_declared_version_and_the_data() -> None:
    version = rulebook().version
    declared, digest = version.split("+")
    assert declared == "1" and len(digest) == 12
    assert check(rtms(10, 40)).rulebook_version == version


def test_rules_cannot_be_switched_off_through_the_api() -> None:
    parameters = set(inspect.signature(check).parameters)
    assert not {"rulebook", "rules", "disable", "skip_rules"} & parameters


def test_a_site_policy_may_only_tighten() -> None:
    with pytest.raises(InvalidArgument, match="only tighten"):
        check(rtms(10, 40), policy=SitePolicy(max_pulses_per_day=50000))
    with pytest.raises(InvalidArgument, match="only tighten"):
        check(rtms(10, 40), policy=SitePolicy(min_minutes_between_session_starts=10))
    tight = check(rtms(10, 40, trains=75), policy=SitePolicy(max_pulses_per_day=2000))
    assert tight.status == "needs_override"
    assert {f.rule_id for f in tight.needs_override} == {"site.day-pulses"}


def test_overrides_lift_warnings_with_a_reason_and_never_refusals() -> None:
    from protocols_helpers import RAPID2, mt

    warned = rtms(10, 60, pct=110)
    assert check(warned).status == "needs_override"
    lifted = check(warned, overrides={"wassermann.train-duration": "approved study protocol 2024-17"})
    assert lifted.status == "allowed"
    assert dict(lifted.overrides_used) == {"wassermann.train-duration": "approved study protocol 2024-17"}
    empty = check(warned, overrides={"wassermann.train-duration": "   "})
    assert empty.status == "needs_override" and "wassermann.train-duration" in empty.overrides_rejected
    unused = check(warned, overrides={"chen.inter-train-interval": "not needed"})
    assert unused.overrides_unused == ("chen.inter-train-interval",)
    refused = check(
        rtms(10, 40), device=RAPID2, thresholds=[mt(85)], overrides={"device.intensity": "please"}
    )
    assert refused.status == "refused"
    assert refused.overrides_rejected["device.intensity"] == "a hard limit cannot be overridden"


def test_require_complete_refuses_a_plan() -> None:
    from protocols_helpers import RAPID2, mt

    plan = check(rtms(10, 40), require_complete=True)
    assert plan.status == "refused"
    assert {f.rule_id for f in plan.refusals} == {"context.device", "context.intensity"}
    session = check(rtms(10, 40), device=RAPID2, thresholds=[mt(55)], require_complete=True)
    assert session.status == "allowed" and session.complete
    absolute = check(rtms(10, 40, pct=60, reference="MSO"), device=RAPID2, require_complete=True)
    assert {f.rule_id for f in absolute.needs_override} == {"rules.need-mt"}
