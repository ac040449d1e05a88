"""The speak page's own presets (PREMIUM saves, renames and deletes them; a lower tier is told
why it cannot), the profile and preferences on the account page, and uploading a recording to the
library. Each step checks what the page shows and what the backend holds."""

import json
import secrets

from playwright.sync_api import expect

from test_journey import sign_in


def custom_presets(backend, sub):
    """The user's saved presets (the row keeps them as one JSON list)."""
    return json.loads(backend.user(sub).get("customPresets", "[]"))


def preferences(row):
    return json.loads(row.get("preferences", "{}"))


def test_premium_saves_renames_and_deletes_presets_and_sets_its_preferences(page, backend, shoot, accessible):
    suffix = secrets.token_hex(4)
    sub, email = f"auth0|presets-{suffix}", f"presets-{suffix}@example.test"
    backend.table("USERS_TABLE").put_item(Item={"userId": sub, "subscriptionTier": "PREMIUM", "recordingsThisMonth": 0})
    page.goto("/")
    sign_in(page, sub, email, "Pia Premium")
    expect(page.locator("#who-tier")).to_have_text("PREMIUM")
    expect(page.locator("#no-custom-presets")).to_be_visible()

    # The sliders' values become a preset of one's own.
    page.get_by_label("Stability").fill("0.3")
    page.get_by_label("Speed").fill("1.1")
    page.get_by_label("Save the voice settings above as").fill("Warm")
    page.get_by_role("button", name="Save preset").click()
    expect(page.locator("#status")).to_have_text("The preset Warm was saved.")
    stored = custom_presets(backend, sub)
    assert [p["name"] for p in stored] == ["Warm"], stored
    assert (stored[0]["stability"], stored[0]["speed"]) == (0.3, 1.1), stored
    preset_id = stored[0]["id"]
    expect(page.get_by_label("Preset", exact=True)).to_have_value(preset_id)
    expect(page.locator("#custom-presets")).to_contain_text("stability 0.30")
    shoot(page, "preset-saved")
    accessible(page, "preset-saved")

    # Chosen again later, it puts its values back on the sliders.
    page.get_by_label("Stability").fill("0.9")
    page.get_by_label("Preset", exact=True).select_option(index=0)
    page.get_by_label("Preset", exact=True).select_option(preset_id)
    expect(page.locator("#stability-value")).to_have_text("0.30")

    page.get_by_label("Name of the preset Warm").fill("Warmer")
    page.get_by_role("button", name="Rename the preset Warm").click()
    expect(page.locator("#status")).to_have_text("The preset is now called Warmer.")
    assert [(p["id"], p["name"]) for p in custom_presets(backend, sub)] == [(preset_id, "Warmer")]
    expect(page.get_by_label("Preset", exact=True).locator("option", has_text="Warmer (yours)")).to_have_count(1)

    # A rename the API refuses says why and changes nothing.
    page.get_by_label("Name of the preset Warmer").fill("   ")
    page.get_by_role("button", name="Rename the preset Warmer").click()
    expect(page.locator("#problem")).to_contain_text("name")
    assert [p["name"] for p in custom_presets(backend, sub)] == ["Warmer"]

    # Profile and preferences: the saved preset as the default, the higher bitrate (PREMIUM).
    page.get_by_role("link", name="Account").click()
    settings = page.locator("#settings")
    expect(settings.get_by_label("Default preset")).to_contain_text("Warmer (yours)")
    settings.get_by_label("Display name").fill("Pia P.")
    settings.get_by_label("Default voice").select_option(label="Domi")
    settings.get_by_label("Default preset").select_option(preset_id)
    settings.get_by_label("Audio quality").select_option("mp3_44100_192")
    settings.get_by_role("button", name="Save profile").click()
    expect(page.locator("#status")).to_have_text("Your profile was saved.")
    row = backend.user(sub)
    assert row["name"] == "Pia P.", row
    voice_id = settings.get_by_label("Default voice").input_value()
    assert preferences(row) == {"defaultVoiceId": voice_id, "defaultPresetId": preset_id, "outputFormat": "mp3_44100_192"}, row
    shoot(page, "profile-saved")
    accessible(page, "profile-saved")
    page.reload()
    expect(settings.get_by_label("Display name")).to_have_value("Pia P.")
    expect(settings.get_by_label("Audio quality")).to_have_value("mp3_44100_192")

    # The speak page starts from the preferences.
    page.get_by_role("link", name="Speak").click()
    expect(page.get_by_label("Voice", exact=True)).to_have_value(voice_id)
    expect(page.get_by_label("Preset", exact=True)).to_have_value(preset_id)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete the preset Warmer").click()
    expect(page.locator("#status")).to_have_text("The preset Warmer was deleted.")
    assert custom_presets(backend, sub) == []
    expect(page.locator("#no-custom-presets")).to_be_visible()


def test_a_free_user_is_told_why_presets_are_not_theirs_and_uploads_a_recording(page, backend, shoot, accessible):
    suffix = secrets.token_hex(4)
    sub, email = f"auth0|uploads-{suffix}", f"uploads-{suffix}@example.test"
    page.goto("/")
    sign_in(page, sub, email, "Fred Free")
    expect(page.locator("#who-tier")).to_have_text("FREE")
    expect(page.locator("#presets-locked")).to_contain_text("part of PREMIUM")
    expect(page.locator("#presets-locked").get_by_role("link", name="Upgrade")).to_have_attribute("href", "/account")
    expect(page.locator("#preset-form")).to_be_hidden()

    page.get_by_role("link", name="Library").click()
    expect(page.locator("#no-recordings")).to_be_visible()
    expect(page.locator("#upload-allowance")).to_contain_text("0 of")
    audio = b"ID3\x03\x00\x00\x00\x00\x00\x00" + secrets.token_bytes(4086)
    page.get_by_label("Audio file").set_input_files({"name": "interview.mp3", "mimeType": "audio/mpeg", "buffer": audio})
    page.get_by_label("What it says").fill("The interview of Tuesday")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#status")).to_have_text("interview.mp3 was added to your library.")
    expect(page.locator("#recordings")).to_contain_text("The interview of Tuesday")
    expect(page.locator("#upload-allowance")).to_contain_text("1 of")

    recordings = backend.recordings(sub)
    assert len(recordings) == 1, recordings
    recording = recordings[0]
    assert (recording["source"], recording["text"], recording["contentType"]) == ("upload", "The interview of Tuesday", "audio/mpeg"), recording
    assert backend.has_object(recording["s3Key"]), "the file is in the bucket"
    stored = backend.s3.get_object(Bucket=backend.bucket, Key=recording["s3Key"])["Body"].read()
    assert stored == audio, "the bucket holds the file's exact bytes"
    assert int(backend.user(sub)["uploadsThisMonth"]) == 1
    shoot(page, "recording-uploaded")
    accessible(page, "recording-uploaded")

    # A file of a type the API does not take is refused, naming the field, and nothing is kept.
    page.get_by_label("Audio file").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not audio" * 200})
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#problem")).to_contain_text("contentType")
    assert len(backend.recordings(sub)) == 1

    # A page whose path is also the API's (GET /voices) is the page when the browser opens it.
    page.goto("/voices")
    expect(page.get_by_role("heading", name="Voices", level=1)).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Voices", level=1)).to_be_visible()
