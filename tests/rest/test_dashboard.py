"""The dashboard and the API explorer in a real headless Chromium (Debian's package).

Selenium drives ``/usr/bin/chromium`` through ``/usr/bin/chromedriver``
(``scripts/ensure-services.sh`` installs both). Runs are real, on the session
cluster. Screenshots go to ``tests/rest/artifacts/`` (git-ignored), named after the
test and the moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rest.conftest import ARTIFACTS, OPERATE_TOKEN, READ_TOKEN, Http, RestServer
from tests.rest.test_runs import start, wait_for_task

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are missing: run scripts/ensure-services.sh")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def shot(browser: Any, request: pytest.FixtureRequest, moment: str) -> None:
    browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}-{moment}.png"))


def wait(condition: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except Exception:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def sign_in(browser: Any, server: RestServer, token: str = OPERATE_TOKEN, path: str = "/") -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + path)
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()


def task_state(browser: Any, task: str) -> str | None:
    return browser.execute_script(
        "const n = document.querySelector(`g.task[data-task='${arguments[0]}']`);"
        "return n ? n.getAttribute('data-state') : null;",
        task,
    )


def test_start_a_run_from_the_form_and_watch_it_live(
    browser: Any, rest_server: RestServer, http: Http, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, rest_server, path="/#/start")
    wait(
        lambda: browser.find_element(By.CSS_SELECTOR, "tr[data-workflow='steps']"), what="workflows"
    ).click()
    pause = wait(lambda: browser.find_element(By.ID, "param-pause"), what="the start form")
    assert pause.get_attribute("value") == "1.5"  # the parameter's default
    pause.clear()
    pause.send_keys("2")
    shot(browser, request, "1-form")
    browser.find_element(By.ID, "start").click()
    wait(lambda: "#/runs/" in browser.current_url, what="the run's page")
    run_id = browser.current_url.rsplit("/", 1)[1]
    browser.execute_script("window.__sameDocument = true;")
    drawn = wait(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.dag g.task"), what="the DAG")
    assert sorted(node.get_attribute("data-task") for node in drawn) == [
        "first",
        "second",
        "side",
        "third",
    ]
    seen: dict[str, list[str]] = {name: [] for name in ("first", "second", "third")}

    def observe() -> bool:
        for name, states in seen.items():
            state = task_state(browser, name)
            if state and (not states or states[-1] != state):
                states.append(state)
        return seen["third"][-1:] == ["succeeded"] if seen["third"] else False

    wait(lambda: observe() or seen["second"][-1:] == ["started"], what="the second task running")
    shot(browser, request, "2-running")
    wait(observe, timeout=90, what=f"the last task to succeed (seen: {seen})")
    for name in seen:
        assert "started" in seen[name] and seen[name][-1] == "succeeded", seen
        assert seen[name].index("started") < seen[name].index("succeeded"), seen
    assert browser.execute_script("return window.__sameDocument === true;")  # never reloaded
    wait(
        lambda: browser.find_element(By.CSS_SELECTOR, "#run-state [data-state='succeeded']"),
        what="state",
    )
    log = wait(
        lambda: (
            "third done" in browser.find_element(By.ID, "log").text
            and browser.find_element(By.ID, "log").text
        )
    )
    assert "first done" in log
    shot(browser, request, "3-finished")
    assert http.get(f"/api/v2/runs/{run_id}").json()["arguments"]["pause"] == 2.0


def test_stop_a_run_with_the_button(
    browser: Any, rest_server: RestServer, http: Http, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    run_id = start(http, "endless")
    wait_for_task(http, run_id, "wait")
    sign_in(browser, rest_server, path=f"/#/runs/{run_id}")
    wait(lambda: task_state(browser, "wait") == "started", what="the running task")
    shot(browser, request, "1-running")
    browser.find_element(By.ID, "stop").click()
    wait(
        lambda: browser.find_element(By.CSS_SELECTOR, "#run-state [data-state='stopped']"),
        what="stopped",
    )
    assert browser.find_element(By.ID, "stop").get_attribute("disabled") is not None
    shot(browser, request, "2-stopped")
    assert http.get(f"/api/v2/runs/{run_id}").json()["state"] == "stopped"


def test_a_failed_run_shows_its_error_and_traceback(
    browser: Any, rest_server: RestServer, http: Http, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    run_id = start(http, "broken")
    http.wait_for_run(run_id)
    sign_in(browser, rest_server, path=f"/#/runs/{run_id}")
    # The errors are drawn again as the run's record arrives: read the text, not the node.
    traceback = wait(
        lambda: browser.find_element(By.CSS_SELECTOR, "#errors pre.traceback").text,
        what="traceback",
    )
    assert "return 1 / data" in traceback
    assert (
        task_state(browser, "divide") == "failed" and task_state(browser, "prepare") == "succeeded"
    )
    shot(browser, request, "failed")


def test_the_runs_table_updates_live(
    browser: Any, rest_server: RestServer, http: Http, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, rest_server, path="/#/runs")
    wait(lambda: "live" in browser.find_element(By.ID, "runs-live").text, what="the live stream")
    browser.execute_script("window.__sameDocument = true;")
    run_id = start(http, "steps", arguments={"pause": 0.5})
    row = f"tr[data-run='{run_id}'] [data-state='succeeded']"
    wait(lambda: browser.find_element(By.CSS_SELECTOR, row), what="the new run, succeeded")
    assert browser.execute_script("return window.__sameDocument === true;")
    shot(browser, request, "runs")


def test_workers_page_and_the_read_role(
    browser: Any, rest_server: RestServer, http: Http, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, rest_server, token=READ_TOKEN, path="/#/workers")
    rows = wait(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#workers tr[data-worker]"), what="workers"
    )
    assert any(row.get_attribute("data-worker").startswith("main-") for row in rows)
    assert browser.find_element(By.ID, "role").text == "role: read"
    shot(browser, request, "workers")
    run_id = start(http, "greet", arguments={"name": "Ada"})
    http.wait_for_run(run_id)
    browser.get(f"{rest_server.url}/#/runs/{run_id}")
    wait(lambda: task_state(browser, "finish") == "succeeded", what="the run")
    assert browser.find_elements(By.ID, "stop") == []  # the read role cannot stop


def test_without_a_token_the_dashboard_asks_for_one(browser: Any, rest_server: RestServer) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, rest_server, token="")
    message = wait(lambda: browser.find_element(By.ID, "message").text, what="the message")
    assert "Enter an API token" in message


def test_the_explorer_calls_the_api(
    browser: Any, rest_server: RestServer, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, rest_server, path="/api/v2/docs")
    operation = wait(
        lambda: browser.find_element(By.CSS_SELECTOR, "details[data-operation='get_workflow']"),
        what="the operations",
    )
    operation.find_element(By.TAG_NAME, "summary").click()
    operation.find_element(By.CSS_SELECTOR, "input[data-param='name']").send_keys("greet")
    operation.find_element(By.CSS_SELECTOR, "button.primary").click()
    output = operation.find_element(By.CSS_SELECTOR, "pre.response")
    wait(lambda: output.get_attribute("data-status") == "200", what="the answer")
    assert "Who is greeted" in output.text
    shot(browser, request, "explorer")


def test_pages_load_nothing_from_elsewhere(browser: Any, rest_server: RestServer) -> None:
    for path in ("/#/runs", "/api/v2/docs"):
        sign_in(browser, rest_server, path=path)
        time.sleep(1)
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);"
        )
        assert resources and all(name.startswith(rest_server.url) for name in resources), resources
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]
    assert problems == []
