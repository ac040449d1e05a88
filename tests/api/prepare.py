"""What the schemathesis runs need beyond signed-in users (tests/e2e.sh), made through the API as
a client would: reads the users `bench-users` printed (a JSON line each) and prints them again
with what was made.

    prepare.py keys BASE USERS    each user makes an API key (`key`)
    prepare.py voice BASE USERS   the first user clones a voice from a sample (`voiceId`)
"""

import json
import pathlib
import sys
import urllib.request

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "local" / "standins" / "sample.mp3"


def call(base, user, method, path, body=None):
    headers = {"Cookie": user["cookie"], "X-CSRF-Token": user["csrf"]}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def make_key(base, user):
    user["key"] = call(base, user, "POST", "/api-keys", {"name": "schemathesis"})["key"]


def make_voice(base, user):
    """A sample uploaded as the web client does (its presigned PUT straight to storage), then a
    clone from it with the consent statement accepted."""
    audio = SAMPLE.read_bytes()
    upload = call(base, user, "POST", "/voices/samples", {"contentType": "audio/mpeg", "sizeBytes": len(audio)})
    put = urllib.request.Request(upload["uploadUrl"], data=audio, method=upload["method"], headers=upload["headers"])
    urllib.request.urlopen(put).close()
    consent = call(base, user, "GET", "/voices/consent")["version"]
    voice = call(
        base,
        user,
        "POST",
        "/voices",
        {"name": "schemathesis", "sampleIds": [upload["sampleId"]], "consent": {"accepted": True, "statement": consent}},
    )
    user["voiceId"] = voice["voiceId"]


def main(what, base, path):
    users = [json.loads(line) for line in open(path) if line.strip()]
    if what == "keys":
        for user in users:
            make_key(base, user)
    elif what == "voice":
        make_voice(base, users[0])
    else:
        sys.exit(f"prepare.py: unknown {what!r} (keys or voice)")
    for user in users:
        print(json.dumps(user))


if __name__ == "__main__":
    main(*sys.argv[1:])
