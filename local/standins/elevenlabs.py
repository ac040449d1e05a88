"""ElevenLabs stand-in for the local stack and the tests (our own; only the endpoints we use).

  POST   /v1/text-to-speech/{voice_id}   returns real MP3 audio (sample.mp3, made once with espeak-ng)
  POST   /v1/text-to-speech/{voice_id}/stream
                                         the same audio, streamed in `--stream-chunks` chunks (8), each
                                         after `--stream-delay-ms` (100 ms, the first chunk included)
  GET    /v1/voices                      the premade voices plus the account's added (cloned) voices
  POST   /v1/voices/add                  instant voice cloning (multipart: name, files, description,
                                         labels, remove_background_noise) -> {voice_id, requires_verification}
  DELETE /v1/voices/{voice_id}           removes an added voice

Accounts: the key the local stack configures, or that key followed by `:NAME`, which is a separate
account (its own added voices and limits) so parallel tests never share them. The limits real
accounts hit, answered with ElevenLabs' codes in its `{"detail": {"status", "message"}}` shape:
  - at most `--voice-slots` added voices (30); past that, add answers 400 `voice_limit_reached`;
  - at most `--concurrency` text-to-speech requests at once (50); past that, 429
    `too_many_concurrent_requests`;
  - a character quota (none by default); a request whose text is longer than what is left
    answers 401 `quota_exceeded` (ElevenLabs uses 401 for it);
  - text to speech with an added voice id the account no longer holds answers 404
    `voice_not_found`.
POST /_test/accounts/{NAME} {"voiceSlots": n, "concurrency": n, "characters": n, "latencyMs": n} sets
them (`latencyMs`: every text-to-speech answer of the account takes that long, holding its place);
GET /_test/accounts/{NAME}/speech says how its text to speech went: `served`, `refusedBusy` (429
`too_many_concurrent_requests` answered), `peakBusy` (the most in flight at once) and
`busySeconds` (from the first place taken to the last given back).

Every /v1 request is first held to ElevenLabs' contract as the official SDK states it
(local/contracts/elevenlabs_contract.py): an endpoint, query parameter, JSON field or multipart
field the SDK never sends, or a value of the wrong type or outside its enumeration, is answered
422 `contract_violation` (the stand-in's own strictness: ElevenLabs itself ignores an unknown JSON
field, which would silently lose it), and each check is appended to --contract-log.

Requests need the `xi-api-key` the local stack configures. Test controls, set per target (a voice
id, or the name of a voice to add) so that parallel tests, each with targets of its own, never
interfere; the Rust harness wraps them by name (`TestApp::elevenlabs`):
  - POST /_test/faults {"target": ID, "fault": F} makes every request for that target fail as F:
    `fail` answers 500; `hang` never answers in time (60 s); `slow` answers after 1.5 s; `busy`
    answers 429 `system_busy` (ElevenLabs itself overloaded); `cut`
    (streaming) sends half the chunks, then drops the connection; `mute` (streaming) answers 200
    with no audio at all. For an add, the target is the new voice's name (`fail`, `hang`, `slow`);
  - every text-to-speech request body is kept, and GET /_test/requests/{voice_id} returns them;
    an add is kept under `add:{name}` (fields, each file's name, size and SHA-256, and its
    outcome: `added` with the voice id, or the error code), a delete under `delete:{voice_id}`;
  - GET /_test/accounts/{NAME}/voices shows what the account holds now and the most it ever held
    (`peak`).
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import pathlib
import secrets
import sys
from collections import defaultdict

from aiohttp import web

# This file's folder leaves the import path: here `import elevenlabs` must find the official SDK
# (which the contract reads), not this stand-in of the same name.
sys.path[0] = str(pathlib.Path(__file__).resolve().parent.parent / "contracts")
from elevenlabs_contract import Contract  # noqa: E402

AUDIO = (pathlib.Path(__file__).parent / "sample.mp3").read_bytes()
VOICES = [
    {"voice_id": "21m00Tcm4TlvDq8ikWAM", "name": "Rachel", "category": "premade", "labels": {"accent": "american"}},
    {"voice_id": "AZnzlk1XvdvUeBnXmlld", "name": "Domi", "category": "premade", "labels": {"accent": "american"}},
    {"voice_id": "EXAVITQu4vr4xnSDxMaL", "name": "Bella", "category": "premade", "labels": {"accent": "british"}},
]


def contract_check(contract, log_path):
    """Holds each /v1 request's query and JSON body to the SDK's contract (multipart fields are
    checked by the add handler, which streams them)."""

    @web.middleware
    async def check(request, handler):
        if not request.path.startswith("/v1/") or request.content_type == "multipart/form-data":
            return await handler(request)
        body = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        problems = contract.check(request.method, request.path, dict(request.query), json=body)
        if body is None and request.can_read_body:
            problems.append(f"{request.method} {request.path}: the body is not JSON")
        record(log_path, contract, request, problems)
        if problems:
            return contract_refusal(problems)
        return await handler(request)

    return check


def record(log_path, contract, request, problems):
    endpoint = contract.endpoint(request.method, request.path)
    line = {"call": f"{request.method} {endpoint.template if endpoint else request.path}", "problems": problems}
    if log_path:
        with open(log_path, "a") as log:
            log.write(json.dumps(line) + "\n")


def contract_refusal(problems):
    detail = {"status": "contract_violation", "message": "; ".join(problems)}
    return web.json_response({"detail": detail}, status=422)


def make_app(api_key, voice_slots, stream_chunks=8, stream_delay_ms=100, concurrency=50, contract_log=None):
    contract = Contract.load()
    received = defaultdict(list)
    accounts = defaultdict(
        lambda: {
            "voices": {},
            "slots": voice_slots,
            "peak": 0,
            "concurrency": concurrency,
            "busy": 0,
            "characters": None,
            "latency_ms": 0,
            # Text to speech as the account saw it: answered, refused for concurrency, most at once.
            "served": 0,
            "refused_busy": 0,
            "peak_busy": 0,
            # When the first request took a place and the last gave one back (the loop's clock, s).
            "first_at": None,
            "last_at": None,
        }
    )
    added_ids = set()
    faults = {}

    def account(request):
        """The account a request's key names, or None for a wrong key."""
        key = request.headers.get("xi-api-key", "")
        if key == api_key:
            return accounts[""]
        if key.startswith(api_key + ":"):
            return accounts[key[len(api_key) + 1 :]]
        return None

    def authorized(request):
        return account(request) is not None

    def error(status, code, message):
        return web.json_response({"detail": {"status": code, "message": message}}, status=status)

    async def refused_speech(request, acct, streamed):
        """Records a text-to-speech request; the error answer it gets, if any (after `hang`'s
        wait). A request let through holds one of the account's concurrent places."""
        if acct is None:
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        voice_id = request.match_info["voice_id"]
        body = await request.json()
        received[voice_id].append({"body": body, "query": dict(request.query), "stream": streamed})
        if voice_id in added_ids and voice_id not in acct["voices"]:
            return error(404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found.")
        if acct["busy"] >= acct["concurrency"]:
            acct["refused_busy"] += 1
            limit = acct["concurrency"]
            return error(429, "too_many_concurrent_requests", f"At most {limit} requests may run at once.")
        if faults.get(voice_id) == "busy":
            return error(429, "system_busy", "The system is experiencing heavy traffic, please try again later.")
        needed, left = len(body.get("text", "")), acct["characters"]
        if left is not None and needed > left:
            return error(401, "quota_exceeded", f"{left} credits remain, {needed} are required.")
        if left is not None:
            acct["characters"] = left - needed
        if faults.get(voice_id) == "fail":
            return web.json_response({"detail": {"status": "internal_error"}}, status=500)
        if faults.get(voice_id) == "hang":
            await asyncio.sleep(60)
        return None

    @contextlib.contextmanager
    def place(acct):
        acct["busy"] += 1
        acct["peak_busy"] = max(acct["peak_busy"], acct["busy"])
        if acct["first_at"] is None:
            acct["first_at"] = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            acct["busy"] -= 1
            acct["served"] += 1
            acct["last_at"] = asyncio.get_running_loop().time()

    async def text_to_speech(request):
        acct = account(request)
        if refused := await refused_speech(request, acct, streamed=False):
            return refused
        with place(acct):
            await asyncio.sleep(acct["latency_ms"] / 1000)
            if faults.get(request.match_info["voice_id"]) == "slow":
                await asyncio.sleep(1.5)
            return web.Response(body=AUDIO, content_type="audio/mpeg")

    async def text_to_speech_stream(request):
        acct = account(request)
        if refused := await refused_speech(request, acct, streamed=True):
            return refused
        with place(acct):
            await asyncio.sleep(acct["latency_ms"] / 1000)
            return await stream_audio(request)

    async def stream_audio(request):
        voice_id = request.match_info["voice_id"]
        response = web.StreamResponse(headers={"content-type": "audio/mpeg"})
        await response.prepare(request)
        if faults.get(voice_id) == "mute":
            await response.write_eof()
            return response
        size = -(-len(AUDIO) // stream_chunks)
        chunks = [AUDIO[i : i + size] for i in range(0, len(AUDIO), size)]
        for n, chunk in enumerate(chunks):
            await asyncio.sleep(stream_delay_ms / 1000)
            if faults.get(voice_id) == "cut" and n == len(chunks) // 2:
                request.transport.close()
                return response
            await response.write(chunk)
        await response.write_eof()
        return response

    async def voices(request):
        if not authorized(request):
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        added = [
            {"voice_id": vid, "name": v["name"], "category": "cloned", "labels": v["labels"]}
            for vid, v in account(request)["voices"].items()
        ]
        return web.json_response({"voices": VOICES + added})

    async def add_voice(request):
        acct = account(request)
        if acct is None:
            return error(401, "invalid_api_key", "Invalid API key")
        fields, files, names = {}, [], []
        reader = await request.multipart()
        async for part in reader:
            names.append(part.name)
            if part.name == "files":
                data = await part.read()
                files.append({"filename": part.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            else:
                fields[part.name] = await part.text()
        problems = contract.check(request.method, request.path, dict(request.query), form=names)
        record(contract_log, contract, request, problems)
        if problems:
            return contract_refusal(problems)
        name = fields.get("name", "")
        entry = {"fields": fields, "files": files, "outcome": "pending"}
        received[f"add:{name}"].append(entry)

        def refuse(status, code, message):
            entry["outcome"] = code
            return error(status, code, message)

        if not files:
            return refuse(422, "invalid_request", "At least one audio file is required in 'files'.")
        if not name:
            return refuse(422, "invalid_request", "'name' is required.")
        if faults.get(name) == "fail":
            return refuse(500, "internal_error", "voice cloning failed")
        if faults.get(name) == "hang":
            await asyncio.sleep(60)
        if faults.get(name) == "slow":
            await asyncio.sleep(1.5)
        if len(acct["voices"]) >= acct["slots"]:
            limit = acct["slots"]
            return refuse(400, "voice_limit_reached", f"You have reached your maximum amount of custom voices ({limit}).")
        voice_id = "cloned" + secrets.token_hex(8)
        labels = json.loads(fields["labels"]) if fields.get("labels") else {}
        acct["voices"][voice_id] = {"name": name, "labels": labels, "files": files}
        acct["peak"] = max(acct["peak"], len(acct["voices"]))
        added_ids.add(voice_id)
        entry["outcome"] = "added"
        entry["voice_id"] = voice_id
        return web.json_response({"voice_id": voice_id, "requires_verification": False})

    async def delete_voice(request):
        acct = account(request)
        if acct is None:
            return error(401, "invalid_api_key", "Invalid API key")
        voice_id = request.match_info["voice_id"]
        received[f"delete:{voice_id}"].append({})
        if acct["voices"].pop(voice_id, None) is None:
            return error(400, "voice_does_not_exist", f"A voice with the voice_id {voice_id} does not exist.")
        return web.json_response({"status": "ok"})

    async def set_fault(request):
        body = await request.json()
        if body.get("fault") not in ("fail", "hang", "slow", "busy", "cut", "mute"):
            return error(400, "invalid_request", f"unknown fault {body.get('fault')!r}")
        faults[body["target"]] = body["fault"]
        return web.json_response({"ok": True})

    async def configure_account(request):
        body = await request.json()
        acct = accounts[request.match_info["name"]]
        fields = (
            ("voiceSlots", "slots"),
            ("concurrency", "concurrency"),
            ("characters", "characters"),
            ("latencyMs", "latency_ms"),
        )
        for field, key in fields:
            if field in body:
                acct[key] = int(body[field])
        return web.json_response({"ok": True})

    async def account_voices(request):
        acct = accounts[request.match_info["name"]]
        held = {vid: v["files"] for vid, v in acct["voices"].items()}
        return web.json_response({"voices": held, "peak": acct["peak"]})

    async def account_speech(request):
        acct = accounts[request.match_info["name"]]
        first, last = acct["first_at"], acct["last_at"]
        return web.json_response(
            {
                "served": acct["served"],
                "refusedBusy": acct["refused_busy"],
                "peakBusy": acct["peak_busy"],
                "busySeconds": (last - first) if first is not None and last is not None else 0,
            }
        )

    async def requests_for(request):
        return web.json_response(received.get(request.match_info["voice_id"], []))

    app = web.Application(middlewares=[contract_check(contract, contract_log)])
    app.router.add_post("/v1/text-to-speech/{voice_id}", text_to_speech)
    app.router.add_post("/v1/text-to-speech/{voice_id}/stream", text_to_speech_stream)
    app.router.add_get("/v1/voices", voices)
    app.router.add_post("/v1/voices/add", add_voice)
    app.router.add_delete("/v1/voices/{voice_id}", delete_voice)
    app.router.add_post("/_test/faults", set_fault)
    app.router.add_post("/_test/accounts/{name}", configure_account)
    app.router.add_get("/_test/accounts/{name}/voices", account_voices)
    app.router.add_get("/_test/accounts/{name}/speech", account_speech)
    app.router.add_get("/_test/requests/{voice_id}", requests_for)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8430)
    parser.add_argument("--api-key", default="xi-local-key")
    parser.add_argument("--voice-slots", type=int, default=30)
    parser.add_argument("--stream-chunks", type=int, default=8)
    parser.add_argument("--stream-delay-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--contract-log", help="append every checked request here, one JSON line each")
    args = parser.parse_args()
    app = make_app(
        args.api_key, args.voice_slots, args.stream_chunks, args.stream_delay_ms, args.concurrency, args.contract_log
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)
