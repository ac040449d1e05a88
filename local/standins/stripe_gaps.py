"""Stripe-gaps stand-in (our own, local use only): fills what localstripe lacks and passes
everything else through to it, so the backend talks to one Stripe base URL.

Added here:
  POST /v1/checkout/sessions             subscription-mode Checkout Sessions (Idempotency-Key honoured)
  GET  /v1/checkout/sessions/{id}
  POST /v1/billing_portal/sessions       Billing Portal sessions
  POST /_config/webhooks/{id}            registers a webhook here AND in localstripe
  POST /_test/checkout/{id}/complete     "pays" a session: a card (form field `card`, default
                                         4242…) becomes the customer's default payment method,
                                         the subscription is created in localstripe (which then
                                         sends its own signed webhooks) and a signed
                                         checkout.session.completed is sent from here
  POST /v1/subscriptions/{id}            passed through, then a signed
                                         customer.subscription.updated, which localstripe never sends
Everything else is proxied to localstripe unchanged.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import secrets
import time

import aiohttp
from aiohttp import web


def make_app(localstripe, public):
    sessions = {}
    by_idempotency_key = {}
    webhooks = {}

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
        session_id = "cs_test_" + secrets.token_hex(12)
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
            "created": int(time.time()),
            "_price": form["line_items[0][price]"],
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
        return {k: v for k, v in session.items() if not k.startswith("_")}

    async def get_session(request):
        session = sessions.get(request.match_info["id"])
        if session is None:
            return web.json_response({"error": {"message": "No such checkout session"}}, status=404)
        return web.json_response(public_view(session))

    async def complete_session(request):
        session = sessions.get(request.match_info["id"])
        if session is None or session["status"] != "open":
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
        data = {"customer": session["customer"], "items[0][plan]": session["_price"]}
        for k, v in session["_subscription_metadata"].items():
            data[f"metadata[{k}]"] = v
        status, body = await stripe("POST", "/v1/subscriptions", data, auth)
        if status != 200:
            return web.Response(status=status, body=body, content_type="application/json")
        subscription = json.loads(body)
        session.update(status="complete", payment_status="paid", subscription=subscription["id"])
        asyncio.ensure_future(send_event("checkout.session.completed", public_view(session)))
        return web.json_response(public_view(session))

    async def portal_session(request):
        form = await request.post()
        if not form.get("customer"):
            return web.json_response({"error": {"message": "customer is required"}}, status=400)
        session_id = "bps_" + secrets.token_hex(12)
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

    async def update_subscription(request):
        status, body = await proxy_raw(request)
        if status == 200:
            asyncio.ensure_future(send_event("customer.subscription.updated", json.loads(body)))
        return web.Response(status=status, body=body, content_type="application/json")

    async def proxy_raw(request):
        data = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as http:
            async with http.request(request.method, f"{localstripe}{request.path_qs}", data=data, headers=headers) as r:
                return r.status, await r.read()

    async def proxy(request):
        status, body = await proxy_raw(request)
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/checkout/sessions", create_session)
    app.router.add_get("/v1/checkout/sessions/{id}", get_session)
    app.router.add_post("/v1/billing_portal/sessions", portal_session)
    app.router.add_post("/_config/webhooks/{id}", register_webhook)
    app.router.add_post("/_test/checkout/{id}/complete", complete_session)
    app.router.add_post("/v1/subscriptions/{id}", update_subscription)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8440)
    parser.add_argument("--localstripe", default="http://127.0.0.1:8420")
    args = parser.parse_args()
    public = f"http://127.0.0.1:{args.port}"
    web.run_app(make_app(args.localstripe, public), host="127.0.0.1", port=args.port, print=None)
