"""Debian's headless chromium through Selenium, for the browser tests: both paths given
explicitly and ``SE_OFFLINE`` set, so nothing is ever downloaded. If chromium cannot start the
test fails (never skips). Selenium blocks: call it through ``in_browser`` (a thread), so the
gateway and the pages keep serving in the test's event loop."""
from __future__ import annotations

import asyncio
import os
import pathlib

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = pathlib.Path(__file__).resolve().parent.parent
# The docs' screenshots are refreshed with C2C_SCREENSHOTS=docs (then commit docs/images);
# otherwise they go to var/screenshots/, so a test run leaves the work tree clean.
IMAGES = ROOT / ("docs/images" if os.environ.get("C2C_SCREENSHOTS") == "docs" else "var/screenshots")


def start_chromium(width: int = 1280, height: int = 860):
    os.environ.setdefault("SE_OFFLINE", "true")     # Selenium Manager: never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--window-size={width},{height}",
                "--lang=en-US", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as exc:    # noqa: BLE001 - any failure to start is the test environment's
        pytest.fail(f"chromium did not start ({CHROMIUM}, {CHROMEDRIVER}; scripts/setup installs "
                    f"Debian's chromium and chromium-driver): {exc}", pytrace=False)
    driver.set_page_load_timeout(20)
    return driver


@pytest.fixture(scope="module")
def chromium():
    """One headless chromium for the module."""
    driver = start_chromium()
    yield driver
    driver.quit()


async def in_browser(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


def wait_until(driver, condition, timeout: float = 15.0, message: str = ""):
    """Selenium's own wait (it polls the page; the test waits on what the page shows)."""
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(condition, message)


def screenshot(driver, name: str) -> pathlib.Path:
    """A PNG of the page: docs/images/NAME.png with C2C_SCREENSHOTS=docs, else var/screenshots/."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
