"""The operator console in a real browser, as an operator uses it: place a simulated call and watch
it complete live, find it with a filter, read its timeline, replay it, redeliver its pushed event,
erase another call, sign in with a wrong token; and an axe-core pass over every page. Screenshots of each page go to
target/console-screenshots/."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from conftest import AXE

LIVE = 30_000  # ms: a simulated call settles in a few seconds (ENRICHMENT_DELAYS=2)
DEV_TOKEN = "dev-api-token"


def sign_in(page: Page, runner: str, token: str | None = None) -> None:
    page.goto(runner + "/console/")
    field = page.get_by_label("API token")
    if token is not None:
        field.fill(token)
    else:
        expect(field).to_have_value(DEV_TOKEN)  # the runner hands its public development token
    page.get_by_role("button", name="Connect").click()


def open_page(context, runner: str, route: str) -> Page:
    """A new tab, signed in (the token is kept per tab), showing `#/route`."""
    page = context.new_page()
    sign_in(page, runner)
    expect(page.get_by_role("heading", name="Calls", exact=True)).to_be_visible()
    page.goto(f"{runner}/console/#/{route}")
    return page


def route_of(view: str, call_id: str) -> str:
    """The hash route of a page the parametrized tests name: "call" is the placed call's page."""
    return f"calls/{call_id}" if view == "call" else view


@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def placed(context, runner, shots):
    """A call placed from the Local page with this runner's receiver as callbackUrl, followed on its
    page until complete: (page, call id, service request id, the data statuses the page showed)."""
    page = context.new_page()
    sign_in(page, runner)
    expect(page.get_by_role("heading", name="Calls", exact=True)).to_be_visible()
    loaded_at = page.evaluate("window.ringbackConsoleLoadedAt")
    page.get_by_role("link", name="Local").click()
    request_id = f"sr-{uuid.uuid4().hex[:8]}"
    page.get_by_label("Service request ID (optional)").fill(request_id)
    page.get_by_label("Provider name").fill("Console Plumbing")
    page.screenshot(path=shots / "local.png", full_page=True)
    page.get_by_role("button", name="Place call").click()
    page.wait_for_url("**/console/#/calls/*")
    call_id = page.url.split("#/calls/")[1]
    # Every data status the page shows, as it shows it: the page must move on by itself.
    page.evaluate(
        """() => {
          window.seenStatuses = [];
          const seen = () => {
            const b = document.querySelector("h1 .badge");
            if (b && window.seenStatuses.at(-1) !== b.textContent) window.seenStatuses.push(b.textContent);
          };
          seen();
          new MutationObserver(seen).observe(document.getElementById("main"), {subtree: true, childList: true});
        }"""
    )
    expect(page.locator("h1 .badge")).to_have_text("complete", timeout=LIVE)
    seen = page.evaluate("window.seenStatuses")
    assert page.evaluate("window.ringbackConsoleLoadedAt") == loaded_at, "the page was reloaded"
    return page, call_id, request_id, seen


def test_a_simulated_call_placed_from_the_console_reaches_complete_live(placed, shots):
    page, call_id, _, seen = placed
    assert seen[0] in ("pending", "partial", "fetching"), seen
    assert seen[-1] == "complete", seen
    expect(page.locator(".subtitle")).to_have_text(call_id)
    expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    page.screenshot(path=shots / "call.png", full_page=True)


def test_the_list_filters_to_the_call(placed, context, runner, shots):
    _, call_id, request_id, _ = placed
    page = open_page(context, runner, "calls")
    page.get_by_label("Filter by").select_option(label="Service request ID")
    page.get_by_label("Service request ID is").fill(request_id)
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table.calls tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-call-id", call_id)
    expect(rows.first).to_contain_text("complete")
    # Exact counts by status and outcome from the stats route (the last 24 hours): the call is counted.
    expect(page.locator('.counts a[data-key="count-complete"] .count')).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator('.counts a[data-key="count-completed"] .count')).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator(".counts-note")).to_contain_text("created in the last 24 hours")
    page.screenshot(path=shots / "calls.png", full_page=True)
    rows.first.get_by_role("link").click()
    expect(page.locator(".subtitle")).to_have_text(call_id)
    page.close()


def test_counts_fall_back_to_listing_pages_where_the_api_has_no_stats(placed, browser, runner):
    ctx = browser.new_context()
    no_stats = '{"success":false,"error":{"code":"not_found","message":"no call index"}}'
    ctx.route(re.compile(r".*/api/v1/vapi/stats(\?.*)?$"), lambda route: route.fulfill(status=404, content_type="application/json", body=no_stats))
    page = open_page(ctx, runner, "calls")
    expect(page.locator('.counts a[data-key="count-complete"] .count')).to_have_text(re.compile(r"^[1-9]\d*\+?$"))
    expect(page.locator(".counts-note")).to_contain_text("Counted from the listing")
    expect(page.locator(".counts.outcomes")).to_be_hidden()
    ctx.close()


def test_erasing_a_call_from_its_page_leaves_a_notice_and_takes_it_off_the_list(context, runner, shots):
    request_id = f"sr-{uuid.uuid4().hex[:8]}"
    placed = context.request.post(
        runner + "/api/v1/vapi/calls",
        headers={"authorization": f"Bearer {DEV_TOKEN}", "idempotency-key": str(uuid.uuid4())},
        data={"providerName": "Erase Me Plumbing", "providerPhone": "+14155550123", "serviceNeeded": "plumber",
              "userCriteria": "", "location": "Oakland, CA", "urgency": "flexible", "serviceRequestId": request_id},
    )
    assert placed.status == 202, placed.text()
    call_id = placed.json()["data"]["callId"]
    page = open_page(context, runner, f"calls/{call_id}")
    expect(page.locator("h1 .badge")).to_have_text("complete", timeout=LIVE)
    page.get_by_role("button", name="Erase…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Erase this call?")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Erase").click()
    expect(page.locator(".messages")).to_contain_text("Erased:")
    expect(page.locator("main")).to_contain_text(re.compile(r"This call was erased at \S"))
    expect(page.get_by_role("button", name="Replay…")).to_have_count(0)
    page.screenshot(path=shots / "call-erased.png", full_page=True)
    # Gone from the list: by its service request, and from the unfiltered newest-first page.
    page.goto(f"{runner}/console/#/calls?field=serviceRequestId&value={request_id}")
    expect(page.locator("main")).to_contain_text("No calls match.")
    page.goto(f"{runner}/console/#/calls")
    expect(page.locator(".updated")).to_contain_text("newest first")
    expect(page.locator(f'tr[data-call-id="{call_id}"]')).to_have_count(0)
    page.close()


def test_the_timeline_shows_webhooks_enrichment_and_the_pushed_event(placed):
    page, _, _, _ = placed
    timeline = page.locator("ol.timeline")
    for what in ("record.created", "webhook.received", "record.fetched", "push.made", "push.attempt"):
        expect(timeline.locator(f'li[data-what="{what}"]').first).to_be_visible(timeout=LIVE)
    push = page.locator("article.push").first
    expect(push.locator("h3")).to_contain_text("call.completed")
    expect(push.locator("h3 .badge")).to_have_text("delivered", timeout=LIVE)
    expect(push.locator("table.attempts tbody tr")).to_have_count(1)
    expect(push.locator("table.attempts tbody tr").first).to_contain_text("204")


def test_redeliver_sends_the_event_again_and_shows_the_new_attempt(placed, runner):
    page, _, _, _ = placed
    push = page.locator("article.push").first
    push.get_by_role("button", name="Redeliver…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Redeliver this event?")
    dialog.get_by_role("button", name="Redeliver").click()
    expect(page.locator(".messages")).to_contain_text("queued for delivery again")
    expect(page.locator("article.push").first.locator("table.attempts tbody tr")).to_have_count(2, timeout=LIVE)


def test_cancelling_a_confirmation_does_nothing(placed):
    page, _, _, _ = placed
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_role("button", name="Replay…").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # A replay would be sent at once; the next poll's answer proves the page went on without one.
    with page.expect_response(lambda r: r.url.endswith("/events")):
        pass
    assert posts == [], posts
    expect(page.get_by_role("button", name="Replay…")).to_be_focused()  # focus back where it was


def test_replay_enriches_the_call_again(placed):
    page, _, _, _ = placed
    fetched = page.locator('li[data-what="record.fetched"] time').first.get_attribute("datetime")
    page.get_by_role("button", name="Replay…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("kept webhook")
    dialog.get_by_role("button", name="Replay").click()
    expect(page.locator(".messages")).to_contain_text("Replay accepted")
    # The second enrichment: Vapi is asked again, and the call settles complete again.
    expect(page.locator('li[data-what="record.fetched"] time').first).not_to_have_attribute("datetime", fetched, timeout=LIVE)
    expect(page.locator("h1 .badge")).to_have_text("complete", timeout=LIVE)


def test_the_inbox_shows_each_received_event_with_its_signature_check(placed, context, runner):
    _, call_id, _, _ = placed
    page = open_page(context, runner, "local")
    rows = page.locator("table.inbox tbody tr", has=page.locator(f'a:text-is("{call_id}")'))
    expect(rows.first).to_be_visible()
    assert rows.count() >= 2  # the delivery and its redelivery
    for i in range(rows.count()):
        expect(rows.nth(i)).to_contain_text("✓ verified")
    page.close()


def test_a_wrong_token_is_refused_with_a_clear_message(browser, runner, shots):
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in(page, runner, token="not-the-token")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The API token was refused (401)")
    expect(page.get_by_role("heading", name="Connect to ringback")).to_be_visible()
    # Nothing secret is kept in the URL, and the refused token is not remembered.
    assert "not-the-token" not in page.url
    assert page.evaluate("sessionStorage.getItem('ringback.console.token')") is None
    page.screenshot(path=shots / "signin-refused.png", full_page=True)
    ctx.close()


def test_sign_in_and_navigation_work_from_the_keyboard(browser, runner):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(runner + "/console/")
    expect(page.get_by_label("API token")).to_have_value(DEV_TOKEN)
    page.keyboard.press("Enter")  # focus starts on Connect when the token is filled in
    expect(page.get_by_role("heading", name="Calls", exact=True)).to_be_visible()
    page.reload()  # signed in for the tab's session: from the top of the page, as after a load
    expect(page.get_by_role("heading", name="Calls", exact=True)).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Health")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible()
    ctx.close()


def test_the_health_page_lists_failed_calls_and_events(placed, context, runner, shots):
    page = open_page(context, runner, "health")
    expect(page.get_by_role("heading", name="Calls settled fetch_failed in the last 24 hours")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Checked the latest")).to_be_visible(timeout=LIVE)
    page.screenshot(path=shots / "health.png", full_page=True)
    page.close()


@pytest.mark.parametrize("view", ["calls", "call", "local"])
def test_pages_fit_a_phone(placed, browser, runner, shots, view):
    _, call_id, _, _ = placed
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = open_page(ctx, runner, route_of(view, call_id))
    expect(page.locator("main h1")).to_be_visible()
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{view}: {overflow}px wider than the phone's screen"
    page.screenshot(path=shots / f"phone-{view}.png", full_page=True)
    ctx.close()


@pytest.mark.parametrize("view", ["signin", "calls", "call", "health", "local"])
def test_axe_finds_no_serious_or_critical_violations(placed, browser, runner, view):
    _, call_id, _, _ = placed
    # axe-core is injected into the page: the console's own policy allows only its own scripts.
    ctx = browser.new_context(bypass_csp=True)
    if view == "signin":
        page = ctx.new_page()
        page.goto(runner + "/console/")
        expect(page.get_by_role("heading", name="Connect to ringback")).to_be_visible()
    else:
        page = open_page(ctx, runner, route_of(view, call_id))
        expect(page.locator("main h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
    if view == "call":
        page.locator("details.raw summary").click()  # the raw JSON too
    page.add_script_tag(path=str(AXE))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, json.dumps([{k: v[k] for k in ("id", "impact", "help")} | {"nodes": [n["target"] for n in v["nodes"]]} for v in bad], indent=1)
    ctx.close()


def test_the_same_page_signs_in_to_a_deployment_by_its_url(placed, browser, runner):
    """A deployment is another origin: the page calls it with CORS, as API Gateway answers under the
    template's CorsConfiguration (here a stand-in origin whose answers come from this runner)."""
    _, call_id, _, _ = placed
    deployment = "https://api.deployment.test"
    cors = {"access-control-allow-origin": runner, "access-control-expose-headers": "etag",
            "access-control-allow-headers": "authorization,content-type,idempotency-key,if-none-match",
            "access-control-allow-methods": "GET,POST,OPTIONS", "vary": "origin"}
    seen = []

    def as_api_gateway(route):
        req = route.request
        seen.append((req.method, req.headers.get("origin")))
        if req.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
            return
        answer = route.fetch(url=runner + req.url.removeprefix(deployment))
        route.fulfill(response=answer, headers={**answer.headers, **cors})

    ctx = browser.new_context()
    ctx.route(f"{deployment}/**", as_api_gateway)
    page = ctx.new_page()
    page.goto(runner + "/console/")
    page.get_by_label("API URL").fill(deployment)
    page.get_by_label("API token").fill(DEV_TOKEN)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("table.calls tbody tr").first).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text(deployment)
    expect(page.get_by_role("link", name="Local")).to_have_count(0)  # the runner's own pages only
    page.goto(f"{runner}/console/#/calls/{call_id}")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    assert seen and all(origin == runner for _, origin in seen), seen
    ctx.close()
