"""A real browser for the dashboard's end-to-end tests: Debian's Chromium
driven by Selenium through Debian's chromedriver (never a downloaded
browser), started so that it cannot reach anything but loopback.

Outside CI the tests skip, saying why, when no browser is installed; in CI
(``CI=true``, where .ci/run installs both packages) a missing browser fails.
A failing test leaves a screenshot under pytest's temporary directory and
prints its path.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.e2e.conftest import Registry, start_service
from tests.e2e.servers import manage

# Flags that keep Chromium off the network: every host name but loopback
# resolves to nothing, and the background services that would call home
# (component and safe-browsing updates, sync, metrics, DNS prefetch,
# hyperlink auditing pings) are off. A fresh profile per run.
NETWORK_SAFETY_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pings",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--dns-prefetch-disable",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater",
)
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
DESKTOP = (1400, 900)
PHONE = (375, 800)
BROWSER = "chromium"
DRIVER = "chromedriver"


def find_browser() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver; skips (or fails in CI)
    without them."""
    browser, driver = shutil.which(BROWSER), shutil.which(DRIVER)
    if browser and driver:
        return browser, driver
    missing = " and ".join(
        name for name, path in ((BROWSER, browser), (DRIVER, driver)) if not path
    )
    reason = f"no {missing} installed: apt-get install chromium chromium-driver"
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need a browser in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_options(browser: str, profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*NETWORK_SAFETY_FLAGS, *HEADLESS_FLAGS):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    return options


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    browser, driver_path = find_browser()
    # Belt and braces: the driver's path is given, so Selenium Manager (which
    # would download drivers and send usage statistics) never runs.
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    chrome = webdriver.Chrome(
        options=chromium_options(browser, profile),
        service=Service(executable_path=driver_path, log_output=str(log)),
    )
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def dashboard(service_env, e2e_dir, secrets, tmp_path_factory) -> Iterator[Registry]:
    """The service as `make serve` runs it (DJANGO_DEBUG=0, static files
    collected and served by whitenoise), on loopback."""
    static_root = tmp_path_factory.mktemp("static")
    env = {**service_env, "DJANGO_STATIC_ROOT": str(static_root)}
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    registry = start_service(env, e2e_dir / "service-dashboard.log", secrets)
    yield registry
    registry.server.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A screenshot of the page when a browser test fails, path printed."""
    report = yield
    if report.when == "call" and report.failed and "driver" in getattr(item, "funcargs", {}):
        chrome = item.funcargs["driver"]
        directory = item.config._tmp_path_factory.mktemp("screenshots")  # type: ignore[attr-defined]
        path = directory / f"{item.name[:80]}.png"
        try:
            chrome.save_screenshot(str(path))
        except Exception as error:  # noqa: BLE001 - a broken browser must not hide the failure
            report.sections.append(("screenshot", f"no screenshot: {error}"))
        else:
            report.sections.append(("screenshot", f"saved at {path}"))
            print(f"\nscreenshot of the failure: {path}")
    return report
