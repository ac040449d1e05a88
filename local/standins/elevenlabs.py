"""ElevenLabs stand-in for the local stack and the tests (our own; only the endpoints we use).

  POST /v1/text-to-speech/{voice_id}   returns real MP3 audio (sample.mp3, made once with espeak-ng)
  GET  /v1/voices                      a small fixed voice list

Requests need the `xi-api-key` the local stack configures. Test controls, chosen per request so
parallel tests never interfere:
  - a voice id starting with `fail-` answers 500; one starting with `hang-` never answers in time;
  - every text-to-speech request body is kept, and GET /_test/requests/{voice_id} returns them.
"""

import argparse
import asyncio
import pathlib
from collections import defaultdict

from aiohttp import web

AUDIO = (pathlib.Path(__file__).parent / "sample.mp3").read_bytes()
VOICES = [
    {"voice_id": "21m00Tcm4TlvDq8ikWAM", "name": "Rachel", "category": "premade", "labels": {"accent": "american"}},
    {"voice_id": "AZnzlk1XvdvUeBnXmlld", "name": "Domi", "category": "premade", "labels": {"accent": "american"}},
    {"voice_id": "EXAVITQu4vr4xnSDxMaL", "name": "Bella", "category": "premade", "labels": {"accent": "british"}},
]


def make_app(api_key):
    received = defaultdict(list)

    def authorized(request):
        return request.headers.get("xi-api-key") == api_key

    async def text_to_speech(request):
        if not authorized(request):
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        voice_id = request.match_info["voice_id"]
        body = await request.json()
        received[voice_id].append({"body": body, "query": dict(request.query)})
        if voice_id.startswith("fail-"):
            return web.json_response({"detail": {"status": "internal_error"}}, status=500)
        if voice_id.startswith("hang-"):
            await asyncio.sleep(60)
        return web.Response(body=AUDIO, content_type="audio/mpeg")

    async def voices(request):
        if not authorized(request):
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        return web.json_response({"voices": VOICES})

    async def requests_for(request):
        return web.json_response(received.get(request.match_info["voice_id"], []))

    app = web.Application()
    app.router.add_post("/v1/text-to-speech/{voice_id}", text_to_speech)
    app.router.add_get("/v1/voices", voices)
    app.router.add_get("/_test/requests/{voice_id}", requests_for)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8430)
    parser.add_argument("--api-key", default="xi-local-key")
    args = parser.parse_args()
    web.run_app(make_app(args.api_key), host="127.0.0.1", port=args.port, print=None)
