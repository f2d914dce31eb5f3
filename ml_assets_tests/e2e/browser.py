"""Debian's chromium, driven by Playwright, for the e2e tests that read the real Dagster UI.

Playwright itself is imported by the tests that use it (`pytest.importorskip`), so importing this module
costs nothing where there is no browser.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
NO_CHROMIUM = "no chromium on PATH or at /usr/bin/chromium (CI: apt-get install chromium)"
SHOTS_VARIABLE = "ML_ASSETS_SCREENSHOTS"

# Root, offline, no GPU: no sandbox, and none of the background calls to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 60_000  # per action: generous for 2 busy cores, but bounded


def shots_folder() -> Path:
    """Where screenshots go: `$ML_ASSETS_SCREENSHOTS` (`make screenshots` sets docs/screenshots for the README),
    or else a folder under the system's temp dir, so a plain `make test` leaves the committed images alone.
    """
    folder = os.environ.get(SHOTS_VARIABLE)
    return Path(folder) if folder else Path(tempfile.gettempdir()) / "ml_assets_screenshots"


@contextlib.contextmanager
def chromium_page(
    sync_api: Any, *, failure_png: Path, viewport: dict[str, int] = VIEWPORT, context: Callable[[], str] = str
) -> Iterator[Any]:
    """A Playwright page in Debian's chromium, with `expect` and every action bounded by `TIMEOUT_MS`.

    When the block fails, the page as it was goes to `failure_png` and its path is printed, with
    `context()` (say, the tail of the server's log); the browser is closed either way.
    """
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=viewport)
        page.set_default_timeout(TIMEOUT_MS)
        sync_api.expect.set_options(timeout=TIMEOUT_MS)
        try:
            yield page
        except Exception:
            page.screenshot(path=failure_png, full_page=True)
            print(f"screenshot of the failure: {failure_png}\n{context()}")
            raise
        finally:
            browser.close()


def mark_community_popup_seen(url: str) -> None:
    """The UI asks for an e-mail address on localhost; this is the mutation its "Skip" button sends."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.load(response) == {"data": {"setNuxSeen": True}}


def screenshot(page: Any, name: str) -> None:
    """A full-page PNG for the README, with CSS transitions (a dialog fading in) run to their end."""
    page.screenshot(path=shots_folder() / name, full_page=True, animations="disabled")


def stack(page: Any, name: str, shots: list[tuple[bytes, float]]) -> None:
    """Real screenshots one above the other in one PNG for the README, each `(png, left)` indented by `left` px.

    For what one page of the UI does not show at once (an event beside a plot of every event). Only the
    white ground and a rule between the pictures are added; `page` is left showing the stack.
    """
    images = "".join(
        f'<div style="padding-left:{left}px;{"border-top:1px solid #d6dae0;padding-top:16px" if i else ""}">'
        f'<img style="display:block" src="data:image/png;base64,{base64.b64encode(png).decode()}"></div>'
        for i, (png, left) in enumerate(shots)
    )
    page.set_content(f'<body style="margin:0;background:#fff"><div id="stack" style="display:inline-block">{images}')
    page.locator("#stack").screenshot(path=shots_folder() / name, animations="disabled")
