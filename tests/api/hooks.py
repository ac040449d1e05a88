"""Schemathesis hooks for `make test`: every request is signed in as one of the users in
$API_TEST_USERS (a JSON line per user, as `bench-users` prints them, plus what
tests/api/prepare.py made: `key` for the Bearer run, `voiceId`), taken in turn, so the run tests
the API rather than one user's per-minute rate limit. A request about a resource made beforehand
or by a test (a voice, an API key, a preset, a recording) goes as the user who made it, so the
stateful links reach real data. State-changing requests carry the session's CSRF token, as the
web client's do."""

import itertools
import json
import os

import schemathesis

with open(os.environ["API_TEST_USERS"]) as lines:
    USERS = [json.loads(line) for line in lines if line.strip()]
TURN = itertools.cycle(USERS)
# API_TEST_AUTH=bearer: each user's API key (`key`) instead of the cookie and CSRF token.
BEARER = os.environ.get("API_TEST_AUTH") == "bearer"
BY_CREDENTIAL = {f"Bearer {u['key']}" if BEARER else u["cookie"]: u for u in USERS}
# The ids in successful answers, and whose they are; a voice made beforehand is its maker's.
OWNER = {u["voiceId"]: u for u in USERS if "voiceId" in u}
ID_FIELDS = ("keyId", "id", "recordingId", "sampleId", "voiceId")


@schemathesis.auth(refresh_interval=None)
class SignedIn:
    def get(self, case, context):
        resource = (case.path_parameters or {}).get("id")
        return OWNER.get(resource) or next(TURN)

    def set(self, case, user, context):
        case.headers = case.headers or {}
        if BEARER:
            case.headers["Authorization"] = f"Bearer {user['key']}"
        else:
            case.headers["Cookie"] = user["cookie"]
            case.headers["X-CSRF-Token"] = user["csrf"]


@schemathesis.hook
def after_call(context, case, response):
    headers = case.headers or {}
    user = BY_CREDENTIAL.get(headers.get("Authorization") if BEARER else headers.get("Cookie"))
    if user is None or response.status_code not in (200, 201):
        return
    try:
        body = response.json()
    except ValueError:
        return
    if isinstance(body, dict):
        for field in ID_FIELDS:
            if isinstance(body.get(field), str):
                OWNER[body[field]] = user
