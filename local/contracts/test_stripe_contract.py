"""The Stripe contract check refuses what Stripe refuses (run by `make test`)."""

import unittest

from stripe_contract import Contract

CONTRACT = Contract.load()


def problems(method, path, *fields):
    return CONTRACT.check(method, path, list(fields))


class StripeContract(unittest.TestCase):
    def test_the_requests_we_send_keep_it(self):
        self.assertEqual(problems("POST", "/v1/customers", ("email", "a@b.c"), ("metadata[userId]", "u1")), [])
        self.assertEqual(problems("GET", "/v1/subscriptions", ("limit", "100"), ("customer", "cus_1")), [])
        self.assertEqual(problems("POST", "/v1/checkout/sessions/cs_1/expire"), [])
        self.assertEqual(problems("GET", "/v1/customers/cus_1", ("expand[]", "subscriptions")), [])

    def test_a_misspelled_parameter_is_named(self):
        found = problems("POST", "/v1/customers", ("metdata[userId]", "u1"))
        self.assertEqual(len(found), 1)
        self.assertIn("POST /v1/customers: unknown parameter metdata", found[0])

    def test_nested_parameters_are_checked_at_every_level(self):
        found = problems("POST", "/v1/subscriptions/sub_1", ("items[0][prise]", "price_1"))
        self.assertIn("unknown parameter items[0][prise]", found[0])
        found = problems("POST", "/v1/subscriptions/sub_1", ("items[x][price]", "price_1"))
        self.assertIn("items is a list", found[0])

    def test_types_and_enumerations(self):
        found = problems("POST", "/v1/subscription_schedules/sub_sched_1", ("phases[0][start_date]", "soon"))
        self.assertIn("phases[0][start_date] must be an integer", found[0])
        found = problems("POST", "/v1/checkout/sessions", ("mode", "subscriptions"))
        self.assertIn("mode must be one of", found[0])
        found = problems("POST", "/v1/checkout/sessions/cs_1/expire", ("expand[]", "x"), ("ui_mode", "embedded"))
        self.assertIn("unknown parameter ui_mode", found[0])

    def test_parameters_this_version_removed_are_refused(self):
        # 2026-10-28.endive: a phase's length is its `duration`; Checkout picks payment methods.
        self.assertTrue(problems("POST", "/v1/subscription_schedules/s", ("phases[1][iterations]", "1")))
        self.assertTrue(problems("POST", "/v1/checkout/sessions", ("payment_method_types[0]", "card")))

    def test_an_endpoint_stripe_does_not_have(self):
        self.assertIn("no such endpoint", problems("POST", "/v1/customer", ("email", "a@b.c"))[0])
        self.assertIn("no such endpoint", problems("PATCH", "/v1/customers/cus_1")[0])

    def test_request_options_are_not_parameters(self):
        self.assertIn("unknown parameter api_key", problems("GET", "/v1/customers/cus_1", ("api_key", "sk"))[0])


if __name__ == "__main__":
    unittest.main()
