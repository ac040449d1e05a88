"""The ElevenLabs contract check refuses what the SDK never sends (run by `make test`)."""

import unittest

from elevenlabs_contract import Contract

CONTRACT = Contract.load()
SPEECH = "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM"
SETTINGS = {"stability": 0.5, "similarity_boost": 0.75, "style": 0.0, "use_speaker_boost": True, "speed": 1.0}


class ElevenLabsContract(unittest.TestCase):
    def test_the_requests_we_send_keep_it(self):
        body = {"text": "Hi.", "model_id": "eleven_multilingual_v2", "voice_settings": SETTINGS}
        self.assertEqual(CONTRACT.check("POST", SPEECH, {"output_format": "mp3_44100_128"}, json=body), [])
        self.assertEqual(CONTRACT.check("POST", SPEECH + "/stream", {}, json=body), [])
        self.assertEqual(CONTRACT.check("GET", "/v1/voices", {}), [])
        self.assertEqual(CONTRACT.check("DELETE", "/v1/voices/abc", {}), [])
        fields = ["name", "remove_background_noise", "description", "labels", "files", "files"]
        self.assertEqual(CONTRACT.check("POST", "/v1/voices/add", {}, form=fields), [])

    def test_misspellings_are_named_at_every_level(self):
        found = CONTRACT.check("POST", SPEECH, {"output_fromat": "mp3_44100_128"}, json={"text": "Hi.", "modelid": "m"})
        self.assertIn("unknown query parameter output_fromat", found[0])
        self.assertIn("unknown field modelid", found[1])
        nested = CONTRACT.check("POST", SPEECH, {}, json={"text": "Hi.", "voice_settings": {"similarity_bost": 0.5}})
        self.assertEqual(nested, [f"POST /v1/text-to-speech/{{voice_id}}: unknown field voice_settings.similarity_bost"])
        self.assertIn("unknown multipart field file", CONTRACT.check("POST", "/v1/voices/add", {}, form=["file"])[0])

    def test_types_and_enumerations(self):
        found = CONTRACT.check("POST", SPEECH, {"output_format": "mp3_44100_129"}, json={"text": 5})
        self.assertIn("output_format must be one of", found[0])
        self.assertIn("text must be str", found[1])
        found = CONTRACT.check("POST", SPEECH, {}, json={"text": "Hi.", "voice_settings": {"speed": "fast"}})
        self.assertIn("voice_settings.speed must be float", found[0])

    def test_an_endpoint_the_sdk_does_not_call(self):
        self.assertIn("no such endpoint", CONTRACT.check("POST", "/v1/voice/add", {})[0])


if __name__ == "__main__":
    unittest.main()
