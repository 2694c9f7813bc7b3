"""The dashboard in a real browser against the real service and a PVE
simulator over TLS: log in, register through the untrusted-certificate →
trust flow, find the cluster in the table in its colour, filter, open its
page, check it, rename it, deregister it; the table refreshing itself, and stopping
while hidden; a phone's width; keyboard and contrast.

``PROXMOXER_SCREENSHOTS=<dir>`` (``make screenshots``) also saves the
README's pictures there.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from pve_simulator.server import PveSimulator
from tests.e2e.browser.conftest import DESKTOP, PHONE
from tests.e2e.conftest import AUTH_FAILURE_DELAY, Registry, pinned, token_fields

pytestmark = pytest.mark.e2e

OPERATOR = ("operator", "e2e-operator-password")  # made by tests/e2e/servers.prepare_database
WAIT = 15  # seconds a page may take to show what the test waits for
SCREENSHOTS = os.environ.get("PROXMOXER_SCREENSHOTS")


class Dashboard:
    """The dashboard as a person uses it, through one browser."""

    def __init__(self, driver: Chrome, registry: Registry) -> None:
        self.driver = driver
        self.registry = registry
        self.base_url = registry.base_url

    def open(self, path: str = "/") -> None:
        self.driver.get(f"{self.base_url}{path}")

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, css: str) -> WebElement:
        return WebDriverWait(self.driver, WAIT).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, css))
        )

    def wait_until(self, condition, message: str) -> None:  # type: ignore[no-untyped-def]
        # A page that is being replaced may take an element away mid-look.
        # Chromium reports that either as a stale reference or, now and then,
        # as an inspector error about a node no longer in the document.
        def look(_driver):  # type: ignore[no-untyped-def]
            try:
                return condition()
            except WebDriverException as error:
                if "does not belong to the document" in (error.msg or ""):
                    return False
                raise

        WebDriverWait(
            self.driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)
        ).until(look, message)

    def heading(self) -> str:
        return self.find("h1").text

    def messages(self) -> str:
        return " ".join(element.text for element in self.find_all(".message"))

    def table_names(self) -> list[str]:
        return [cell.text for cell in self.find_all("#fleet tbody th a")]

    def row(self, name: str) -> WebElement:
        return self.driver.find_element(
            By.XPATH, f"//div[@id='fleet']//tbody/tr[th/a[normalize-space()='{name}']]"
        )

    def log_in(self) -> None:
        self.open("/")
        self.find("#id_username").send_keys(OPERATOR[0])
        self.find("#id_password").send_keys(OPERATOR[1])
        self.find("form button[type=submit]").click()
        self.wait_until(lambda: self.heading() == "Clusters", "the clusters page after login")

    def log_out(self) -> None:
        self.find(".sign-out button").click()
        self.wait_until(lambda: self.heading() == "Log in", "the login page after logout")

    def assert_no_secret(self, where: str) -> None:
        self.registry.secrets.assert_absent(self.driver.page_source, where)


@pytest.fixture(scope="module")
def simulator(secrets) -> Iterator[PveSimulator]:
    """A cluster of its own, with its own self-signed certificate."""
    with secrets.watch(
        PveSimulator(hosts=["127.0.0.1"], auth_failure_delay=AUTH_FAILURE_DELAY)
    ) as simulator:
        yield simulator


@pytest.fixture
def page(driver, dashboard) -> Iterator[Dashboard]:
    """A signed-in dashboard at desktop width; the service log and every
    page hold no secret."""
    driver.set_window_size(*DESKTOP)
    log_size = len(dashboard.server.log())
    ui = Dashboard(driver, dashboard)
    ui.log_in()
    yield ui
    ui.assert_no_secret("the last page")
    driver.delete_all_cookies()
    dashboard.secrets.assert_absent(dashboard.server.log()[log_size:], "the service log")


def test_register_trust_find_filter_check_rename_and_deregister(page, simulator):
    name = f"browser-{uuid.uuid4().hex[:6]}"
    simulator.set_scenario("healthy")

    # Register: the certificate is self-signed, so the service offers its fingerprint.
    page.find(".page-heading a.button.primary").click()
    page.wait_until(lambda: page.heading() == "Register a cluster", "the register form")
    page.find("#id_name").send_keys(name)
    page.find("#id_api_endpoint").send_keys(simulator.url)
    page.find("input[name=auth_method][value=password]").click()
    page.find("#id_username").send_keys(simulator.username)
    page.find("#id_password").send_keys(simulator.password)
    page.find("form.cluster-form button[type=submit]").click()

    offered = page.wait_for("#observed-fingerprint")
    assert offered.text == simulator.fingerprint
    assert page.find("#id_name").get_attribute("value") == name
    assert page.find("#id_password").get_attribute("value") == ""
    assert page.find("button[data-copy=observed-fingerprint]").is_displayed()
    page.assert_no_secret("the trust offer")
    page.registry.assert_not_registered(name)

    # Trust it: one button, no secret typed again.
    trust = page.driver.find_element(
        By.XPATH, "//button[normalize-space()='Trust this certificate and register']"
    )
    trust.click()
    page.wait_until(lambda: page.heading().startswith(name), "the cluster's page")
    assert f"Registered {name}: Healthy." in page.messages()
    assert simulator.fingerprint in page.find("#pinned-fingerprint").text

    # The table shows it, in its colour.
    page.find(".breadcrumbs a").click()
    page.wait_for("#fleet")
    badge = page.row(name).find_element(By.CSS_SELECTOR, ".status")
    assert badge.text.endswith("Healthy")
    assert badge.value_of_css_property("background-color") == "rgba(215, 245, 221, 1)"

    # Filter: the table follows the filters without a reload, and the address too.
    Select(page.find("#id_status")).select_by_visible_text("Degraded")
    page.wait_until(lambda: name not in page.table_names(), "the degraded filter")
    assert "status=degraded" in page.driver.current_url
    Select(page.find("#id_status")).select_by_visible_text("Any status")
    page.find("#id_search").send_keys(name)
    page.wait_until(lambda: f"search={name}" in page.driver.current_url, "the search")
    page.wait_until(lambda: page.table_names() == [name], "the search's rows")

    # Its page: check it now after a node went offline.
    page.row(name).find_element(By.CSS_SELECTOR, "a").click()
    page.wait_until(lambda: page.heading().startswith(name), "the cluster's page")
    simulator.set_scenario("degraded")
    page.driver.find_element(By.XPATH, "//button[normalize-space()='Check now']").click()
    page.wait_until(lambda: f"Checked {name}: Degraded." in page.messages(), "the check")
    assert page.find("h1 .status").text.endswith("Degraded")

    # Rename it.
    page.driver.find_element(By.XPATH, "//a[normalize-space()='Edit']").click()
    page.wait_until(lambda: page.heading() == f"Edit {name}", "the edit form")
    assert page.find("#id_password").get_attribute("value") == ""
    name = f"{name}-renamed"
    field = page.find("#id_name")
    field.clear()
    field.send_keys(name)
    page.find("form.cluster-form button[type=submit]").click()
    page.wait_until(lambda: page.heading().startswith(name), "the renamed cluster's page")
    assert f"Saved {name}." in page.messages()

    # Deregister, after a confirmation.
    page.driver.find_element(By.XPATH, "//a[normalize-space()='Deregister…']").click()
    page.wait_until(lambda: page.heading() == f"Deregister {name}?", "the confirmation")
    page.driver.find_element(By.XPATH, f"//button[normalize-space()='Deregister {name}']").click()
    page.wait_until(lambda: page.heading() == "Clusters", "the clusters after deregistering")
    assert f"Deregistered {name}." in page.messages()
    assert name not in page.table_names()
    page.registry.assert_not_registered(name)


def poll_every_second(page: Dashboard) -> None:
    """Make the open table poll each second from now on (the page reads the
    interval before each wait) and at once."""
    page.driver.execute_script(
        "document.getElementById('fleet').setAttribute('data-poll-seconds', '1');"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )


def test_the_table_updates_itself_and_rests_while_hidden(page, simulator):
    name = f"polled-{uuid.uuid4().hex[:6]}"
    page.open("/")
    poll_every_second(page)

    simulator.set_scenario("healthy")
    registered = page.registry.register(name=name, **pinned(simulator), **token_fields(simulator))
    assert registered.status_code == 201, registered.text
    page.wait_until(lambda: name in page.table_names(), "the new cluster without a reload")
    assert "Updated" in page.find("[data-poll-state]").text

    # Hidden: no more requests for the table.
    page.driver.execute_script(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    time.sleep(0.5)  # a request already on its way may still arrive
    before = page.registry.server.log().count("GET /clusters/rows/")
    time.sleep(3)  # three intervals
    assert page.registry.server.log().count("GET /clusters/rows/") == before

    page.registry.delete(registered.json()["id"])


def test_a_phone_sees_every_column_without_scrolling_sideways(page, simulator):
    name = f"phone-{uuid.uuid4().hex[:6]}"
    simulator.set_scenario("healthy")
    registered = page.registry.register(name=name, **pinned(simulator), **token_fields(simulator))
    assert registered.status_code == 201
    try:
        page.driver.set_window_size(*PHONE)
        cluster_id = registered.json()["id"]
        for path in (
            "/",
            f"/clusters/{cluster_id}/",
            f"/clusters/{cluster_id}/edit/",
            "/clusters/new/",
        ):
            page.open(path)
            page.wait_for("h1")
            overflow = page.driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than a phone"
        page.open(f"/?search={name}")
        labels = page.driver.execute_script(
            "return Array.from(arguments[0].querySelectorAll('td')).map("
            "  function (cell) { return getComputedStyle(cell, '::before').content; });",
            page.row(name),
        )
        # Each cell, now a line of its own, says what it is.
        assert labels == [
            '"Status"',
            '"Version"',
            '"Nodes online"',
            '"Endpoint"',
            '"Last check"',
            '"Last error"',
        ]
    finally:
        page.registry.delete(registered.json()["id"])


def test_the_login_form_works_from_the_keyboard(driver, dashboard):
    driver.set_window_size(*DESKTOP)
    driver.delete_all_cookies()
    ui = Dashboard(driver, dashboard)
    ui.open("/")

    assert driver.switch_to.active_element.get_attribute("id") == "id_username"  # autofocus
    driver.switch_to.active_element.send_keys(OPERATOR[0], Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "id_password"
    driver.switch_to.active_element.send_keys(OPERATOR[1], Keys.ENTER)
    ui.wait_until(lambda: ui.heading() == "Clusters", "the clusters page")
    ui.log_out()


def contrast(foreground: str, background: str) -> float:
    def luminance(css: str) -> float:
        red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css)[:3])
        linear = [
            c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_every_status_reads_at_aa_contrast(page):
    page.open("/")
    colours = page.driver.execute_script(
        """
        return ['healthy', 'degraded', 'unhealthy', 'unknown'].map(function (status) {
          var badge = document.createElement('span');
          badge.className = 'status status-' + status;
          badge.textContent = status;
          document.body.appendChild(badge);
          var style = getComputedStyle(badge);
          return [status, style.color, style.backgroundColor];
        });
        """
    )
    for status, foreground, background in colours:
        assert contrast(foreground, background) >= 4.5, status


# -- the README's pictures ------------------------------------------------------------------------


@pytest.mark.skipif(not SCREENSHOTS, reason="PROXMOXER_SCREENSHOTS is not set (make screenshots)")
def test_readme_screenshots(page, secrets):
    """A small fleet in every status, then the table and a cluster's page."""
    directory = Path(SCREENSHOTS or ".")
    directory.mkdir(parents=True, exist_ok=True)
    fleet = [
        ("prod-eu", "healthy", None),
        ("prod-us", "degraded", None),
        ("staging", "no-quorum", None),
        ("lab-pve7", "standalone-pve7", None),
        ("backup", "healthy", "server-error"),  # registered, then it broke
        ("edge-audit", "no-permission", None),
    ]
    simulators: list[PveSimulator] = []
    ids: dict[str, str] = {}
    try:
        for name, scenario, later in fleet:
            simulator = secrets.watch(
                PveSimulator(
                    hosts=["127.0.0.1"],
                    scenario=scenario,
                    cluster_name=name,  # six PVE clusters: one registration each
                    auth_failure_delay=0.05,
                )
            )
            simulators.append(simulator.start())
            answer = page.registry.register(
                name=name, **pinned(simulator), **token_fields(simulator)
            )
            assert answer.status_code == 201, answer.text
            ids[name] = answer.json()["id"]
            if later:
                simulator.set_scenario(later)
                page.registry.refresh(ids[name])
        page.driver.set_window_size(1200, 800)
        page.open("/")
        page.wait_for("#fleet tbody")
        page.driver.save_screenshot(str(directory / "dashboard-table.png"))
        page.open(f"/clusters/{ids['prod-us']}/")
        page.wait_for("h1")
        page.driver.set_window_size(1200, 900)
        page.driver.save_screenshot(str(directory / "dashboard-cluster.png"))
        page.driver.set_window_size(*PHONE)
        page.open("/")
        page.wait_for("#fleet tbody")
        page.driver.save_screenshot(str(directory / "dashboard-phone.png"))

        # The offer to trust a self-signed certificate.
        newcomer = secrets.watch(PveSimulator(hosts=["127.0.0.1"], auth_failure_delay=0.05))
        simulators.append(newcomer.start())
        page.driver.set_window_size(1200, 900)
        page.open("/clusters/new/")
        page.find("#id_name").send_keys("new-site")
        page.find("#id_api_endpoint").send_keys(newcomer.url)
        page.find("#id_token_id").send_keys(newcomer.token_id)
        page.find("#id_token_secret").send_keys(newcomer.token_secret)
        page.find("form.cluster-form button[type=submit]").click()
        page.wait_for("#observed-fingerprint")
        page.driver.save_screenshot(str(directory / "dashboard-trust.png"))
    finally:
        for cluster_id in ids.values():
            page.registry.delete(cluster_id)
        for simulator in simulators:
            simulator.stop()
