"""A real browser proves it: Debian's chromium, driven by Playwright, reads the real `dagster dev` UI.

The project is trained in-process first (cheap), then one `dagster dev` is started on the same Dagster
home, so the UI shows those runs. The screenshots land in `docs/screenshots/` for the README.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml_assets.definitions import defs
from ml_assets_tests.conftest import REPO, Project
from ml_assets_tests.e2e.browser import (
    CHROMIUM,
    NO_CHROMIUM,
    VIEWPORT,
    chromium_page,
    mark_community_popup_seen,
    screenshot,
    shots_folder,
)
from ml_assets_tests.e2e.harness import dagster_dev
from ml_assets_tests.graph import failed_checks, ingest, train

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (it is in the dev dependency group)"
)
SENSORS = ("landing_sensor", "retrain_sensor", "alert_on_run_failure")


def test_the_ui_shows_the_graph_the_evaluation_plots_and_the_running_sensors(project: Project, tmp_path: Path):
    # The repository's own params (not the fixture's smaller models): the in-process runs record the
    # code versions of the definitions this session imported, which the repo's params shaped; with the
    # same params in the project, the code server computes the same versions and nothing shows as unsynced.
    shutil.copy(REPO / "params.yaml", project.root / "params.yaml")
    landed = project.land(batches=3, rows=400)
    results = ingest(project, *[path.name for path in landed])
    assert all(r.success for r in results.values()), {n: failed_checks(r) for n, r in results.items()}
    result = train(project)
    assert result.success, failed_checks(result)
    # The landing sensor's cursor lives in the daemon's ticks, which these in-process runs did not write:
    # left in place, the files would be validated again (and then retrained on) while the browser reads.
    for path in landed:
        path.unlink()

    graph = defs.resolve_asset_graph()
    asset_keys = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    groups = sorted({graph.get(key).group_name for key in graph.get_all_asset_keys()})
    checks: dict[str, list[str]] = {}
    for assets_def in defs.asset_checks or []:
        for spec in assets_def.check_specs:
            checks.setdefault(spec.asset_key.to_user_string(), []).append(spec.name)

    home = Path(project.instance.root_directory)  # the webserver reads what the in-process runs wrote
    shots_folder().mkdir(parents=True, exist_ok=True)
    expect = sync_api.expect
    with dagster_dev(project, home) as dev:
        mark_community_popup_seen(dev.url)
        tail = lambda: dev.log.read_text()[-3000:]  # noqa: E731 - the server's side of a failure
        with chromium_page(sync_api, failure_png=tmp_path / "failure.png", context=tail) as page:
            # 1. the catalog lists every asset, and each asset's Checks tab every check
            page.goto(f"{dev.url}/assets")
            page.set_viewport_size({"width": VIEWPORT["width"], "height": 6000})  # the list renders only rows in view
            for key in asset_keys:  # long names are shown middle-truncated ("candidat…_boosting"): find the link
                link = page.locator(f'a[href="/assets/{key}"]').first
                expect(link).to_be_visible()
                expect(link).to_contain_text(key)
            page.set_viewport_size(VIEWPORT)
            for key, names in sorted(checks.items()):
                page.goto(f"{dev.url}/assets/{key}?view=checks")
                expect(page.get_by_text(f"Checks ({len(names)})")).to_be_visible()
                for name in names:  # long names are shown middle-truncated; the full name is in the row's DOM
                    expect(page.get_by_text(name, exact=True).first).to_be_attached()

            # 2. model_evaluation: its metadata, with the confusion matrix as a PNG rendered from markdown
            page.goto(f"{dev.url}/assets/model_evaluation")
            for entry in ("test_roc_auc", "confusion_matrix", "roc_pr_curves"):
                expect(page.get_by_text(entry, exact=True).first).to_be_visible()
            page.get_by_text("Metadata", exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            screenshot(page, "model_evaluation.png")
            row = page.locator("tr").filter(has=page.get_by_text("confusion_matrix", exact=True))
            row.get_by_text("Show Markdown").click()
            image = page.get_by_role("dialog").locator('img[src^="data:image/png;base64,"]')
            expect(image).to_be_visible()
            assert image.evaluate("img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100")
            screenshot(page, "confusion_matrix.png")
            page.keyboard.press("Escape")

            # 3. the sensors are running: each one's row has its on/off switch checked
            page.goto(f"{dev.url}/automation")
            for sensor in SENSORS:
                # the innermost element holding the name and a checkbox is the row: [select] name ... [switch]
                row = page.locator("div").filter(has=page.get_by_text(sensor, exact=True))
                row = row.filter(has=page.get_by_role("checkbox")).last
                expect(row.get_by_role("checkbox").last).to_be_checked()
            screenshot(page, "sensors.png")

            # 4. the global lineage, every group expanded (Alt+E), with the navigation hidden for room
            page.goto(f"{dev.url}/asset-groups")
            for group in groups:
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            page.get_by_text("Hide navigation").click()
            page.get_by_role("button", name="panel_show_right").click()  # hides the groups' tree beside the graph
            page.keyboard.press("Alt+e")
            expect(page.get_by_text("model_evaluation", exact=True)).to_be_visible()  # a node inside its group
            page.wait_for_timeout(1500)  # the zoom-to-fit animation
            screenshot(page, "asset_lineage.png")
