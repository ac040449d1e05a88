"""The account page in the browser: API keys (the key shown once, a character budget, revoked),
usage by month as a chart, the export downloaded, and erasure. Each step checks what the page
shows and what the backend holds."""

import json
import os
import re
import secrets
import urllib.error
import urllib.request

from boto3.dynamodb.conditions import Key
from playwright.sync_api import expect

from test_journey import sign_in


def with_key(key, path):
    request = urllib.request.Request(os.environ["API_BASE"] + path, headers={"authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def keys_of(backend, user_id):
    table = backend.table("API_KEYS_TABLE")
    return table.query(IndexName="user-index", KeyConditionExpression=Key("userId").eq(user_id))["Items"]


def test_keys_usage_history_export_and_erasure_from_the_account_page(page, base_url, backend, shoot, accessible):
    suffix = secrets.token_hex(4)
    sub, email = f"auth0|account-page-{suffix}", f"account-{suffix}@example.test"
    # A BASIC subscriber (keys are part of BASIC) with two finished months behind them, as the
    # row is before this sign-in (the sign-in keeps tier and counters).
    backend.table("USERS_TABLE").put_item(
        Item={
            "userId": sub,
            "subscriptionTier": "BASIC",
            "recordingsThisMonth": 0,
            "usage_2026-10": {"recordings": 12, "characters": 3400},
            "usage_2026-11": {"recordings": 30, "characters": 9100},
        }
    )
    page.goto("/")
    sign_in(page, sub, email, "Ada Account")
    expect(page.locator("#who-email")).to_have_text(email)
    page.goto("/settings")
    account = page.locator("#settings")

    # Each slider shows its value (the speak page).
    page.goto("/")
    expect(page.locator("#stability-value")).to_have_text("0.50")
    page.goto("/settings")

    account.get_by_label("Key name").fill("build server")
    account.get_by_label("Monthly character budget").fill("5000")
    account.get_by_role("button", name="Create key").click()
    expect(page.locator("#status")).to_have_text("The key build server was created.")
    key = page.locator("#new-key-value").inner_text()
    assert key.startswith("vk_"), key
    accessible(page, "new-key")
    expect(page.locator("#keys")).to_contain_text("build server")
    expect(page.locator("#keys")).to_contain_text("0 of 5000 characters this month")
    stored = keys_of(backend, sub)
    assert len(stored) == 1 and stored[0]["monthlyCharacterLimit"] == 5000, stored
    assert key not in json.dumps(stored, default=str), "only the key's hash is stored"
    assert with_key(key, "/usage") == 200
    page.goto("/settings")
    expect(page.locator("#new-key")).to_be_hidden()
    expect(page.locator("#keys")).not_to_contain_text(key)

    chart = page.locator("#history-chart svg")
    expect(chart).to_have_attribute("aria-label", "Recordings by month: 2026-10: 12 recordings, 3400 characters; "
                                                 "2026-11: 30 recordings, 9100 characters")
    november = page.locator('#history-chart rect[data-period="2026-11"]')
    expect(november).to_have_count(2)  # recordings and characters
    expect(november.locator("title")).to_have_text(["2026-11: 30 recordings", "2026-11: 9100 characters"])
    # Each series scaled to its own largest month: November's bars are both full height.
    heights = november.evaluate_all("bars => bars.map((b) => Number(b.getAttribute('height')))")
    assert heights == [120, 120], heights
    october = page.locator('#history-chart rect[data-period="2026-10"]')
    assert october.evaluate_all("bars => bars.map((b) => Number(b.getAttribute('height')))") == [48, 45]
    shoot(page, "account-page")
    accessible(page, "account-page")

    with page.expect_download() as downloading:
        account.get_by_role("button", name="Download my data").click()
    exported = json.loads(open(downloading.value.path()).read())
    assert exported["profile"]["email"] == email
    assert [k["name"] for k in exported["apiKeys"]] == ["build server"]

    account.get_by_role("button", name="Revoke the key build server").click()
    expect(page.locator("#status")).to_have_text("The key build server was revoked.")
    assert keys_of(backend, sub) == []
    assert with_key(key, "/usage") == 401

    # Erasing asks the IdP for the credentials again first, then the person erases again.
    account.get_by_label("Type ERASE to confirm").fill("ERASE")
    account.get_by_role("button", name="Erase my account").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:4400/interaction/"))
    page.get_by_label("sub").fill(sub)
    page.get_by_label("email", exact=True).fill(email)
    page.get_by_label("name").fill("Ada Account")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(base_url)))
    expect(page.locator("#who-email")).to_have_text(email)
    page.goto("/settings")
    account.get_by_label("Type ERASE to confirm").fill("ERASE")
    account.get_by_role("button", name="Erase my account").click()
    expect(page.locator("#status")).to_have_text("Your account was erased.")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert backend.user(sub) is None
    accessible(page, "erased")
