"""The permission check denies what the template does not grant (run by `make test`)."""

import contextlib
import io
import json
import pathlib
import tempfile
import unittest

import iam_check

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
TEMPLATE = ROOT / "template.yaml"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table"


def statements(function):
    template = iam_check.provision.load_template(TEMPLATE)
    resolver = iam_check.Resolver(template)
    return [s for s, _ in iam_check.function_statements(template, resolver, {})[function]]


def allowed(function, action, resource, context=None):
    return any(
        s["Effect"] == "Allow" and iam_check.permits(s, action, resource, context or {}) for s in statements(function)
    )


class IamCheck(unittest.TestCase):
    def test_the_template_resolves_to_local_arns(self):
        self.assertTrue(allowed("WebhookFunction", "dynamodb:GetItem", f"{TABLE}/voice-local-webhook-events"))
        self.assertTrue(allowed("TtsFunction", "s3:PutObject", "arn:aws:s3:::voice-local-audio-123456789012/u/1.mp3"))

    def test_an_action_or_resource_not_granted_is_denied(self):
        self.assertFalse(allowed("WebhookFunction", "dynamodb:Scan", f"{TABLE}/voice-local-webhook-events"))
        self.assertFalse(allowed("WebhookFunction", "dynamodb:GetItem", f"{TABLE}/voice-local-recordings"))
        self.assertFalse(allowed("HealthFunction", "ssm:GetParameters", "arn:aws:ssm:us-east-1:123456789012:parameter/voice-local/stripe-secret-key"))

    def test_a_condition_needs_its_key(self):
        sender = "arn:aws:ses:us-east-1:123456789012:identity/billing@voice.local"
        self.assertTrue(allowed("WebhookFunction", "ses:SendTemplatedEmail", sender, {"ses:FromAddress": "billing@voice.local"}))
        self.assertFalse(allowed("WebhookFunction", "ses:SendTemplatedEmail", sender, {"ses:FromAddress": "x@evil.test"}))
        self.assertFalse(allowed("WebhookFunction", "ses:SendTemplatedEmail", sender, {}))

    def test_a_test_named_parameter_is_judged_as_the_one_it_stands_in_for(self):
        named = "arn:aws:ssm:us-east-1:123456789012:parameter/voice-local/test/stripe-secret-key/missing"
        self.assertEqual(iam_check._as_configured(named), named.replace("test/stripe-secret-key/missing", "stripe-secret-key"))

    def test_the_keys_of_more_elevenlabs_accounts_are_granted_beside_the_primary_one_and_nothing_else(self):
        parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/voice-local/elevenlabs-api-key"
        self.assertTrue(allowed("TtsFunction", "ssm:GetParameters", parameter))
        self.assertTrue(allowed("TtsFunction", "ssm:GetParameters", f"{parameter}/overflow"))
        self.assertFalse(allowed("TtsFunction", "ssm:GetParameters", f"{parameter}-other"))
        self.assertFalse(allowed("SessionFunction", "ssm:GetParameters", f"{parameter}/overflow"))

    def test_a_denied_call_fails_the_check_naming_function_action_and_resource(self):
        with tempfile.TemporaryDirectory() as folder:
            functions = pathlib.Path(folder) / "functions.json"
            functions.write_text(json.dumps({"webhook": {"function": "WebhookFunction", "role": "voice-local-WebhookFunction"}}))
            calls = pathlib.Path(folder) / "aws.jsonl"
            call = {"principal": {"role": "voice-local-WebhookFunction"}, "action": "dynamodb:DeleteTable",
                    "resources": [f"{TABLE}/voice-local-users"], "context": {}}
            calls.write_text(json.dumps(call) + "\n")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                failed = iam_check.check(TEMPLATE, functions, calls, ROOT / "README.md")
        self.assertEqual(failed, 1)
        self.assertIn(f"DENIED (1x) WebhookFunction: dynamodb:DeleteTable on {TABLE}/voice-local-users", out.getvalue())


if __name__ == "__main__":
    unittest.main()
