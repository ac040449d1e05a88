"""The official ElevenLabs SDK against our ElevenLabs stand-in (run by `make test`, the stack up):
what the stand-in answers is read by the SDK's own response models, and the limits real accounts
hit come back with ElevenLabs' status codes and `detail.status` codes.

Each test uses an account of its own at the stand-in (key `xi-local-key:NAME`)."""

import json
import os
import pathlib
import secrets
import unittest
import urllib.request

import httpx
from elevenlabs import ElevenLabs, VoiceSettings
from elevenlabs.core.api_error import ApiError

BASE = f"http://127.0.0.1:{os.environ.get('ELEVENLABS_PORT', '8430')}"
PREMADE = "21m00Tcm4TlvDq8ikWAM"
SAMPLE = (pathlib.Path(__file__).resolve().parent.parent / "standins" / "sample.mp3").read_bytes()
CONNECTIONS = []  # closed after the tests


def client_for(key):
    connection = httpx.Client(timeout=10)
    CONNECTIONS.append(connection)
    return ElevenLabs(api_key=key, base_url=BASE, httpx_client=connection)


def account(**limits):
    """A fresh stand-in account with `limits` (voiceSlots, concurrency, characters); its client."""
    name = "sdk-" + secrets.token_hex(6)
    if limits:
        request = urllib.request.Request(
            f"{BASE}/_test/accounts/{name}", data=json.dumps(limits).encode(), method="POST",
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()
    return client_for(f"xi-local-key:{name}")


def speak(client, text="Hello from the SDK.", voice=PREMADE):
    audio = client.text_to_speech.convert(
        voice,
        text=text,
        model_id="eleven_multilingual_v2",
        output_format="mp3_44100_128",
        voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.75, style=0.0, use_speaker_boost=True, speed=1.0),
    )
    return b"".join(audio)


def clone(client, name):
    return client.voices.ivc.create(name=name, files=[("sample.mp3", SAMPLE, "audio/mpeg")], labels={"k": "v"})


def refusal(call):
    """The ApiError the SDK raised for `call`: (HTTP status, detail.status)."""
    try:
        call()
    except ApiError as error:
        return error.status_code, (error.body or {}).get("detail", {}).get("status")
    raise AssertionError("the SDK raised nothing")


class ElevenLabsSdkAgainstTheStandIn(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        for connection in CONNECTIONS:
            connection.close()

    def test_speech_whole_and_streamed_is_mp3(self):
        client = account()
        self.assertEqual(speak(client)[:3], SAMPLE[:3])
        streamed = b"".join(client.text_to_speech.stream(PREMADE, text="Streamed.", model_id="eleven_multilingual_v2"))
        self.assertEqual(streamed, SAMPLE)

    def test_voices_are_listed_added_and_deleted_in_the_sdks_models(self):
        client = account()
        premade = client.voices.get_all().voices
        self.assertIn(PREMADE, [v.voice_id for v in premade])
        self.assertTrue(all(v.name and v.category == "premade" for v in premade))

        added = clone(client, "sdk-clone")
        self.assertFalse(added.requires_verification)
        listed = {v.voice_id: v for v in client.voices.get_all().voices}
        self.assertEqual(listed[added.voice_id].category, "cloned")
        self.assertEqual(listed[added.voice_id].labels, {"k": "v"})
        self.assertEqual(client.voices.delete(added.voice_id).status, "ok")
        self.assertEqual(refusal(lambda: speak(client, voice=added.voice_id)), (404, "voice_not_found"))

    def test_the_limits_real_accounts_hit(self):
        full = account(voiceSlots=0)
        self.assertEqual(refusal(lambda: clone(full, "one-too-many")), (400, "voice_limit_reached"))
        spent = account(characters=3)
        self.assertEqual(refusal(lambda: speak(spent)), (401, "quota_exceeded"))
        busy = account(concurrency=0)
        self.assertEqual(refusal(lambda: speak(busy)), (429, "too_many_concurrent_requests"))
        self.assertEqual(refusal(lambda: speak(client_for("wrong"))), (401, "invalid_api_key"))


if __name__ == "__main__":
    unittest.main()
