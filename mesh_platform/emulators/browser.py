"""A real browser for UI tests: Debian's Chromium driven by Playwright.

Playwright's own browser download cannot work here, so it drives the system binary
(`executable_path`), headless, with a fresh user-data-dir and everything that would reach the
network on its own turned off.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._process import SideEnvironmentMissing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable(path: str | Path = CHROMIUM) -> Path:
    path = Path(path)
    if not path.exists():
        raise SideEnvironmentMissing(
            f"{path} is missing: run `make setup` as root (it runs `apt-get install -y chromium`), "
            "or install Debian's chromium package"
        )
    return path


@contextmanager
def chromium(headless: bool = True, executable: str | Path = CHROMIUM, **kwargs) -> Iterator:
    """A Playwright BrowserContext of the system Chromium with a fresh profile; closed (browser
    and Playwright driver processes gone, profile removed) on leaving the block.

    Extra keyword arguments go to `launch_persistent_context` (viewport, base_url, ...).
    """
    from playwright.sync_api import sync_playwright

    exe = chromium_executable(executable)
    with tempfile.TemporaryDirectory(prefix="mesh-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(exe),
            headless=headless,
            args=[*CHROMIUM_ARGS, *kwargs.pop("args", [])],
            **kwargs,
        )
        try:
            yield context
        finally:
            context.close()
