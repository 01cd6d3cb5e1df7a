"""The session report as a browser lays it out: nothing drawn outside its chart, nothing wider than the
page, faults drawn where they happened. Runs in headless Chromium when it is installed (Debian:
``apt-get install -y chromium``); the geometry checks on the SVG itself run everywhere."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_report import PROTOCOL, run_session

from tmsctl.core.clock import VirtualClock
from tmsctl.lab.report import Chart, render_session_html, session_charts, session_report
from tmsctl.records import Records

# Measured by the browser after layout: every element of every chart inside its chart's box, the page
# no wider than the window. The result is written into the page, which --dump-dom prints.
LAYOUT_CHECK = """
<script>
window.addEventListener("load", () => {
  const outside = [];
  document.querySelectorAll("svg").forEach((svg, n) => {
    const box = svg.getBoundingClientRect();
    svg.querySelectorAll("text, rect, line, circle, polyline").forEach((el) => {
      const r = el.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {
        outside.push({chart: svg.getAttribute("aria-label"), tag: el.tagName, text: (el.textContent || "").slice(0, 40),
                      left: r.left - box.left, right: box.right - r.right, top: r.top - box.top, bottom: box.bottom - r.bottom});
      }
    });
  });
  const result = {outside, page_width: document.documentElement.scrollWidth, window_width: window.innerWidth,
                  charts: document.querySelectorAll("svg").length};
  const pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture
def protocol(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(PROTOCOL)
    return path


def _faulted_then_resumed(tmp_path: Path, protocol: Path):
    """A session faulted in its first run, resumed, and faulted again in its second."""
    records = Records(tmp_path / "r.db", clock=VirtualClock(wall_start=datetime(2026, 3, 2, 9, tzinfo=UTC)))
    first = run_session(records, protocol, tmp_path, faults="coil_unplugged@29s")
    clock = records._clock  # the store's virtual calendar moves on before the resume
    clock.advance_to(clock.now() + 600)
    from tmsctl.lab import api
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.device import parse_fault_plan

    resume_clock = VirtualClock(wall_start=clock.wall())
    name = f"browser-sim-{id(resume_clock)}"
    sims.create("rapid2", clock=resume_clock, faults=parse_fault_plan("coil_unplugged@17s"), name=name)
    try:
        with api.open(f"sim://{name}", clock=resume_clock, db=records) as stim:
            stim.run(protocol, subject="S301", resume=first.session_id, allow_unapproved="test",
                     log_dir=tmp_path / "logs")
    finally:
        sims.remove(name)
    report = session_report(records, first.session_id, audit_log=tmp_path / "logs" / f"{first.session_id}.jsonl")
    records.close()
    return report


def test_faults_are_drawn_at_their_time_on_the_session_axis_and_bars_end_inside_it(tmp_path, protocol) -> None:
    report = _faulted_then_resumed(tmp_path, protocol)
    cut = [t for t in report.trains if t.state != "completed"]
    placed = [f for f in report.faults if f.offset_s is not None]
    assert len(cut) == 2 and len(placed) >= 2
    # Each fault sits on the train it cut short, in either run: the second run's fault is not placed
    # at its offset within its own run (which would put it among the first run's trains).
    for train, fault in ((cut[0], placed[0]), (cut[-1], placed[-1])):
        assert train.onset_s <= fault.offset_s <= train.onset_s + 3.0, (train, fault)
    onsets = [t.onset_s for t in report.trains]
    assert onsets == sorted(onsets)  # one time axis over both runs
    svg = session_charts(report)
    chart = Chart("", "", 1.0, 0, 1)
    right_edge = chart.width - chart.right
    for rect in re.finditer(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg["pulses"]):
        assert float(rect[1]) + float(rect[2]) <= right_edge + 0.05, "a bar runs past the axis"
    markers = [float(m) for m in re.findall(r'<line x1="([\d.]+)" x2="\1" y1="30"', svg["faults"])]
    ticks = sorted((float(v), float(x)) for x, v in re.findall(
        r'<text x="([\d.]+)" y="\d+" text-anchor="middle" font-size="11" fill="#263238">([\d.]+)</text>', svg["faults"]))
    (t0, x0), (t1, x1) = ticks[:2]
    drawn = [t0 + (x - x0) * (t1 - t0) / (x1 - x0) for x in markers]
    assert drawn == pytest.approx([f.offset_s / 60 for f in placed], abs=0.01)  # minutes, to a pixel


def test_the_report_lays_out_in_a_real_browser_with_nothing_clipped(tmp_path, protocol, chromium) -> None:
    report = _faulted_then_resumed(tmp_path, protocol)
    page = render_session_html(report).replace("</body>", LAYOUT_CHECK + "</body>")
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,2000",
         "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', done.stdout)
    assert found, done.stderr[-2000:]
    layout = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert layout["charts"] == 4
    assert layout["outside"] == []
    assert layout["page_width"] <= layout["window_width"]
