"""Workspaces in the browser: a person makes a team, invites a second person by email; the second
person follows the emailed link, signs in and is a member; the first changes their role. Each
step checks what the page shows and what the backend holds."""

import json
import os
import re
import secrets
import urllib.request

from boto3.dynamodb.conditions import Key
from playwright.sync_api import expect

from test_journey import SAMPLE, eventually, sign_in


def invitation_link(email):
    """The link of the last invitation SES sent to `email` (moto keeps what it was asked to send;
    local/standins/moto_local.py lists it)."""
    with urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/_local/ses/templated") as answer:
        messages = json.load(answer)
    sent = [m for m in messages if email in m["destinations"]["ToAddresses"] and m["template"].endswith("workspace-invitation")]
    return json.loads(sent[-1]["template_data"])["acceptUrl"] if sent else None


def members(backend, workspace_id):
    table = backend.table("WORKSPACES_TABLE")
    rows = table.query(KeyConditionExpression=Key("workspaceId").eq(workspace_id), ConsistentRead=True)["Items"]
    return {row["memberId"]: row["role"] for row in rows if row["item"].startswith("member#")}


def test_an_invited_person_joins_from_the_email_and_the_owner_changes_their_role(page, browser, base_url, backend, shoot, accessible):
    suffix = secrets.token_hex(4)
    owner_sub, owner_email = f"auth0|team-owner-{suffix}", f"owner-{suffix}@example.test"
    guest_sub, guest_email = f"auth0|team-guest-{suffix}", f"guest-{suffix}@example.test"

    page.goto("/")
    sign_in(page, owner_sub, owner_email, "Olivia Owner")
    page.get_by_role("link", name="Teams").click()
    expect(page.locator("#no-workspaces")).to_be_visible()
    teams = page.locator("#workspaces")
    teams.get_by_label("Workspace name").fill("Band")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#workspace-role")).to_have_text("Band: 1 member. Your role: OWNER.")
    workspace_id = page.locator("#workspace-switch").input_value()
    assert members(backend, workspace_id) == {owner_sub: "OWNER"}

    teams.get_by_label("Email").fill(guest_email)
    teams.get_by_label("Role", exact=True).select_option("MEMBER")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#status")).to_have_text(f"Invitation sent to {guest_email}.")
    expect(page.locator("#invitations")).to_contain_text(f"{guest_email} as MEMBER")
    shoot(page, "workspace-invited")
    accessible(page, "workspace-invited")

    link = eventually(lambda: invitation_link(guest_email))
    assert link and "#invitation=wsi_" in link, link
    fragment = link.split("#", 1)[1]

    # The second person, in a browser of their own, follows the link and signs in.
    other = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
    guest = other.new_page()
    guest.set_default_timeout(15_000)
    guest.goto(f"/#{fragment}")
    sign_in(guest, guest_sub, guest_email, "Gus Guest")
    expect(guest.locator("#status")).to_have_text("You joined Band as MEMBER.")
    expect(guest.locator("#workspace-role")).to_have_text("Band: 2 members. Your role: MEMBER.")
    expect(guest.locator("#invite-form")).to_be_hidden()
    assert re.search(r"/teams$", guest.url), guest.url
    shoot(guest, "workspace-joined")
    accessible(guest, "workspace-joined")
    assert members(backend, workspace_id) == {owner_sub: "OWNER", guest_sub: "MEMBER"}

    # The owner sees them and makes them a VIEWER: their next request knows.
    page.reload()
    expect(page.locator("#members")).to_contain_text(f"{guest_email}")
    page.get_by_label(f"Role of {guest_email}").select_option("VIEWER")
    expect(page.locator("#status")).to_have_text(f"{guest_email} is now VIEWER.")
    assert members(backend, workspace_id)[guest_sub] == "VIEWER"
    guest.reload()
    expect(guest.locator("#workspace-role")).to_have_text("Band: 2 members. Your role: VIEWER.")
    expect(guest.locator("#seats")).to_have_text("2 of 3 seats taken. No TEAM subscription: the free seats.")
    expect(guest.locator("#seats-form")).to_be_hidden()
    other.close()

    # The owner buys TEAM for the workspace, paid by its own Stripe customer at one seat per
    # member; the page waits for the webhook to bring it.
    expect(page.locator("#seats")).to_have_text("2 of 3 seats taken. No TEAM subscription: the free seats.")
    page.get_by_label("Most seats to pay for").fill("5")
    page.get_by_role("button", name="Subscribe to TEAM").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:8440/checkout/"))
    page.get_by_role("button", name="Pay and subscribe").click()
    page.wait_for_url(re.compile(r"/teams"))
    expect(page.locator("#seats")).to_have_text(
        "2 of 5 seats taken. TEAM (active): 2 seats billed, at most 5.", timeout=25_000
    )
    expect(page.get_by_role("button", name="Subscribe to TEAM")).to_be_hidden()
    shoot(page, "workspace-team")
    accessible(page, "workspace-team")
    row = backend.table("WORKSPACES_TABLE").get_item(Key={"workspaceId": workspace_id, "item": "workspace"})["Item"]
    assert (row["seats"], row["billedSeats"], row["subscriptionStatus"]) == (5, 2, "active"), row


def test_a_workspace_the_index_does_not_list_yet_stays_shown(page):
    """In AWS, GET /workspaces reads member-index, which may lag a join or a new workspace by a
    moment (moto's does not): the page reads the workspace it holds by id before giving it up."""
    suffix = secrets.token_hex(4)
    page.goto("/")
    sign_in(page, f"auth0|team-lag-{suffix}", f"lag-{suffix}@example.test", "Lena Lag")
    page.get_by_role("link", name="Teams").click()
    page.locator("#workspaces").get_by_label("Workspace name").fill("Lagging")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#workspace-role")).to_have_text("Lagging: 1 member. Your role: OWNER.")

    # The index has not caught up: the list is empty.
    page.route(re.compile(r".*/workspaces$"), lambda route: route.fulfill(json={"workspaces": []})
               if route.request.method == "GET" else route.continue_())
    page.reload()
    expect(page.locator("#workspace-role")).to_have_text("Lagging: 1 member. Your role: OWNER.")
    expect(page.locator("#workspace-switch")).to_have_text("Lagging (OWNER)")


def test_an_invited_member_speaks_with_the_voice_the_owner_shared(page, browser, base_url, backend, shoot, accessible):
    """The OWNER shares a voice cloned from their own samples; a person invited by email joins
    and, speaking as a member of the workspace, generates speech with it."""
    suffix = secrets.token_hex(4)
    owner_sub, owner_email = f"auth0|choir-owner-{suffix}", f"choir-owner-{suffix}@example.test"
    singer_sub, singer_email = f"auth0|choir-singer-{suffix}", f"choir-singer-{suffix}@example.test"

    page.goto("/")
    sign_in(page, owner_sub, owner_email, "Cora Conductor")
    page.get_by_role("link", name="Teams").click()
    teams = page.locator("#workspaces")
    teams.get_by_label("Workspace name").fill("Choir")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#workspace-role")).to_have_text("Choir: 1 member. Your role: OWNER.")
    workspace_id = page.locator("#workspace-switch").input_value()
    expect(page.locator("#shared-slots")).to_have_text("0 of 1 shared voice.")

    teams.get_by_label("Recordings of your voice (1 to 8)").set_input_files(str(SAMPLE))
    teams.get_by_label("Shared voice name").fill("Choir voice")
    teams.get_by_label("I consent, as stated above, to sharing my voice").check()
    page.get_by_role("button", name="Share voice").click()
    expect(page.locator("#status")).to_have_text('"Choir voice" is shared: members speak with it under Speak.')
    expect(page.locator("#shared-voices")).to_contain_text("Choir voice")
    shared = backend.query("VOICES_TABLE", f"workspace:{workspace_id}")
    assert [v["name"] for v in shared] == ["Choir voice"] and shared[0]["uploadedBy"] == owner_sub, shared
    assert backend.voices(owner_sub) == [], "the shared voice is the workspace's, not the owner's"

    teams.get_by_label("Email").fill(singer_email)
    teams.get_by_label("Role", exact=True).select_option("MEMBER")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#status")).to_have_text(f"Invitation sent to {singer_email}.")
    fragment = eventually(lambda: invitation_link(singer_email)).split("#", 1)[1]

    other = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
    singer = other.new_page()
    singer.set_default_timeout(15_000)
    singer.goto(f"/#{fragment}")
    sign_in(singer, singer_sub, singer_email, "Sam Singer")
    expect(singer.locator("#status")).to_have_text("You joined Choir as MEMBER.")
    expect(singer.locator("#shared-voices")).to_contain_text("Choir voice")
    expect(singer.locator("#share-form")).to_be_hidden()

    singer.get_by_role("link", name="Speak").click()
    singer.get_by_label("Speak as").select_option(label="A member of Choir")
    singer.get_by_label("Voice", exact=True).select_option(label="Choir voice (shared)")
    singer.get_by_role("textbox", name=re.compile(r"^Text")).fill("We sing as one.")
    singer.get_by_role("button", name="Generate").click()
    expect(singer.locator("#status")).to_have_text("Your speech is ready.", timeout=20_000)
    shoot(singer, "workspace-shared-voice")
    accessible(singer, "workspace-shared-voice")
    recordings = eventually(lambda: backend.recordings(singer_sub))
    assert len(recordings) == 1 and recordings[0]["voiceId"] == shared[0]["itemId"].removeprefix("voice#"), recordings
    assert recordings[0]["voiceName"] == "Choir voice", recordings
    other.close()
