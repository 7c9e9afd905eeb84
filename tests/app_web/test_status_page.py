"""The operators' status page in a real headless Chromium (Debian's package) against a real uvicorn:
sign in with the token, see the seeded loops, hostile strings shown as text, a screenshot kept in
test-artifacts/ for a person to look at."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from loopbot.testing.app_seed import seed_cost, seed_loop
from loopbot.testing.webhooks import headers
from tests.app_web.conftest import SECRET, TOKEN, settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("LOOPBOT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
HOSTILE_REPO = "acme/<script>alert('repo')</script>"
HOSTILE_DETAIL = '<img src=x onerror="alert(1)"> & </td></tr></table><h1>pwned</h1>'
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def seed(store) -> dict[str, int]:
    now = time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    ids = {
        "api-running": seed_loop(store, "acme/api", 12, "running", cost_usd=3.4, updated_at=now - 60,
                                 workflow_run_id=9001, detail="iteration 3 of 10"),
        "api-blocked": seed_loop(store, "acme/api", 14, "blocked", cost_usd=1.1, updated_at=now - 600,
                                 detail="heartbeat stale; resumed 3 times"),
        "web-done": seed_loop(store, "acme/web", 3, "success", cost_usd=0.8, updated_at=now - 3600),
        "hostile": seed_loop(store, HOSTILE_REPO, 1, "running", updated_at=now - 30, detail=HOSTILE_DETAIL),
    }
    for repo, usd in (("acme/api", 2.5), ("acme/web", 0.75), (HOSTILE_REPO, 0.1)):
        seed_cost(store, repo, today, usd)
    seed_cost(store, "acme/api", time.strftime("%Y-%m-%d", time.gmtime(now - 3 * 86400)), 1.25)
    return ids


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_status_page_in_a_real_browser(serve, store, tmp_path):
    from playwright.sync_api import sync_playwright

    ids = seed(store)
    client = serve(settings())
    body = json.dumps({"action": "opened", "repository": {"full_name": "acme/api"}}).encode()
    assert client.post("/webhook", content=body, headers=headers(SECRET, body, "issues", "page-d1")).status_code == 202
    url = str(client.base_url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "app-status-page.png"
    shot.unlink(missing_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        # Playwright keeps the profile in a fresh temporary directory of its own (--user-data-dir).
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1150, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        first = page.goto(url + "/")
        assert first is not None and first.status == 401
        page.fill("#token", "not the token")
        page.click("button[type=submit]")
        assert page.locator("#wrong").is_visible()
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#loops")
        text = page.inner_text("body")
        rows = page.locator("#loops tr[data-loop]")
        assert rows.count() == 4
        for loop_id in ids.values():
            assert page.locator(f'#loops tr[data-loop="{loop_id}"]').count() == 1
        assert "heartbeat stale; resumed 3 times" in text and "iteration 3 of 10" in text
        assert HOSTILE_REPO in text and HOSTILE_DETAIL in text  # shown literally, as text
        assert page.locator("script").count() == 0 and page.locator("img").count() == 0
        assert page.locator("h1").all_inner_texts() == ["loopbot"]
        assert page.locator('#queue [data-priority="routine"] b').inner_text() in ("0", "1")
        assert page.locator("#cost-chart rect").count() == 4
        assert "page-d1" in page.inner_text("#deliveries")
        cookie = next(c for c in page.context.cookies() if c["name"] == "loopbot_session")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert dialogs == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_page_takes_the_bearer_header_and_nothing_else(serve, store):
    seed(store)
    client = serve(settings())
    assert client.get("/").status_code == 401
    assert httpx.get(f"{client.base_url}/", cookies={"loopbot_session": TOKEN}).status_code == 401  # the token is not the cookie
    page = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "&lt;script&gt;alert(&#39;repo&#39;)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert "<h1>pwned</h1>" not in page.text
    disabled = serve(settings(api_token=None))
    assert disabled.get("/").status_code == 503 and "LOOPBOT_API_TOKEN" in disabled.get("/").text
    assert disabled.post("/login", data={"token": ""}).status_code == 503


def test_a_login_body_is_capped(client):
    answer = client.post("/login", content=b"token=" + b"x" * 100_000,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 401
    assert isinstance(client, httpx.Client)
