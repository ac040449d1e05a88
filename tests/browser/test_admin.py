"""The admin area in the browser: an admin finds an account, suspends it (the person is signed
out at once), lifts the suspension, tops up the month and pages through the audit log; support
sees only the look-up and the figures, and a plain user no admin area at all. Each step checks
what the page shows and what the backend holds."""

import secrets

from playwright.sync_api import expect

from test_journey import sign_in


def admin_area(page, backend, sub, email, name, role):
    """Signs in a person an operator gave `role` and opens the Admin page."""
    backend.table("USERS_TABLE").put_item(Item={"userId": sub, "subscriptionTier": "FREE", "recordingsThisMonth": 0, "role": role})
    page.goto("/")
    sign_in(page, sub, email, name)
    page.get_by_role("link", name="Admin").click()


def find(page, email):
    admin = page.locator("#admin")
    admin.get_by_label("Email or user id").fill(email)
    admin.get_by_role("button", name="Find").click()
    expect(page.locator("#status")).to_have_text("1 account(s) found.")
    page.get_by_role("button", name=f"View the account of {email}").click()
    expect(page.locator("#admin-account-title")).to_have_text(email)


def test_an_admin_suspends_lifts_tops_up_and_reads_the_audit_log(page, browser, base_url, backend, shoot, accessible):
    suffix = secrets.token_hex(4)
    admin_sub, admin_email = f"auth0|admin-page-{suffix}", f"admin-{suffix}@example.test"
    user_sub, user_email = f"auth0|admin-target-{suffix}", f"target-{suffix}@example.test"

    # The person an operator will help, signed in in a browser of their own.
    other = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
    person = other.new_page()
    person.goto("/")
    sign_in(person, user_sub, user_email, "Tom Target")
    expect(person.locator("#who-email")).to_have_text(user_email)
    expect(person.get_by_role("link", name="Admin")).to_be_hidden()

    admin_area(page, backend, admin_sub, admin_email, "Ann Admin", "admin")
    expect(page.locator("#admin-role")).to_contain_text("admin: look-up-users, view-stats, view-audit, suspend, grant-usage")
    expect(page.locator("#stats")).to_contain_text("Monthly recurring revenue")

    find(page, user_email)
    facts = page.locator("#admin-account-facts")
    expect(facts).to_contain_text(user_sub)
    expect(facts).to_contain_text("active")
    shoot(page, "admin-account")
    accessible(page, "admin-account")

    admin = page.locator("#admin")
    admin.get_by_label("Reason (kept in the audit log)").first.fill("chargeback under review")
    admin.get_by_role("button", name="Suspend").click()
    expect(page.locator("#status")).to_have_text(f"{user_email} is suspended and signed out.")
    expect(facts).to_contain_text("chargeback under review")
    row = backend.user(user_sub)
    assert "chargeback under review" in row["suspension"] and admin_sub in row["suspension"], row
    assert backend.sessions(user_sub) == [], "the person's sessions ended"
    person.reload()
    expect(person.get_by_role("button", name="Sign in")).to_be_visible()

    admin.get_by_label("Reason (kept in the audit log)").first.fill("resolved with the bank")
    admin.get_by_role("button", name="Lift the suspension").click()
    expect(page.locator("#status")).to_have_text(f"{user_email} may sign in again.")
    expect(facts).to_contain_text("active")
    assert "suspension" not in backend.user(user_sub)

    admin.get_by_label("Recordings to add").fill("5")
    admin.locator("#grant-reason").fill("goodwill after the outage")
    admin.get_by_role("button", name="Top up").click()
    expect(page.locator("#status")).to_have_text(f"5 recording(s) added to {user_email}'s month.")
    grants = {k: v for k, v in backend.user(user_sub).items() if k.startswith("grant_")}
    assert list(grants.values()) == [5], grants
    expect(facts).to_contain_text("0 of 15")
    other.clear_cookies()  # the IdP's own session too: a full sign-in again
    person.reload()
    sign_in(person, user_sub, user_email, "Tom Target")
    expect(person.locator("#usage")).to_contain_text("0 of 15 recordings")
    other.close()

    # The audit log, newest first, ten at a time. This test wrote twelve entries: the figures,
    # the look-up and the view, twice each; the suspension, its lifting and the top-up, each
    # followed by a view.
    page.reload()
    find(page, user_email)
    audit = page.locator("#audit li")
    expect(audit).to_have_count(10)
    expect(page.locator("#audit")).to_contain_text(f"grant-usage on {user_sub}: goodwill after the outage")
    expect(page.locator("#audit")).to_contain_text(f"suspend on {user_sub}: chargeback under review")
    page.get_by_role("button", name="Older entries").click()
    expect(audit.nth(10)).to_contain_text(f"{admin_sub} (admin) lookup")
    shoot(page, "admin-audit")
    accessible(page, "admin-audit")


def test_support_sees_the_look_up_and_the_figures_only(page, backend, accessible):
    suffix = secrets.token_hex(4)
    sub, email = f"auth0|support-page-{suffix}", f"support-{suffix}@example.test"
    admin_area(page, backend, sub, email, "Sam Support", "support")
    expect(page.locator("#admin-role")).to_have_text("Signed in as support: look-up-users, view-stats.")
    expect(page.locator("#stats")).to_contain_text("Users")
    expect(page.locator("#admin-audit")).to_be_hidden()

    find(page, email)
    expect(page.locator("#suspend-form")).to_be_hidden()
    expect(page.locator("#grant-form")).to_be_hidden()
    accessible(page, "admin-support")

    # What the page does not offer, the API refuses too.
    status = page.evaluate(
        """async (path) => {
            const session = await (await fetch('/auth/session')).json();
            const response = await fetch(path, {
                method: 'POST', headers: {'content-type': 'application/json', 'x-csrf-token': session.csrfToken},
                body: JSON.stringify({ reason: 'trying' }),
            });
            return response.status;
        }""",
        f"/admin/users/{sub.replace('|', '%7C')}/suspend",
    )
    assert status == 403
    assert "suspension" not in backend.user(sub)
