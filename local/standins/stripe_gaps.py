"""Stripe-gaps stand-in (our own, local use only): fills what localstripe lacks and passes
everything else through to it, so the backend talks to one Stripe base URL.

Added here:
  POST /v1/checkout/sessions             subscription-mode Checkout Sessions (Idempotency-Key honoured;
                                         the licensed line item's quantity becomes the subscription's;
                                         `expires_at` between 30 minutes and 24 hours ahead, else
                                         30 minutes)
  GET  /v1/checkout/sessions             listed, newest first, by `customer` and `status`
  GET  /v1/checkout/sessions/{id}        `status` open, complete or expired (past `expires_at`)
  POST /v1/checkout/sessions/{id}/expire an open session can no longer be paid (400 otherwise)
  DELETE /v1/customers/{id}              as Stripe: the customer's open subscriptions are cancelled
                                         first, then the customer is deleted (in localstripe); GET
                                         then answers {"id", "deleted": true}
  GET  /v1/invoices, /v1/invoices/{id}   passed through in the current API's shape: no
                                         `payment_intent` or `charge` on the invoice, whose payments
                                         are listed at GET /v1/invoice_payments?invoice=
  POST /v1/refunds                       passed through, but as Stripe: a repeated Idempotency-Key
                                         answers the first refund, and a PaymentIntent refunded in
                                         full is refused
  POST /v1/billing_portal/sessions       Billing Portal sessions
  POST /_config/webhooks/{id}            registers a webhook here AND in localstripe
  POST /_test/checkout/{id}/complete     "pays" a session: a card (form field `card`, default
                                         4242…) becomes the customer's default payment method,
                                         the subscription is created in localstripe (which then
                                         sends its own signed webhooks) and a signed
                                         checkout.session.completed is sent from here
  POST /v1/subscriptions/{id}            translated to localstripe's older parameters (items[0][price]
                                         -> items[0][plan], proration_behavior -> prorate), passed
                                         through, then a signed customer.subscription.updated, which
                                         localstripe never sends. With proration_behavior=always_invoice
                                         and payment_behavior=pending_if_incomplete, as Stripe: the
                                         prorated difference (new minus old price, for the rest of the
                                         period) is charged to the default card at once (Stripe
                                         invoices it; localstripe's invoices always add the next
                                         period, so the stand-in charges a PaymentIntent); paid, the
                                         change applies; declined, the subscription stays as it was and
                                         carries `pending_update`
  GET  /_test/subscriptions/{id}/charges those charges
  GET  /v1/subscriptions/{id}            passed through, with `schedule` (the schedule attached here)
  POST /v1/subscription_schedules        from_subscription: one phase, the current price until the
                                         period ends
  GET  /v1/subscription_schedules/{id}
  POST /v1/subscription_schedules/{id}   replaces the phases (phases[n][items][0][price],
                                         phases[n][start_date] / [end_date] / [duration][interval] and
                                         [interval_count]), end_behavior
  POST /v1/subscription_schedules/{id}/release
  POST /_test/subscription_schedules/{id}/advance
                                         time passes to the next phase: its price is applied to the
                                         subscription (no proration) and the update is signed and sent
  GET  /_test/subscriptions/{id}/updates the parameters of every update of that subscription, as received
  POST /v1/billing/meters                Billing Meters (event_name, default_aggregation[formula] sum or
  GET  /v1/billing/meters                count, display_name); an event name belongs to one meter
  POST /v1/billing/meter_events          as Stripe documents them: the timestamp within the past 35 days
                                         and at most 5 minutes ahead (else 400), a repeated Idempotency-Key
                                         answers the first response, and an identifier already counted
                                         (here, for as long as the stand-in runs; Stripe: at least 24
                                         hours) is accepted and not counted again. An event name no meter
                                         has is refused (Stripe accepts it and reports the error later)
  GET  /v1/billing/meters/{id}/event_summaries
                                         customer, start_time, end_time: the aggregated value of the
                                         customer's events in [start_time, end_time)
  POST /v1/prices                        metered prices (recurring[usage_type]=metered, recurring[meter],
  GET  /v1/prices/{id}                   unit_amount): localstripe's subscriptions hold one item, so a
  POST /v1/subscription_items            metered item is kept here, shown after the licensed one in
                                         every subscription read here, added by Checkout (a metered
                                         line item, no quantity), by POST /v1/subscription_items, by
                                         an update's items[n][price] or a schedule phase, removed by
                                         items[n][deleted]
  POST /_test/subscriptions/{id}/end_period
                                         time passes to the period's end (as a Stripe test clock
                                         would): the renewal invoice is made and paid, the licensed
                                         price's next period plus a usage line, the metered price's
                                         unit amount times what its meter counted for the customer
                                         since the period began (or the last end_period)
  GET  /_test/meter_events               every event counted (?customer= for one customer's)
  POST /_test/meter_events/fail          the next N meter events (form field `count`) of one customer
                                         (`customer`) answer 500
  POST /_test/meter_events/drop          forgets the event `identifier` (as if it never arrived)
Everything else is proxied to localstripe unchanged.

Every /v1 request the backend sends is first checked against Stripe's contract as the official
SDK states it (local/contracts/stripe_contract.py): a path Stripe does not have, an unknown or
mistyped parameter, or a Stripe-Version other than the one the contract is for is answered as
Stripe answers it (400 invalid_request_error, `parameter_unknown` / `parameter_invalid`), and
every check is appended to the contract log (--contract-log) for the report at the end of
`make test`. The tests' own setup speaks localstripe's older API and says so with the header
`Test-Setup: localstripe`; it is not checked, nor is a request without a key (Stripe answers
401 before it reads anything else).
"""

import argparse
import asyncio
import hashlib
import hmac
import html
import json
import pathlib
import secrets
import sys
import time

import aiohttp
from aiohttp import web

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "contracts"))
from stripe_contract import Contract, fields_of  # noqa: E402

SETUP_HEADER = "Test-Setup"


def contract_check(contract, log_path):
    """The middleware that holds the backend's requests to Stripe's contract."""

    @web.middleware
    async def check(request, handler):
        if not request.path.startswith("/v1/") or SETUP_HEADER in request.headers:
            return await handler(request)
        if "Authorization" not in request.headers:
            # Stripe refuses an unauthenticated request (401) before it reads anything else:
            # localstripe does the same. (The health check's reachability probe is one.)
            return await handler(request)
        body = await request.read()
        fields = fields_of(request.query_string, body, request.headers.get("Content-Type"))
        problems = contract.check(request.method, request.path, fields)
        version = request.headers.get("Stripe-Version")
        if version != contract.version:
            problems.insert(0, f"{request.method} {request.path}: Stripe-Version {version!r}, the contract is {contract.version}")
        route = contract.route(request.method, request.path)
        record = {"call": f"{request.method} {route.template if route else request.path}", "problems": problems}
        if log_path:
            with open(log_path, "a") as log:
                log.write(json.dumps(record) + "\n")
        if problems:
            code = "parameter_unknown" if "unknown parameter" in problems[0] else "parameter_invalid"
            error = {"type": "invalid_request_error", "code": code, "message": "; ".join(problems)}
            return web.json_response({"error": error}, status=400)
        return await handler(request)

    return check


def make_app(localstripe, public, contract_log=None):
    sessions = {}
    portals = {}
    by_idempotency_key = {}
    webhooks = {}
    schedules = {}
    schedule_of = {}  # subscription id -> schedule id
    updates = {}  # subscription id -> the parameters of every update, as received
    refunds_by_key = {}  # Idempotency-Key -> the refund it made
    refunded = set()  # PaymentIntents refunded in full
    refunding = asyncio.Lock()
    deleted_customers = set()  # GET answers them as Stripe does: {"id", "deleted": true}
    charges = {}  # subscription id -> the charges made for changes that apply once paid
    meters = {}  # meter id -> meter
    meter_events = []  # counted, in arrival order
    meter_identifiers = set()
    meter_answers = {}  # Idempotency-Key -> the first answer
    meter_failures = {}  # customer -> how many of its meter events still fail (500)
    prices = {}  # price id -> metered price (localstripe's plans are the licensed prices)
    metered = {}  # subscription id -> its metered item (localstripe's subscriptions hold one item)
    item_answers = {}  # Idempotency-Key -> the subscription item it added
    billed_until = {}  # subscription id -> the end of the last period invoiced here
    usage_lines = {}  # invoice item id -> (usage quantity, metered price id)

    async def stripe(method, path, data=None, auth=None):
        headers = {"Authorization": auth} if auth else {}
        async with aiohttp.ClientSession() as http:
            async with http.request(method, f"{localstripe}{path}", data=data, headers=headers) as r:
                body = await r.read()
                return r.status, body

    async def send_event(kind, obj):
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": obj},
        }
        payload = json.dumps(event).encode()
        for url, secret in list(webhooks.values()):
            signed = hmac.new(secret.encode(), b"%d.%s" % (event["created"], payload), hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "Stripe-Signature": f"t={event['created']},v1={signed}"}
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(url, data=payload, headers=headers) as r:
                        await r.read()
            except aiohttp.ClientError:
                pass  # that receiver is gone; Stripe would retry, the tests don't need it to

    async def create_session(request):
        form = await request.post()
        key = request.headers.get("Idempotency-Key")
        if key and key in by_idempotency_key:
            return web.json_response(sessions[by_idempotency_key[key]])
        missing = [f for f in ("customer", "line_items[0][price]", "success_url", "cancel_url") if not form.get(f)]
        if form.get("mode") != "subscription" or missing:
            return web.json_response({"error": {"message": f"mode=subscription and {missing} are required"}}, status=400)
        licensed, metered_price, quantity = [], None, "1"
        for n in range(20):
            price = form.get(f"line_items[{n}][price]")
            if price is None:
                break
            if price in prices:
                if form.get(f"line_items[{n}][quantity]") is not None:
                    return invalid(f"line_items[{n}][quantity]: a metered price takes no quantity", param=f"line_items[{n}][quantity]")
                metered_price = price
            else:
                licensed.append(price)
                quantity = form.get(f"line_items[{n}][quantity]", "1")
        if len(licensed) != 1:
            return invalid("the stand-in makes subscriptions of one licensed price (and at most one metered one)")
        session_id = "cs_test_" + secrets.token_hex(12)
        now = int(time.time())
        expires_at = int(form.get("expires_at") or now + 1800)
        if not now + 1800 - 60 <= expires_at <= now + 86400:
            return web.json_response(
                {"error": {"message": "expires_at must be 30 minutes to 24 hours from now", "param": "expires_at"}},
                status=400,
            )
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "customer": form["customer"],
            "client_reference_id": form.get("client_reference_id"),
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "success_url": form["success_url"],
            "cancel_url": form["cancel_url"],
            "subscription": None,
            "url": f"{public}/checkout/{session_id}",
            "created": now,
            "expires_at": expires_at,
            "_price": licensed[0],
            "_quantity": quantity,
            "_metered": metered_price,
            "_subscription_metadata": {
                k[len("subscription_data[metadata]["):-1]: v
                for k, v in form.items()
                if k.startswith("subscription_data[metadata][")
            },
        }
        sessions[session_id] = session
        if key:
            by_idempotency_key[key] = session_id
        return web.json_response(public_view(session))

    def public_view(session):
        if session["status"] == "open" and session["expires_at"] <= int(time.time()):
            session["status"] = "expired"
        return {k: v for k, v in session.items() if not k.startswith("_")}

    async def get_session(request):
        session = sessions.get(request.match_info["id"])
        if session is None:
            return web.json_response({"error": {"message": "No such checkout session"}}, status=404)
        return web.json_response(public_view(session))

    async def list_sessions(request):
        found = [public_view(s) for s in sessions.values()]
        for field in ("customer", "status"):
            if request.query.get(field):
                found = [s for s in found if s[field] == request.query[field]]
        found.sort(key=lambda s: s["created"], reverse=True)
        limit = int(request.query.get("limit", 10))
        return web.json_response({"object": "list", "data": found[:limit], "has_more": len(found) > limit})

    async def expire_session(request):
        session = sessions.get(request.match_info["id"])
        if session is None:
            return web.json_response({"error": {"message": "No such checkout session"}}, status=404)
        if public_view(session)["status"] != "open":
            return web.json_response({"error": {"message": f"the session is {session['status']}"}}, status=400)
        session["status"] = "expired"
        return web.json_response(public_view(session))

    async def complete_session(request):
        session = sessions.get(request.match_info["id"])
        if session is None or public_view(session)["status"] != "open":
            return web.json_response({"error": {"message": "no open session"}}, status=404)
        form = await request.post()
        auth = request.headers.get("Authorization", "Bearer sk_test_local")
        card = form.get("card", "4242424242424242")
        status, body = await stripe(
            "POST",
            "/v1/payment_methods",
            {"type": "card", "card[number]": card, "card[exp_month]": "12", "card[exp_year]": "2034", "card[cvc]": "123"},
            auth,
        )
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        method = json.loads(body)["id"]
        await stripe("POST", f"/v1/payment_methods/{method}/attach", {"customer": session["customer"]}, auth)
        await stripe(
            "POST",
            f"/v1/customers/{session['customer']}",
            {"invoice_settings[default_payment_method]": method},
            auth,
        )
        data = {"customer": session["customer"], "items[0][plan]": session["_price"],
                "items[0][quantity]": session["_quantity"]}
        for k, v in session["_subscription_metadata"].items():
            data[f"metadata[{k}]"] = v
        status, body = await stripe("POST", "/v1/subscriptions", data, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        subscription = json.loads(body)
        if session["_metered"]:
            metered[subscription["id"]] = metered_item(subscription["id"], session["_metered"])
        session.update(status="complete", payment_status="paid", subscription=subscription["id"])
        asyncio.ensure_future(send_event("checkout.session.completed", public_view(session)))
        return web.json_response(public_view(session))

    def page(title, body):
        """The hosted pages a browser is sent to (Checkout, the Billing Portal), reduced to what
        a local journey needs. Stripe's are on its own origin too."""
        return web.Response(
            content_type="text/html",
            text=f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
.standin{{background:#fff3c4;padding:.5rem;border-radius:4px}}button,a.button{{font-size:1rem;padding:.5rem 1rem}}</style>
</head><body><p class="standin">Local stand-in for Stripe's hosted page: no real payment is taken.</p>
<h1>{html.escape(title)}</h1>{body}</body></html>""",
        )

    async def checkout_page(request):
        session = sessions.get(request.match_info["id"])
        if session is None:
            return page("Checkout session not found", "<p>This checkout link is not valid.</p>")
        if public_view(session)["status"] == "expired":
            return page("Checkout session expired", "<p>This checkout has expired; start again from the app.</p>")
        if session["status"] != "open":
            return web.HTTPSeeOther(session["success_url"])
        cancel = html.escape(session["cancel_url"], quote=True)
        return page(
            "Subscribe",
            f"""<p>Plan: <strong>{html.escape(session['metadata'].get('tier', session['_price']))}</strong>
({html.escape(session['_price'])})</p>
<form method="post" action="/checkout/{session['id']}/pay">
<p><label>Card number <input name="card" value="4242424242424242" autocomplete="off"></label></p>
<p><button type="submit">Pay and subscribe</button> <a href="{cancel}">Cancel</a></p></form>""",
        )

    async def checkout_pay(request):
        """The form on the checkout page: completes the session, then back to the app."""
        session = sessions.get(request.match_info["id"])
        response = await complete_session(request)
        if response.status != 200:
            return page("Payment failed", f"<pre>{html.escape(response.text or '')}</pre>")
        return web.HTTPSeeOther(session["success_url"])

    async def portal_page(request):
        portal = portals.get(request.match_info["id"])
        if portal is None:
            return page("Portal session not found", "<p>This portal link is not valid.</p>")
        back = html.escape(portal["return_url"] or "/", quote=True)
        return page(
            "Billing portal",
            f"""<p>Customer <code>{html.escape(portal['customer'])}</code>. In Stripe, the plan, payment
methods and invoices are managed here.</p><p><a class="button" href="{back}">Return to the app</a></p>""",
        )

    async def portal_session(request):
        form = await request.post()
        if not form.get("customer"):
            return web.json_response({"error": {"message": "customer is required"}}, status=400)
        session_id = "bps_" + secrets.token_hex(12)
        portals[session_id] = {"customer": form["customer"], "return_url": form.get("return_url")}
        return web.json_response(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": form["customer"],
                "return_url": form.get("return_url"),
                "url": f"{public}/portal/{session_id}",
                "created": int(time.time()),
                "livemode": False,
            }
        )

    async def register_webhook(request):
        form = await request.post()
        webhooks[request.match_info["id"]] = (form["url"], form["secret"])
        status, body = await stripe("POST", f"/_config/webhooks/{request.match_info['id']}", dict(form))
        return web.Response(status=status, body=body)

    def modern_to_localstripe(form):
        """Current Stripe parameters for a subscription update, in localstripe's 2017 dialect."""
        data = {}
        for key, value in form.items():
            if key.startswith("items[") and key.endswith("[price]"):
                data[key[: -len("[price]")] + "[plan]"] = value
            elif key == "proration_behavior":
                data["prorate"] = "false" if value == "none" else "true"
            elif key in ("payment_behavior", "billing_cycle_anchor"):
                continue  # localstripe keeps the anchor and charges as it always does
            else:
                data[key] = value
        return data

    async def charge_first(sub_id, form, auth):
        """A change that applies only once paid: the prorated difference invoiced and charged now.
        None when it was paid (the change may go on); else the subscription as it stays."""
        status, body = await stripe("GET", f"/v1/subscriptions/{sub_id}", None, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        sub = json.loads(body)
        old_plan = sub["items"]["data"][0]["plan"]
        status, body = await stripe("GET", f"/v1/plans/{form['items[0][price]']}", None, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        new_plan = json.loads(body)
        start, end, now = sub["current_period_start"], sub["current_period_end"], int(time.time())
        left = max(0.0, min(1.0, (end - now) / max(1, end - start)))
        amount = round((new_plan["amount"] - old_plan["amount"]) * left)
        if amount <= 0:
            return None
        # Stripe invoices the difference and charges the invoice; localstripe's invoices always
        # include the next period, so the stand-in charges the default card directly (recorded
        # under `_test/subscriptions/{id}/charges`).
        status, body = await stripe("GET", f"/v1/customers/{sub['customer']}", None, auth)
        method = json.loads(body).get("invoice_settings", {}).get("default_payment_method") if status == 200 else None
        intent = {"amount": str(amount), "currency": new_plan["currency"], "customer": sub["customer"],
                  "confirm": "true", "metadata[subscription]": sub_id,
                  "metadata[description]": f"Remaining time on {new_plan['id']} after {old_plan['id']}"}
        if method:
            intent["payment_method"] = method
        status, body = await stripe("POST", "/v1/payment_intents", intent, auth)
        paid = status == 200 and json.loads(body).get("status") == "succeeded"
        charges.setdefault(sub_id, []).append(
            {"amount": amount, "status": "succeeded" if paid else "failed",
             "payment_intent": json.loads(body).get("id") if status == 200 else None})
        if paid:
            return None
        sub = modern(sub)
        sub["pending_update"] = {
            "subscription_items": [{"price": new_plan["id"], "quantity": 1}],
            "expires_at": now + 23 * 3600,
        }
        asyncio.ensure_future(send_event("customer.subscription.updated", sub))
        return web.json_response(sub)

    def split_metered(sub_id, form):
        """Applies what an update asks of the metered item here; the rest, licensed items
        renumbered from 0, is for localstripe."""
        rest, items = {}, {}
        for key, value in form.items():
            if key.startswith("items["):
                n, field = key[len("items[") :].split("]", 1)
                items.setdefault(int(n), {})[field] = value
            else:
                rest[key] = value
        licensed = []
        for _, item in sorted(items.items()):
            current = metered.get(sub_id)
            if current and item.get("[id]") == current["id"]:
                if item.get("[deleted]") == "true":
                    metered.pop(sub_id)
            elif item.get("[price]") in prices:
                metered[sub_id] = metered_item(sub_id, item["[price]"])
            else:
                licensed.append(item)
        for n, item in enumerate(licensed):
            rest.update({f"items[{n}]{field}": value for field, value in item.items()})
        return rest

    async def update_subscription(request):
        form = split_metered(request.match_info["id"], await request.post())
        updates.setdefault(request.match_info["id"], []).append(dict(form))
        auth = request.headers.get("Authorization")
        if (
            form.get("payment_behavior") == "pending_if_incomplete"
            and form.get("proration_behavior") == "always_invoice"
            and form.get("items[0][price]")
        ):
            pending = await charge_first(request.match_info["id"], form, auth)
            if pending is not None:
                return pending
            # Invoiced and paid already: the change itself prorates nothing more.
            form = {**form, "proration_behavior": "none"}
        status, body = await stripe("POST", f"/v1/subscriptions/{request.match_info['id']}", modern_to_localstripe(form), auth)
        if status == 200:
            subscription = modern(json.loads(body))
            body = json.dumps(subscription).encode()
            asyncio.ensure_future(send_event("customer.subscription.updated", subscription))
        return web.Response(status=status, body=body, content_type="application/json")

    def modern(subscription):
        """A subscription as Stripe shows it: its schedule, and its metered item after the
        licensed one."""
        subscription["schedule"] = schedule_of.get(subscription.get("id"))
        item = metered.get(subscription.get("id"))
        if item and "items" in subscription:
            subscription["items"]["data"] = [i for i in subscription["items"]["data"] if i["id"] != item["id"]] + [item]
        return subscription

    async def get_subscription(request):
        status, body = await proxy_raw(request)
        if status == 200:
            body = json.dumps(modern(json.loads(body))).encode()
        return web.Response(status=status, body=body, content_type="application/json")

    async def list_subscriptions(request):
        status, body = await proxy_raw(request)
        if status == 200:
            listed = json.loads(body)
            listed["data"] = [modern(s) for s in listed["data"]]
            body = json.dumps(listed).encode()
        return web.Response(status=status, body=body, content_type="application/json")

    def not_found(what):
        return web.json_response({"error": {"type": "invalid_request_error", "message": f"No such {what}"}}, status=404)

    async def create_schedule(request):
        form = await request.post()
        auth = request.headers.get("Authorization")
        sub_id = form.get("from_subscription")
        if not sub_id:
            return web.json_response({"error": {"message": "from_subscription is required"}}, status=400)
        if sub_id in schedule_of:
            return web.json_response({"error": {"message": f"{sub_id} already has a schedule"}}, status=400)
        status, body = await stripe("GET", f"/v1/subscriptions/{sub_id}", None, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        sub = json.loads(body)
        price = sub["items"]["data"][0]["plan"]["id"]
        schedule = {
            "id": "sub_sched_" + secrets.token_hex(12),
            "object": "subscription_schedule",
            "subscription": sub_id,
            "customer": sub["customer"],
            "status": "active",
            "end_behavior": "release",
            "phases": [
                {
                    "start_date": sub["current_period_start"],
                    "end_date": sub["current_period_end"],
                    "items": [{"price": price, "quantity": 1}]
                    + ([{"price": metered[sub_id]["price"]["id"]}] if sub_id in metered else []),
                }
            ],
        }
        schedules[schedule["id"]] = schedule
        schedule_of[sub_id] = schedule["id"]
        return web.json_response(schedule)

    async def get_schedule(request):
        schedule = schedules.get(request.match_info["id"])
        return web.json_response(schedule) if schedule else not_found("subscription schedule")

    async def update_schedule(request):
        schedule = schedules.get(request.match_info["id"])
        if schedule is None:
            return not_found("subscription schedule")
        if schedule["status"] != "active":
            return web.json_response({"error": {"message": "the schedule is not active"}}, status=400)
        form = await request.post()
        phases = {}
        for key, value in form.items():
            if not key.startswith("phases["):
                continue
            index = int(key[len("phases[") : key.index("]")])
            phase = phases.setdefault(index, {"items": {}})
            rest = key[key.index("]") + 1 :]
            if rest.startswith("[items][") and rest.endswith("][price]"):
                phase["items"].setdefault(int(rest[len("[items][") : -len("][price]")]), {})["price"] = value
            elif rest in ("[start_date]", "[end_date]"):
                phase[rest[1:-1]] = int(value)
            elif rest == "[duration][interval]":
                phase.setdefault("duration", {})["interval"] = value
            elif rest == "[duration][interval_count]":
                phase.setdefault("duration", {})["interval_count"] = int(value)
        for phase in phases.values():
            items = [phase["items"][k] for k in sorted(phase["items"])]
            if any(item.get("price") not in prices for item in items[1:]) or (items and items[0].get("price") in prices):
                return invalid("a phase here is one licensed price, then at most one metered price")
            phase["items"] = [item if item["price"] in prices else {**item, "quantity": 1} for item in items]
        if phases:
            schedule["phases"] = [phases[i] for i in sorted(phases)]
        if form.get("end_behavior"):
            schedule["end_behavior"] = form["end_behavior"]
        return web.json_response(schedule)

    async def release_schedule(request):
        schedule = schedules.get(request.match_info["id"])
        if schedule is None:
            return not_found("subscription schedule")
        schedule["status"] = "released"
        schedule_of.pop(schedule["subscription"], None)
        return web.json_response(schedule)

    async def advance_schedule(request):
        schedule = schedules.get(request.match_info["id"])
        if schedule is None or schedule["status"] != "active" or len(schedule["phases"]) < 2:
            return web.json_response({"error": {"message": "no next phase"}}, status=400)
        auth = request.headers.get("Authorization", "Bearer sk_test_local")
        sub_id = schedule["subscription"]
        price, *metered_prices = [item["price"] for item in schedule["phases"][1]["items"]]
        if not metered_prices:
            metered.pop(sub_id, None)
        elif metered.get(sub_id, {}).get("price", {}).get("id") != metered_prices[0]:
            metered[sub_id] = metered_item(sub_id, metered_prices[0])
        data = {"items[0][plan]": price, "prorate": "false"}
        status, body = await stripe("POST", f"/v1/subscriptions/{schedule['subscription']}", data, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        schedule["status"] = "released"
        schedule_of.pop(schedule["subscription"], None)
        subscription = modern(json.loads(body))
        asyncio.ensure_future(send_event("customer.subscription.updated", subscription))
        return web.json_response(subscription)

    async def get_customer(request):
        customer = request.match_info["id"]
        if customer in deleted_customers:
            return web.json_response({"id": customer, "object": "customer", "deleted": True})
        return await proxy(request)

    async def delete_customer(request):
        customer = request.match_info["id"]
        auth = request.headers.get("Authorization")
        status, body = await stripe("GET", f"/v1/subscriptions?customer={customer}&limit=100", None, auth)
        if status == 200:
            for sub in json.loads(body)["data"]:
                if sub["status"] not in ("canceled", "incomplete_expired"):
                    await stripe("DELETE", f"/v1/subscriptions/{sub['id']}", None, auth)
        status, body = await stripe("DELETE", f"/v1/customers/{customer}", None, auth)
        if status == 200:
            deleted_customers.add(customer)
        return web.Response(status=status, body=body, content_type="application/json")

    def current_invoice(invoice):
        """An invoice in the current API's shape (its payments are listed apart), a usage line
        with its quantity and metered price."""
        invoice.pop("payment_intent", None)
        invoice.pop("charge", None)
        for line in (invoice.get("lines") or {}).get("data", []):
            if line.get("invoice_item") in usage_lines:
                quantity, price = usage_lines[line["invoice_item"]]
                line["quantity"] = quantity
                line["pricing"] = {"type": "price_details", "price_details": {"price": price}}
        return invoice

    async def invoices(request):
        status, body = await proxy_raw(request)
        if status == 200:
            data = json.loads(body)
            if data.get("object") == "list":
                data["data"] = [current_invoice(i) for i in data["data"]]
            else:
                data = current_invoice(data)
            body = json.dumps(data).encode()
        return web.Response(status=status, body=body, content_type="application/json")

    async def list_invoice_payments(request):
        invoice_id = request.query.get("invoice")
        if not invoice_id:
            return web.json_response({"error": {"message": "invoice is required", "param": "invoice"}}, status=400)
        auth = request.headers.get("Authorization")
        status, body = await stripe("GET", f"/v1/invoices/{invoice_id}", None, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        invoice = json.loads(body)
        intent = invoice.get("payment_intent")
        state = {"paid": "paid", "open": "open"}.get(invoice.get("status"))
        payments = [] if not intent or not state else [{
            "id": "inpay_" + hashlib.sha256(invoice_id.encode()).hexdigest()[:24],
            "object": "invoice_payment",
            "invoice": invoice_id,
            "is_default": True,
            "status": state,
            "amount_paid": invoice.get("amount_paid") if state == "paid" else None,
            "amount_requested": invoice.get("amount_due"),
            "currency": invoice.get("currency"),
            "payment": {"type": "payment_intent", "payment_intent": intent},
        }]
        if request.query.get("status"):
            payments = [p for p in payments if p["status"] == request.query["status"]]
        return web.json_response({"object": "list", "data": payments, "has_more": False})

    async def create_refund(request):
        # One refund at a time: Stripe applies an idempotency key and a PaymentIntent's refunded
        # state atomically, so two concurrent refunds of one payment never both succeed.
        async with refunding:
            return await refund_once(request)

    async def refund_once(request):
        key = request.headers.get("Idempotency-Key")
        if key and key in refunds_by_key:
            return web.json_response(refunds_by_key[key])
        form = await request.post()
        intent = form.get("payment_intent")
        if intent in refunded:
            message = f"Charge for PaymentIntent {intent} has already been refunded."
            return web.json_response({"error": {"type": "invalid_request_error", "code": "charge_already_refunded", "message": message}}, status=400)
        auth = request.headers.get("Authorization")
        status, body = await stripe("POST", "/v1/refunds", dict(form), auth)
        if status == 200:
            refund = json.loads(body)
            if intent:
                refunded.add(intent)
            if key:
                refunds_by_key[key] = refund
        return web.Response(status=status, body=body, content_type="application/json")

    def invalid(message, code="parameter_invalid", status=400, param=None):
        error = {"type": "invalid_request_error", "code": code, "message": message}
        if param:
            error["param"] = param
        return web.json_response({"error": error}, status=status)

    async def create_price(request):
        form = await request.post()
        if form.get("recurring[usage_type]") != "metered":
            return invalid("the stand-in makes metered prices only (licensed prices are localstripe's plans)")
        meter = form.get("recurring[meter]")
        if meter not in meters:
            return invalid(f"No such billing meter: {meter}", "resource_missing", param="recurring[meter]")
        price_id = form.get("lookup_key") or "price_" + secrets.token_hex(12)
        if price_id in prices:
            return invalid(f"A price with lookup_key {price_id} already exists.", "resource_already_exists")
        prices[price_id] = {
            "id": price_id, "object": "price", "active": True, "currency": form.get("currency", "usd"),
            "unit_amount": int(form.get("unit_amount", "0")), "product": form.get("product"),
            "nickname": form.get("nickname"), "type": "recurring", "billing_scheme": "per_unit",
            "recurring": {"interval": form.get("recurring[interval]", "month"), "interval_count": 1,
                          "usage_type": "metered", "meter": meter},
            "lookup_key": form.get("lookup_key"), "created": int(time.time()), "livemode": False,
        }
        return web.json_response(prices[price_id])

    async def get_price(request):
        price = prices.get(request.match_info["id"])
        return web.json_response(price) if price else not_found("price")

    def metered_item(sub_id, price_id):
        return {"id": "si_" + secrets.token_hex(12), "object": "subscription_item", "subscription": sub_id,
                "price": prices[price_id], "created": int(time.time()), "metadata": {}}

    async def create_subscription_item(request):
        """Adds a metered price to a subscription (the only kind of item localstripe cannot hold)."""
        key = request.headers.get("Idempotency-Key")
        if key and key in item_answers:
            return web.json_response(item_answers[key])
        form = await request.post()
        sub_id, price = form.get("subscription"), form.get("price")
        if price not in prices:
            return invalid("the stand-in adds metered prices only", param="price")
        if form.get("quantity") is not None:
            return invalid("a metered price takes no quantity", param="quantity")
        status, body = await stripe("GET", f"/v1/subscriptions/{sub_id}", None, request.headers.get("Authorization"))
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        if sub_id in metered:
            return invalid(f"The price {price} is already on subscription {sub_id}.", "subscription_item_price_duplicate")
        metered[sub_id] = metered_item(sub_id, price)
        if key:
            item_answers[key] = metered[sub_id]
        subscription = modern(json.loads(body))
        asyncio.ensure_future(send_event("customer.subscription.updated", subscription))
        return web.json_response(metered[sub_id])

    async def end_period(request):
        """Time passes to the subscription's period end (as a Stripe test clock would): the
        renewal invoice is made and paid, with the next period of its licensed price and a line for
        the usage its metered price counted over the period that ended."""
        sub_id = request.match_info["id"]
        auth = request.headers.get("Authorization", "Bearer sk_test_local")
        status, body = await stripe("GET", f"/v1/subscriptions/{sub_id}", None, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        sub = json.loads(body)
        start, end = billed_until.get(sub_id, sub["current_period_start"]), int(time.time()) + 1
        item = metered.get(sub_id)
        if item:
            price = item["price"]
            meter = meters[price["recurring"]["meter"]]
            used = sum(float(e["payload"]["value"]) for e in meter_events
                       if e["meter"] == meter["id"] and e["payload"]["stripe_customer_id"] == sub["customer"]
                       and start <= e["timestamp"] < end)
            quantity = int(used)
            line = {"customer": sub["customer"], "subscription": sub_id, "currency": price["currency"],
                    "amount": str(quantity * price["unit_amount"]), "period_start": str(start), "period_end": str(end),
                    "description": f"{quantity} × {meter['display_name']} (at ${price['unit_amount'] / 100:.2f} per unit)"}
            status, body = await stripe("POST", "/v1/invoiceitems", line, auth)
            if status != 200:
                return web.Response(status=status, body=body, content_type="application/json")
            usage_lines[json.loads(body)["id"]] = (quantity, price["id"])
        status, body = await stripe("POST", "/v1/invoices", {"customer": sub["customer"], "subscription": sub_id}, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        invoice = json.loads(body)
        status, body = await stripe("POST", f"/v1/invoices/{invoice['id']}/pay", None, auth)
        billed_until[sub_id] = end
        return web.Response(status=status, body=json.dumps(current_invoice(json.loads(body))).encode(),
                            content_type="application/json")

    async def create_meter(request):
        form = await request.post()
        name = form.get("event_name", "")
        if any(m["event_name"] == name for m in meters.values()):
            return invalid(f"A meter with event_name {name} already exists.", "resource_already_exists")
        meter = {
            "id": "mtr_" + secrets.token_hex(12), "object": "billing.meter", "event_name": name,
            "display_name": form.get("display_name", name), "status": "active",
            "default_aggregation": {"formula": form.get("default_aggregation[formula]", "sum")},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"}, "created": int(time.time()),
        }
        meters[meter["id"]] = meter
        return web.json_response(meter)

    async def list_meters(request):
        return web.json_response({"object": "list", "data": list(meters.values()), "has_more": False})

    async def create_meter_event(request):
        key = request.headers.get("Idempotency-Key")
        if key and key in meter_answers:
            return web.json_response(meter_answers[key])
        form = await request.post()
        failing = form.get("payload[stripe_customer_id]")
        if meter_failures.get(failing, 0) > 0:
            meter_failures[failing] -= 1
            return web.json_response({"error": {"type": "api_error", "message": "injected failure"}}, status=500)
        now = int(time.time())
        timestamp = int(form.get("timestamp") or now)
        if timestamp < now - 35 * 86400 or timestamp > now + 300:
            return invalid("timestamp must be within the past 35 calendar days and at most 5 minutes in the future")
        meter = next((m for m in meters.values() if m["event_name"] == form.get("event_name")), None)
        if meter is None:
            return invalid(f"No active meter with event_name {form.get('event_name')!r}", "resource_missing")
        customer = form.get("payload[stripe_customer_id]")
        if not customer:
            return invalid("payload[stripe_customer_id] is required")
        identifier = form.get("identifier") or "id_" + secrets.token_hex(12)
        event = {
            "object": "billing.meter_event", "event_name": meter["event_name"], "identifier": identifier,
            "timestamp": timestamp, "created": now, "livemode": False,
            "payload": {"stripe_customer_id": customer, "value": form.get("payload[value]", "1")},
        }
        if identifier not in meter_identifiers:
            meter_identifiers.add(identifier)
            meter_events.append({**event, "meter": meter["id"]})
        if key:
            meter_answers[key] = event
        return web.json_response(event)

    async def meter_event_summaries(request):
        meter = meters.get(request.match_info["id"])
        if meter is None:
            return invalid(f"No such billing meter: {request.match_info['id']}", "resource_missing", 404)
        customer, start, end = (request.query.get(k) for k in ("customer", "start_time", "end_time"))
        if not (customer and start and end):
            return invalid("customer, start_time and end_time are required")
        events = [e for e in meter_events if e["meter"] == meter["id"] and e["payload"]["stripe_customer_id"] == customer
                  and int(start) <= e["timestamp"] < int(end)]
        values = [float(e["payload"]["value"]) for e in events]
        value = len(values) if meter["default_aggregation"]["formula"] == "count" else sum(values)
        summary = {"id": "mtrusg_" + secrets.token_hex(8), "object": "billing.meter_event_summary", "meter": meter["id"],
                   "aggregated_value": value, "start_time": int(start), "end_time": int(end), "livemode": False}
        return web.json_response({"object": "list", "data": [summary], "has_more": False})

    async def counted_meter_events(request):
        customer = request.query.get("customer")
        return web.json_response([e for e in meter_events if not customer or e["payload"]["stripe_customer_id"] == customer])

    async def drop_meter_event(request):
        identifier = (await request.post())["identifier"]
        meter_events[:] = [e for e in meter_events if e["identifier"] != identifier]
        meter_identifiers.discard(identifier)
        for key in [k for k, answer in meter_answers.items() if answer["identifier"] == identifier]:
            del meter_answers[key]
        return web.json_response({"dropped": identifier})

    async def fail_meter_events(request):
        form = await request.post()
        meter_failures[form["customer"]] = int(form.get("count", "1"))
        return web.json_response({"failing": meter_failures[form["customer"]]})

    async def updates_of(request):
        return web.json_response(updates.get(request.match_info["id"], []))

    async def charges_of(request):
        return web.json_response(charges.get(request.match_info["id"], []))

    async def proxy_raw(request):
        data = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as http:
            async with http.request(request.method, f"{localstripe}{request.path_qs}", data=data, headers=headers) as r:
                return r.status, await r.read()

    async def proxy(request):
        status, body = await proxy_raw(request)
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application(middlewares=[contract_check(Contract.load(), contract_log)])
    app.router.add_post("/v1/checkout/sessions", create_session)
    app.router.add_get("/v1/checkout/sessions", list_sessions)
    app.router.add_get("/v1/checkout/sessions/{id}", get_session)
    app.router.add_post("/v1/checkout/sessions/{id}/expire", expire_session)
    app.router.add_delete("/v1/customers/{id}", delete_customer)
    app.router.add_get("/v1/customers/{id}", get_customer)
    app.router.add_get("/v1/invoices", invoices)
    app.router.add_get("/v1/invoices/{id}", invoices)
    app.router.add_get("/v1/invoice_payments", list_invoice_payments)
    app.router.add_post("/v1/refunds", create_refund)
    app.router.add_post("/v1/billing_portal/sessions", portal_session)
    app.router.add_post("/_config/webhooks/{id}", register_webhook)
    app.router.add_post("/_test/checkout/{id}/complete", complete_session)
    app.router.add_get("/checkout/{id}", checkout_page)
    app.router.add_post("/checkout/{id}/pay", checkout_pay)
    app.router.add_get("/portal/{id}", portal_page)
    app.router.add_post("/v1/subscriptions/{id}", update_subscription)
    app.router.add_get("/v1/subscriptions/{id}", get_subscription)
    app.router.add_get("/v1/subscriptions", list_subscriptions)
    app.router.add_post("/v1/subscription_items", create_subscription_item)
    app.router.add_post("/v1/prices", create_price)
    app.router.add_get("/v1/prices/{id}", get_price)
    app.router.add_post("/_test/subscriptions/{id}/end_period", end_period)
    app.router.add_post("/v1/subscription_schedules", create_schedule)
    app.router.add_get("/v1/subscription_schedules/{id}", get_schedule)
    app.router.add_post("/v1/subscription_schedules/{id}", update_schedule)
    app.router.add_post("/v1/subscription_schedules/{id}/release", release_schedule)
    app.router.add_post("/_test/subscription_schedules/{id}/advance", advance_schedule)
    app.router.add_get("/_test/subscriptions/{id}/updates", updates_of)
    app.router.add_get("/_test/subscriptions/{id}/charges", charges_of)
    app.router.add_post("/v1/billing/meters", create_meter)
    app.router.add_get("/v1/billing/meters", list_meters)
    app.router.add_post("/v1/billing/meter_events", create_meter_event)
    app.router.add_get("/v1/billing/meters/{id}/event_summaries", meter_event_summaries)
    app.router.add_get("/_test/meter_events", counted_meter_events)
    app.router.add_post("/_test/meter_events/fail", fail_meter_events)
    app.router.add_post("/_test/meter_events/drop", drop_meter_event)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8440)
    parser.add_argument("--localstripe", default="http://127.0.0.1:8420")
    parser.add_argument("--contract-log", help="append every checked request here, one JSON line each")
    args = parser.parse_args()
    public = f"http://127.0.0.1:{args.port}"
    app = make_app(args.localstripe, public, args.contract_log)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)
