"""Live updates in the browser: each tab holds a WebSocket connection (the local API serves the
WebSocket API), so a checkout paid in one tab shows the new plan in another with no reload and no
polling, and a generation in one tab updates the usage shown in another. A connection without a
good ticket is refused; signing out closes the tab's connection. Each step checks what the page
shows and what the backend holds (the connections table)."""

import re
import secrets

from boto3.dynamodb.conditions import Key
from playwright.sync_api import expect

from test_journey import eventually, generate, sign_in


def connections(backend, user_id):
    table = backend.table("CONNECTIONS_TABLE")
    return table.query(IndexName="user-index", KeyConditionExpression=Key("userId").eq(user_id))["Items"]


def signed_in_twice(page, base_url, backend, prefix):
    """Tab A signed in, tab B opened in the same browser; both hold a live connection."""
    run = secrets.token_hex(4)
    sub = f"auth0|{prefix}-{run}"
    page.goto("/")
    sign_in(page, sub, f"{prefix}-{run}@example.test", "Live Tester")
    page.wait_for_url(f"{base_url}/")
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    other = page.context.new_page()
    other.set_default_timeout(15_000)
    other.goto("/")
    expect(other.locator("#who-tier")).to_have_text("FREE")
    expect(other.locator("body")).to_have_attribute("data-live", "on")
    eventually(lambda: len(connections(backend, sub)) == 2)
    return sub, other


def test_a_checkout_in_one_tab_shows_the_new_plan_in_another_without_reload_or_polling(
    page, base_url, backend, shoot, accessible
):
    user_id, other = signed_in_twice(page, base_url, backend, "live-plan")
    other.get_by_role("link", name="Plan and billing").click()
    expect(other.locator(".plan.current")).to_contain_text("Free")
    other.evaluate("window.sameDocument = true")
    reads = []
    other.on("request", lambda request: reads.append(request.url) if "/auth/session" in request.url else None)

    page.get_by_role("link", name="Plan and billing").click()
    page.get_by_role("button", name="Upgrade to Basic").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:8440/checkout/"))
    page.get_by_role("button", name="Pay and subscribe").click()

    expect(other.locator("#who-tier")).to_have_text("BASIC", timeout=30_000)
    expect(other.locator(".plan.current")).to_contain_text("Basic")
    assert other.evaluate("window.sameDocument === true"), "the other tab changed without a reload"
    # One read of the session when the push came, not one a second: nothing polled.
    assert len(reads) <= 2, reads
    assert backend.user(user_id)["subscriptionTier"] == "BASIC"
    shoot(other, "live-plan-other-tab")
    accessible(other, "live-plan-other-tab")
    # The paying tab returns from Checkout and learns the plan too (pushed, or read on connecting).
    expect(page.locator("#who-tier")).to_have_text("BASIC", timeout=30_000)


def test_a_generation_in_one_tab_updates_the_usage_in_another(page, base_url, backend):
    user_id, other = signed_in_twice(page, base_url, backend, "live-usage")
    expect(other.locator("#usage")).to_contain_text("0 of 10 recordings used this month")
    other.evaluate("window.sameDocument = true")
    reads = []
    other.on("request", lambda request: reads.append(request.url) if "/usage" in request.url else None)

    generate(page, "Heard in the other tab as well.")

    expect(other.locator("#usage")).to_contain_text("1 of 10 recordings used this month")
    assert other.evaluate("window.sameDocument === true")
    assert reads == [], f"the other tab asked nothing: {reads}"
    assert backend.user(user_id)["recordingsThisMonth"] == 1


OPEN = """async (url) => await new Promise((resolve) => {
  const socket = new WebSocket(url);
  socket.onopen = () => { socket.close(); resolve('open'); };
  socket.onclose = () => resolve('refused');
})"""


def test_a_connection_without_a_valid_session_is_refused(page, base_url, backend):
    socket_url = base_url.replace("http://", "ws://") + "/push"
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate(OPEN, f"{socket_url}?ticket=made-up") == "refused"
    assert page.evaluate(OPEN, socket_url) == "refused"
    asked = page.evaluate("async () => (await fetch('/push/tickets', { method: 'POST' })).status")
    assert asked == 401, "a ticket needs a session"

    # Signed in, the tab's own connection is open; a used ticket opens nothing more; signing out
    # closes the connection and forgets it.
    run = secrets.token_hex(4)
    sub = f"auth0|live-refused-{run}"
    sign_in(page, sub, f"live-refused-{run}@example.test", "Live Tester")
    page.wait_for_url(f"{base_url}/")
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    eventually(lambda: len(connections(backend, sub)) == 1)
    ticket = page.evaluate(
        """async () => {
        const session = await (await fetch('/auth/session')).json();
        const answer = await fetch('/push/tickets', { method: 'POST', headers: { 'x-csrf-token': session.csrfToken } });
        return (await answer.json()).ticket;
    }"""
    )
    assert page.evaluate(OPEN, f"{socket_url}?ticket={ticket}") == "open"
    assert page.evaluate(OPEN, f"{socket_url}?ticket={ticket}") == "refused", "a ticket opens one connection"
    page.get_by_role("button", name="Sign out").click()
    eventually(lambda: connections(backend, sub) == [])
