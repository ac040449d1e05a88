"""The web client's whole journey in headless Chromium, as a new user takes it: sign in through
the IdP stand-in's form, see the plan, generate and play speech, keep a library, clone a voice
and use it, upgrade through Checkout, open the billing portal, see invoices, sign out. Each step
checks what the page shows and what the backend holds."""

import contextlib
import datetime
import http.server
import json
import os
import pathlib
import re
import secrets
import threading
import time
import urllib.request

from boto3.dynamodb.conditions import Key
from playwright.sync_api import expect

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "local" / "standins" / "sample.mp3"


def eventually(check, timeout=20.0, every=0.3):
    """check() until it returns something truthy (the backend after an asynchronous step)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


def elevenlabs_fault(fault):
    """A voice id, new to the ElevenLabs stand-in, whose speech meets `fault` (its control
    endpoint, as the Rust harness's `ElevenLabsStandIn` uses it)."""
    voice = f"{fault}-voice-{secrets.token_hex(4)}"
    request = urllib.request.Request(
        os.environ["ELEVENLABS_API_BASE"] + "_test/faults",
        data=json.dumps({"target": voice, "fault": fault}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200
    return voice


def loaded(page, player):
    """Whether an <audio> has loaded its source's metadata (the page's CSP allows no
    wait_for_function, which evaluates a string)."""
    return page.evaluate(f"document.getElementById('{player}').readyState") >= 1


def tab_to(page, target, limit=60, key="Tab"):
    """Press Tab (or `key`) until `target` has the focus: the keyboard alone reaches it."""
    for _ in range(limit):
        page.keyboard.press(key)
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{limit} presses of {key} never reached {target}")


def sign_in(page, sub, email, name, keyboard=False):
    if keyboard:
        tab_to(page, page.get_by_role("button", name="Sign in"))
        page.keyboard.press("Enter")
    else:
        page.get_by_role("button", name="Sign in").click()
    # Sign-in is limited per client address (20 a minute): after a burst of them from this
    # machine (schemathesis, a previous run), wait as the answer says and try again.
    page.wait_for_load_state()
    if "/auth/login" in page.url and "RATE_LIMITED" in page.content():
        wait = json.loads(page.locator("body").inner_text())["error"]["retryAfter"]
        time.sleep(wait + 1)
        page.reload()
    # The IdP stand-in's form (Auth0's hosted login in AWS).
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:4400/interaction/"))
    page.get_by_label("sub").fill(sub)
    page.get_by_label("email", exact=True).fill(email)
    page.get_by_label("name").fill(name)
    if keyboard:
        page.get_by_label("name").press("Enter")
    else:
        page.get_by_role("button", name="Sign in").click()


def generate(page, text):
    page.get_by_role("textbox", name=re.compile(r"^Text")).fill(text)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status")).to_have_text("Your speech is ready.")


def test_the_whole_journey(page, base_url, backend, shoot, accessible):
    run = secrets.token_hex(4)
    sub, email = f"auth0|browser-{run}", f"browser-{run}@example.test"
    user_id = sub

    # -- signed out: the page offers sign-in and nothing else
    page.goto("/")
    expect(page.get_by_role("heading", name="Speech from text, in your own voice")).to_be_visible()
    expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()
    shoot(page, "signed-out")
    accessible(page, "signed-out")

    # -- sign in through the IdP: back on the app, signed in as FREE
    sign_in(page, sub, email, "Browser Tester")
    page.wait_for_url(f"{base_url}/")
    expect(page.locator("#who-email")).to_have_text(email)
    expect(page.locator("#who-tier")).to_have_text("FREE")
    expect(page.locator("#usage")).to_contain_text("0 of 10 recordings used this month")
    user = backend.user(user_id)
    assert user["email"] == email and user["subscriptionTier"] == "FREE", user
    assert user.get("stripeCustomerId", "").startswith("cus_"), "a new user gets a Stripe customer"
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sid"]["httpOnly"] and cookies["sid"]["secure"] and cookies["sid"]["sameSite"] == "Lax"
    assert "sid=" not in page.evaluate("document.cookie"), "the session cookie is not readable by script"
    assert len(backend.sessions(user_id)) == 1
    # No secret reaches the page: the HTML and the script hold no key, token or session id.
    html = page.content()
    assert cookies["sid"]["value"] not in html and "sk_test" not in html and "xi-" not in html

    # -- speak: below PREMIUM the sliders are locked with an upgrade prompt, and so are presets
    expect(page.locator("#sliders-locked")).to_be_visible()
    expect(page.locator("#sliders-locked").get_by_role("link", name="Upgrade")).to_be_visible()
    expect(page.get_by_label("Stability")).to_be_disabled()
    expect(page.locator("#preset option", has_text="Narrator (upgrade to use)")).to_be_disabled()
    shoot(page, "speak-free")
    accessible(page, "speak-free")

    # Every state change carries the CSRF token: watch the requests the page makes.
    state_changes = []
    page.on(
        "request",
        lambda r: r.method in ("POST", "PATCH", "DELETE") and r.url.startswith(base_url) and state_changes.append(r),
    )

    page.get_by_label("Preset", exact=True).select_option("calm")
    generate(page, f"Hello from the browser test {run}.")
    expect(page.locator("#usage")).to_contain_text("1 of 10 recordings used this month")
    recordings = backend.recordings(user_id)
    assert len(recordings) == 1 and recordings[0]["presetUsed"] == "calm", recordings
    assert backend.has_object(recordings[0]["s3Key"])
    assert int(backend.user(user_id)["recordingsThisMonth"]) == 1

    # -- play: the speech came streamed (POST /tts/stream into Media Source Extensions)
    player = page.locator("#player")
    expect(player).to_have_attribute("src", re.compile(r"^blob:"))
    assert [r.url for r in state_changes] == [f"{base_url}/tts/stream"]
    assert eventually(lambda: loaded(page, "player")), "the audio loads"
    assert page.evaluate("document.getElementById('player').duration") > 0
    shoot(page, "speak-generated")
    accessible(page, "speak-generated")

    # -- library: paged (5 a page), favourite, delete
    for i in range(5):
        generate(page, f"Library entry {i} of run {run}.")
    assert len(backend.recordings(user_id)) == 6
    page.get_by_role("link", name="Library").click()
    expect(page.locator("#recordings li")).to_have_count(5)
    expect(page.get_by_role("button", name="Show more")).to_be_visible()
    page.get_by_role("button", name="Show more").click()
    expect(page.locator("#recordings li")).to_have_count(6)
    expect(page.get_by_role("button", name="Show more")).to_be_hidden()

    newest = page.locator("#recordings li").first
    newest_id = newest.get_attribute("data-id")
    newest.get_by_role("button", name=re.compile("^Favourite")).click()
    expect(page.locator(f'#recordings li[data-id="{newest_id}"]').get_by_role("button", name=re.compile("^Unfavourite"))).to_be_visible()
    stored = {r["recordingId"]: r for r in backend.recordings(user_id)}
    assert stored[newest_id]["isFavorite"] is True

    page.locator(f'#recordings li[data-id="{newest_id}"]').get_by_role("button", name=re.compile("^Play")).click()
    # Through the CloudFront stand-in, with a signed URL (the bucket itself stays private).
    expect(page.locator("#library-player")).to_have_attribute("src", re.compile(r"^http://127\.0\.0\.1:8450/.+\?Expires=\d+&Signature=[^&]+&Key-Pair-Id=KLOCALAUDIOKEY$"))
    assert eventually(lambda: loaded(page, "library-player")), "the audio loads"

    oldest = page.locator("#recordings li").last
    oldest_id = oldest.get_attribute("data-id")
    oldest_key = stored[oldest_id]["s3Key"]
    page.once("dialog", lambda dialog: dialog.accept())
    oldest.get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.locator("#recordings li")).to_have_count(5)
    assert oldest_id not in {r["recordingId"] for r in backend.recordings(user_id)}
    assert eventually(lambda: not backend.has_object(oldest_key)), "the audio goes with the recording"

    page.get_by_label("Favourites only").check()
    expect(page.locator("#recordings li")).to_have_count(1)
    shoot(page, "library")
    accessible(page, "library")

    # -- clone a voice from an uploaded and a recorded sample (each a presigned PUT straight to
    #    storage), then use it
    page.get_by_role("link", name="Voices").click()
    expect(page.locator("#consent-text")).to_contain_text("my own")
    page.get_by_role("button", name="Record a sample").click()
    expect(page.locator("#status")).to_contain_text("Recording")
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#recorded")).to_have_text("1 recorded sample(s)")
    expect(page.locator("#status")).to_have_text("Sample recorded.")
    expect(page.get_by_role("button", name="Record a sample")).to_be_visible()
    page.get_by_label("Samples").set_input_files(str(SAMPLE))
    page.get_by_label("Name", exact=True).fill("My voice")
    page.get_by_label("I accept the statement above").check()
    page.get_by_role("button", name="Clone voice").click()
    expect(page.locator("#status")).to_contain_text('Your voice "My voice" is ready')
    expect(page.locator("#own-voices li")).to_have_count(1)
    voices = backend.voices(user_id)
    assert len(voices) == 1 and voices[0]["name"] == "My voice", voices
    assert len(voices[0]["sampleIds"]) == 2, "the uploaded and the recorded sample"
    assert all(backend.has_object(key) for key in voices[0]["sampleKeys"])
    shoot(page, "voices")
    accessible(page, "voices")

    page.get_by_role("link", name="Speak").click()
    page.get_by_label("Voice", exact=True).select_option(label="My voice (your voice)")
    generate(page, f"Now in my own voice, run {run}.")
    clone_ids = {voices[0]["itemId"].removeprefix("voice#"), voices[0]["elevenLabsVoiceId"]}
    used = [r for r in backend.recordings(user_id) if r.get("voiceId") in clone_ids]
    assert len(used) == 1, "the generation used the cloned voice"

    # -- upgrade through Checkout (the stand-in's page); the new tier shows without a reload
    page.get_by_role("link", name="Plan and billing").click()
    expect(page.locator(".plan.current")).to_contain_text("Free")
    shoot(page, "plans-free")
    accessible(page, "plans-free")
    page.get_by_role("button", name="Upgrade to Basic").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:8440/checkout/"))
    shoot(page, "checkout")
    page.get_by_role("button", name="Pay and subscribe").click()
    page.wait_for_url(f"{base_url}/billing/success")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#who-tier")).to_have_text("BASIC", timeout=30_000)
    assert page.evaluate("window.sameDocument === true"), "the tier changed without a reload"
    expect(page.locator(".plan.current")).to_contain_text("Basic")
    expect(page).to_have_url(f"{base_url}/account")
    assert backend.user(user_id)["subscriptionTier"] == "BASIC"
    subscriptions = backend.subscriptions(user_id)
    assert len(subscriptions) == 1 and subscriptions[0]["status"] == "active", subscriptions
    expect(page.locator("#usage")).to_contain_text("of 100 recordings used this month")
    page.get_by_role("link", name="Speak").click()
    expect(page.locator("#preset option", has_text="Narrator")).to_be_enabled()
    page.get_by_role("link", name="Plan and billing").click()

    # -- invoices: the first one, for the subscription
    expect(page.locator("#invoices li")).to_have_count(1)
    expect(page.locator("#invoices li")).to_contain_text("9.99 USD")
    shoot(page, "plans-basic")
    accessible(page, "plans-basic")

    # -- overage: allowed up to a cap of the subscriber's own, held by the backend
    expect(page.locator(".plan.current")).to_contain_text("$0.10 a generation")
    page.get_by_label("Monthly overage cap (USD)").fill("5")
    page.get_by_role("button", name="Save cap").click()
    expect(page.locator("#overage-note")).to_contain_text("(50 generations)")
    assert int(backend.user(user_id)["overageCapCents"]) == 500

    # -- the billing portal (the stand-in's page), and back
    page.get_by_role("button", name="Manage billing").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:8440/portal/"))
    expect(page.get_by_text(user["stripeCustomerId"])).to_be_visible()
    page.get_by_role("link", name="Return to the app").click()
    page.wait_for_url(f"{base_url}/account")
    expect(page.locator("#who-tier")).to_have_text("BASIC")

    # -- a subscriber changes plan in place: PREMIUM now, and the sliders unlock
    page.get_by_role("button", name="Switch to Premium").click()
    expect(page.locator("#who-tier")).to_have_text("PREMIUM", timeout=30_000)
    assert eventually(lambda: backend.user(user_id)["subscriptionTier"] == "PREMIUM")
    assert len(backend.subscriptions(user_id)) == 1, "the same subscription, changed"
    page.get_by_role("link", name="Speak").click()
    expect(page.locator("#sliders-locked")).to_be_hidden()
    expect(page.get_by_label("Stability")).to_be_enabled()
    page.get_by_label("Stability").fill("0.8")
    generate(page, f"Premium sliders, run {run}.")
    premium = [r for r in backend.recordings(user_id) if r.get("text") == f"Premium sliders, run {run}."]
    assert json.loads(premium[0]["audioConfig"])["stability"] == 0.8, premium
    shoot(page, "speak-premium")
    accessible(page, "speak-premium")
    page.get_by_role("link", name="Plan and billing").click()

    # Every state change the page made carried the session's CSRF token.
    assert state_changes, "the journey made state changes"
    for request in state_changes:
        assert request.headers.get("x-csrf-token"), f"{request.method} {request.url} without a CSRF token"

    # -- sign out: the session ends everywhere and the page is back to sign-in
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base_url)}/"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert eventually(lambda: not backend.sessions(user_id)), "the session is gone from the store"
    assert "sid" not in {c["name"] for c in page.context.cookies()}
    shoot(page, "signed-out-again")
    accessible(page, "signed-out-again")


def test_keyboard_alone_reaches_sign_in(page):
    """Sign-in is the first thing the keyboard reaches, and every field of the app is labelled."""
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "sign-in"
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
             .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
             .map((e) => e.id)"""
    )
    assert unlabelled == []


def test_the_keyboard_alone_signs_in_speaks_keeps_and_signs_out(page, base_url, backend):
    """No mouse: Tab reaches each control and Enter or Space works it, the IdP's form included."""
    run = secrets.token_hex(4)
    sub, email = f"auth0|keyboard-{run}", f"keyboard-{run}@example.test"
    # A support operator, so the admin area is on the way too.
    backend.table("USERS_TABLE").put_item(Item={"userId": sub, "subscriptionTier": "FREE", "role": "support"})
    page.goto("/")
    sign_in(page, sub, email, "Keyboard Tester", keyboard=True)
    page.wait_for_url(f"{base_url}/")
    expect(page.locator("#who-email")).to_have_text(email)

    text = f"Typed, not clicked, run {run}."
    tab_to(page, page.get_by_role("textbox", name=re.compile(r"^Text")))
    page.keyboard.type(text)
    tab_to(page, page.get_by_role("button", name="Generate"))
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Your speech is ready.")
    assert [r["text"] for r in backend.recordings(sub)] == [text]

    tab_to(page, page.get_by_role("link", name="Library"))
    page.keyboard.press("Enter")
    expect(page.locator("#recordings li")).to_have_count(1)
    tab_to(page, page.locator("#recordings li").get_by_role("button", name=re.compile("^Favourite")))
    page.keyboard.press("Space")
    expect(page.locator("#recordings li").get_by_role("button", name=re.compile("^Unfavourite"))).to_be_visible()
    assert backend.recordings(sub)[0]["isFavorite"] is True

    # A team, and one's data, by keyboard too.
    tab_to(page, page.get_by_role("link", name="Teams"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("textbox", name="Workspace name"))
    page.keyboard.type("Keyboard club")
    tab_to(page, page.get_by_role("button", name="Create workspace"))
    page.keyboard.press("Enter")
    expect(page.locator("#workspace-role")).to_have_text("Keyboard club: 1 member. Your role: OWNER.")
    memberships = backend.table("WORKSPACES_TABLE").query(
        IndexName="member-index", KeyConditionExpression=Key("memberId").eq(sub)
    )["Items"]
    assert [(m["workspaceName"], m["role"]) for m in memberships] == [("Keyboard club", "OWNER")]
    tab_to(page, page.get_by_role("link", name="Account"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("button", name="Download my data"))
    with page.expect_download() as downloading:
        page.keyboard.press("Enter")
    exported = json.loads(open(downloading.value.path()).read())
    assert [r["text"] for r in exported["recordings"]] == [text]
    tab_to(page, page.get_by_role("textbox", name="Display name"), key="Shift+Tab")  # the form above
    page.keyboard.press("Control+A")
    page.keyboard.type("Keys Only")
    tab_to(page, page.get_by_role("button", name="Save profile"))
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Your profile was saved.")
    assert backend.user(sub)["name"] == "Keys Only"

    tab_to(page, page.get_by_role("link", name="Admin"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("textbox", name="Email or user id"))
    page.keyboard.type(email)
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("button", name=f"View the account of {email}"))
    page.keyboard.press("Enter")
    expect(page.locator("#admin-account-facts")).to_contain_text(sub)

    tab_to(page, page.get_by_role("button", name="Sign out"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert eventually(lambda: not backend.sessions(sub)), "the session is gone from the store"


def test_a_stream_cut_midway_says_so_and_keeps_nothing(page, base_url, backend, accessible):
    """Speech that stops halfway: the page says so, and the backend keeps no recording and gives
    the month's unit back."""
    run = secrets.token_hex(4)
    sub, email = f"auth0|cut-{run}", f"cut-{run}@example.test"
    page.goto("/")
    sign_in(page, sub, email, "Cut Tester")
    page.wait_for_url(f"{base_url}/")
    expect(page.locator("#usage")).to_contain_text("0 of 10 recordings used this month")
    # The ElevenLabs stand-in is told to drop the connection halfway through this voice's speech;
    # the page offers it as it would any voice, once its own list is in (filling the list replaces
    # the options).
    voice = elevenlabs_fault("cut")
    expect(page.locator("#voice option").first).to_be_attached()
    page.locator("#voice").evaluate("(select, id) => select.add(new Option('Cut off', id))", voice)
    page.get_by_label("Voice", exact=True).select_option(voice)
    page.get_by_role("textbox", name=re.compile(r"^Text")).fill("This will not arrive whole.")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#problem")).to_have_text(re.compile("cut off before the end"))
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    accessible(page, "stream-cut")
    assert backend.recordings(sub) == []
    assert eventually(lambda: int(backend.user(sub).get("recordingsThisMonth", 0)) == 0), "the unit is given back"


def test_a_user_out_of_recordings_is_told_and_shown_the_plans(page, base_url, backend, accessible):
    """The month's quota spent: the refusal names it, offers the plans, and nothing is made."""
    run = secrets.token_hex(4)
    sub, email = f"auth0|spent-{run}", f"spent-{run}@example.test"
    page.goto("/")
    sign_in(page, sub, email, "Spent Tester")
    page.wait_for_url(f"{base_url}/")
    # The row as ten generations this month leave it.
    period = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")
    backend.table("USERS_TABLE").update_item(
        Key={"userId": sub},
        UpdateExpression="SET usagePeriod = :period, recordingsThisMonth = :used",
        ExpressionAttributeValues={":period": period, ":used": 10},
    )
    page.get_by_role("textbox", name=re.compile(r"^Text")).fill("One more, please.")
    page.get_by_role("button", name="Generate").click()
    problem = page.get_by_role("alert")
    expect(problem).to_contain_text("used all 10 recordings of the FREE plan this month")
    expect(page.locator("#result")).to_be_hidden()
    accessible(page, "limit-reached")
    assert backend.recordings(sub) == []
    assert int(backend.user(sub)["recordingsThisMonth"]) == 10
    problem.get_by_role("link", name="See the plans").click()
    expect(page).to_have_url(f"{base_url}/account")
    expect(page.locator(".plan.current")).to_contain_text("Free")
    # The banner says the month's allowance is used, from the session as the backend holds it.
    page.reload()
    expect(page.get_by_role("status").filter(has_text="100% of your monthly recordings")).to_be_visible()
    accessible(page, "usage-alert")


def test_the_docs_page_lists_every_operation(page, shoot, accessible):
    """/docs renders openapi.yaml (served as /openapi.json) with no third-party code."""
    spec = page.request.get("/openapi.json").json()
    operations = sum(1 for item in spec["paths"].values() for method in item if method in ("get", "post", "patch", "delete"))
    page.goto("/docs")
    expect(page.locator("details.op")).to_have_count(operations)
    page.get_by_label("Filter operations").fill("POST /tts/stream")
    expect(page.locator("details.op:visible")).to_have_count(1)
    page.locator("details.op:visible summary").click()
    # The body is a shared schema ($ref), shown resolved.
    expect(page.locator("#generateStreamed")).to_contain_text("voiceSettings")
    shoot(page, "docs")
    accessible(page, "docs")


@contextlib.contextmanager
def client_served_on(port, api_base):
    """The web client deployed as static files on another origin of the same site (as a CDN
    beside the API in AWS): a plain file server on 127.0.0.1:`port` (0: any free one), with the
    api-base meta naming the API and no stream-base (speech comes whole from POST /tts). Yields
    the origin."""
    web = pathlib.Path(__file__).resolve().parents[2] / "web"
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

    class Static(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = web / (self.path.split("?")[0].lstrip("/") or "index.html")
            if not path.is_file() or path.parent != web:
                path = web / "index.html"
            body = path.read_text()
            if path.name == "index.html":
                body = body.replace('<meta name="api-base" content="">', f'<meta name="api-base" content="{api_base}">')
                body = body.replace('<meta name="stream-base" content="api">', '<meta name="stream-base" content="">')
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", types.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Static)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_on_another_origin_uses_the_api_with_cors_and_credentials(page, base_url, backend):
    """In AWS the client and the API are different origins of one site: the API grants the
    listed origins CORS with credentials, so the cookie and the CSRF header go across; an
    origin not listed gets no answer it can read."""
    run = secrets.token_hex(4)
    sub, email = f"auth0|cors-{run}", f"cors-{run}@example.test"
    page.goto("/")
    sign_in(page, sub, email, "Cors Tester")
    page.wait_for_url(f"{base_url}/")

    # 5173 is in ALLOWED_ORIGINS locally (a dev server's port); any other port is not.
    with client_served_on(5173, base_url) as allowed:
        page.goto(f"{allowed}/")
        expect(page.locator("#who-email")).to_have_text(email)
        generate(page, f"Across origins, run {run}.")
        # Whole (POST /tts), as a deployment without the stream's domain does, through the CDN.
        expect(page.locator("#player")).to_have_attribute("src", re.compile(r"^http://127\.0\.0\.1:8450/"))
        assert eventually(lambda: loaded(page, "player")), "the audio loads"
    assert [r for r in backend.recordings(sub) if r.get("text") == f"Across origins, run {run}."]

    with client_served_on(0, base_url) as foreign:
        page.goto(f"{foreign}/")
        expect(page.locator("#problem")).to_be_visible()
        expect(page.locator("#who-email")).to_be_hidden()
