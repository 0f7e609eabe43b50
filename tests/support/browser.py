"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium for the
dashboard's browser tests.

Selenium's calls block, so each runs on a reactor thread-pool thread (``Browser.do``),
one at a time: the reactor stays free to run the members and etcdctl meanwhile. The
browser gets a fresh profile directory and the flags this machine needs, and is quit
in the test's cleanup.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

T = TypeVar("T")

#: Flags for headless Chromium here (no GPU, no sandbox as root, nothing fetched from outside).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,860",
    "--force-device-scale-factor=1",
)

#: Where the test run saves its screenshots: the repository's docs/ (shown in the README),
#: or ``ETCD_TWISTED_SCREENSHOT_DIR``.
DOCS_DIR = os.environ.get("ETCD_TWISTED_SCREENSHOT_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs"
)


def chromium() -> tuple[str, str] | None:
    """The paths of Chromium and its WebDriver, or None if either is not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver"
        if os.access("/usr/lib/chromium/chromedriver", os.X_OK)
        else None
    )
    return (browser, driver) if browser and driver else None


def missing_reason() -> str | None:
    """Why the browser tests must be skipped, or None when they can run."""
    if chromium() is None:
        return "Chromium and chromium-driver are not installed (bin/test installs them as root)"
    return None


class Browser:
    """One headless Chromium session."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    @classmethod
    async def open(cls, case: Any, profile_dir: str, insecure_tls: bool = False) -> Browser:
        """Start Chromium with a fresh profile in ``profile_dir``; ``case`` quits it in cleanup.

        ``insecure_tls`` accepts the self-signed certificates of a test cluster.
        """
        browser_path, driver_path = chromium()  # type: ignore[misc]
        os.makedirs(profile_dir, exist_ok=True)

        def start() -> Any:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service

            options = webdriver.ChromeOptions()
            options.binary_location = browser_path
            for flag in CHROMIUM_FLAGS:
                options.add_argument(flag)
            options.add_argument(f"--user-data-dir={profile_dir}")
            options.accept_insecure_certs = insecure_tls
            options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
            return webdriver.Chrome(service=Service(driver_path), options=options)

        browser = cls(await deferToThread(start))
        case.addCleanup(browser.close)
        return browser

    def do(self, action: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``action(driver, *args)`` on a worker thread."""
        return deferToThread(action, self.driver, *args)

    def wait(self, condition: Callable[[Any], T], what: str, timeout: float = 20.0) -> Deferred[T]:
        """Wait (on a worker thread) until ``condition(driver)`` is truthy; fail naming ``what``."""

        def until(driver: Any) -> T:
            from selenium.common.exceptions import (
                NoSuchElementException,
                StaleElementReferenceException,
                TimeoutException,
            )
            from selenium.webdriver.support.wait import WebDriverWait

            redrawn = (NoSuchElementException, StaleElementReferenceException)
            try:
                return WebDriverWait(
                    driver, timeout, poll_frequency=0.1, ignored_exceptions=redrawn
                ).until(condition)
            except TimeoutException:
                text = driver.find_element("tag name", "body").text
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; page shows:\n{text[:3000]}\n"
                    f"console: {console_errors(driver)}"
                ) from None

        return self.do(until)

    def screenshot(self, name: str) -> Deferred[str]:
        """Save the window as ``docs/<name>`` and return the path."""
        path = os.path.join(DOCS_DIR, name)
        os.makedirs(DOCS_DIR, exist_ok=True)
        return self.do(lambda driver: driver.save_screenshot(path) and path)

    def close(self) -> Deferred[None]:
        return self.do(lambda driver: driver.quit())


def console_errors(driver: Any) -> list[str]:
    """The browser console's error messages so far (CSP violations show up here)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
