"""A real headless browser for page tests: Debian's Chromium driven by Selenium.

The ``browser`` fixture (registered in ``tests/conftest.py``: take a ``browser`` argument). It yields a
headless Chrome ``WebDriver`` whose console log is readable with ``driver.get_log("browser")``,
and skips the test, saying why, when Selenium, Chromium or chromedriver are missing. The driver
path is given explicitly, so Selenium never downloads a browser or a driver.

Install: ``apt-get install -y chromium chromium-driver`` and ``pip install selenium`` (in the
``test`` extra). ``SOUNDNET_CHROMIUM`` and ``SOUNDNET_CHROMEDRIVER`` override the paths.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterator

import pytest

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _find(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    return next((p for p in map(shutil.which, names) if p), None)


def _skip(reason: str) -> None:
    print(f"browser test skipped: {reason}")  # shown with -rs and in CI logs
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Any) -> Iterator[Any]:
    """A headless Chromium WebDriver (console logging on), closed after the test."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip("selenium is not installed (pip install selenium)")
    binary = _find("SOUNDNET_CHROMIUM", _BROWSERS)
    driver_path = _find("SOUNDNET_CHROMEDRIVER", ("chromedriver",))
    if binary is None:
        _skip("no Chromium (apt-get install chromium)")
    if driver_path is None:
        _skip("no chromedriver (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--autoplay-policy=no-user-gesture-required",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as e:  # a broken install: say what, do not fail the suite
        _skip(f"Chromium does not start: {str(e).splitlines()[0]}")
    try:
        yield driver
    finally:
        driver.quit()
