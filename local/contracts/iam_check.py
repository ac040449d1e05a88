"""Least privilege, proven: every AWS call a function made during `make test` (recorded by the
local moto server, local/standins/moto_local.py, with the function known by its role's
credentials; and the WebSocket management calls, recorded by the local API that serves that API
once it has checked their SigV4 signature against the functions' credentials) is judged against that function's policies in template.yaml, resolved for the
local stack (`!Ref`, `!GetAtt`, `!Sub` turned into the local names and ARNs), by moto's IAM
policy evaluator (`moto.iam.access_control.IAMPolicy`: actions and resources with wildcards,
`StringEquals` conditions; a condition key the call cannot supply never matches here).

Fails, naming function, action and resource, on any call the function's policy would deny, and
on any call moto refused (a bad signature or session token). Lists every statement (per action)
that no call exercised; each must have its reason in README.md's permissions table, or go.

Usage: iam_check.py TEMPLATE FUNCTIONS_JSON CALLS_JSONL README
"""

import collections
import json
import pathlib
import re
import sys

from moto.iam.access_control import IAMPolicy, PermissionResult

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import provision  # noqa: E402

PARTITION = "aws"


class Resolver:
    """Resolves a policy's intrinsic functions to the local stack's names and ARNs."""

    def __init__(self, template):
        self.resources = template["Resources"]
        self.params = provision.local_parameters()
        self.pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": provision.REGION,
            "AWS::AccountId": provision.ACCOUNT_ID,
            "AWS::StackName": provision.STACK_NAME,
        }

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            value = self.params[name]
            return value if isinstance(value, str) else ",".join(value)
        resource = self.resources[name]
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            return provision.PUSH_API_ID  # the WebSocket API: the local API serves it
        if resource["Type"] in ("AWS::SecretsManager::Secret", "AWS::SQS::Queue"):
            return self.arn(name)  # what Ref gives for these
        return provision.physical_name(resource)

    def arn(self, name):
        resource = self.resources[name]
        kind, where = resource["Type"], f"{provision.REGION}:{provision.ACCOUNT_ID}"
        if kind == "AWS::DynamoDB::Table":
            return f"arn:{PARTITION}:dynamodb:{where}:table/{provision.physical_name(resource)}"
        if kind == "AWS::S3::Bucket":
            return f"arn:{PARTITION}:s3:::{provision.physical_name(resource)}"
        if kind == "AWS::SecretsManager::Secret":  # AWS appends six random characters
            return f"arn:{PARTITION}:secretsmanager:{where}:secret:{self(resource['Properties']['Name'])}-*"
        if kind == "AWS::SQS::Queue":  # named by CloudFormation: no local queue exists
            return f"arn:{PARTITION}:sqs:{where}:{provision.STACK_NAME}-{name}-*"
        raise KeyError(f"{name}.Arn has no local value")

    def __call__(self, value):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                if arg[1] == "StreamArn":  # a stream's label is only known once it exists
                    return f"{self.arn(arg[0])}/stream/*"
                assert arg[1] == "Arn", f"!GetAtt {arg} is not resolvable locally"
                return self.arn(arg[0])
            if fn == "Fn::Sub":
                def sub(match):
                    name = match.group(1)
                    return self.arn(name[: -len(".Arn")]) if name.endswith(".Arn") else self.ref(name)

                return re.sub(r"\$\{([^}]+)\}", sub, self(arg) if not isinstance(arg, str) else arg)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        raise KeyError(f"{value} is not resolvable locally")


def function_statements(template, resolver, local_names):
    """function logical id -> [(statement, where)], each statement resolved to local ARNs."""
    resources = template["Resources"]
    policies = {}
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource["Type"] != "AWS::Serverless::Function":
            continue
        statements = []
        for policy in resource["Properties"].get("Policies", []):
            policy = chosen(policy, template.get("Conditions", {}), resolver.params)
            if policy is None:
                continue
            if "Ref" in policy:
                name = policy["Ref"]
                document = resources[name]["Properties"]["PolicyDocument"]
            else:
                name, document = "inline", policy
            for statement in document["Statement"]:
                resolved = resolver(statement)
                resolved["Resource"] = [_local(r, local_names) for r in _list(resolved["Resource"])]
                statements.append((resolved, name))
        policies[logical] = statements
    return policies


def chosen(policy, conditions, params):
    """A policy entry as the local stack has it: an `!If` decided by the local parameters (None
    for `AWS::NoValue`), anything else as it is."""
    while isinstance(policy, dict) and "Fn::If" in policy:
        name, then, otherwise = policy["Fn::If"]
        policy = then if provision.condition(name, conditions, params) else otherwise
    return None if policy == {"Ref": "AWS::NoValue"} else policy


def _list(value):
    return value if isinstance(value, list) else [value]


def _local(arn, local_names):
    for deployed, local in local_names.items():
        arn = arn.replace(deployed, local)
    return arn


def _as_configured(resource):
    """A parameter a test names in place of a configured one is named after it
    (`/voice-local/test/stripe-secret-key/missing` stands in for `/voice-local/stripe-secret-key`:
    a parameter that does not exist); it is judged as the one it stands in for."""
    return re.sub(r":parameter/voice-local/test/([\w-]+)/[^/]+$", r":parameter/voice-local/\1", resource)


def permits(statement, action, resource, context):
    """Whether this one statement allows `action` on `resource` for a call with `context`."""
    for keys in statement.get("Condition", {}).values():
        if any(key not in context for key in keys):
            return False
    single = {"Version": "2012-10-17", "Statement": [{**statement, "Action": _list(statement["Action"])}]}
    result = IAMPolicy(json.dumps(single)).is_action_permitted(action, resource, None, context)
    return result == PermissionResult.PERMITTED


def check(template_path, functions_path, calls_path, readme_path):
    template = provision.load_template(template_path)
    resolver = Resolver(template)
    globals_ = template["Globals"]["Function"]["Environment"]["Variables"]
    # Locally the cache password is an ordinary parameter (provision.py says why).
    local_names = {resolver(globals_["REDIS_PASSWORD_PARAM"]): provision.LOCAL_CACHE_PASSWORD}
    policies = function_statements(template, resolver, local_names)
    functions = json.loads(pathlib.Path(functions_path).read_text())
    by_role = {entry["role"]: (entry["function"], binary) for binary, entry in functions.items()}

    denied, refused = collections.Counter(), collections.Counter()
    exercised = set()
    judged, harness = 0, 0
    path = pathlib.Path(calls_path)
    calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    for call in calls:
        principal = call["principal"]
        who = by_role.get(principal.get("role"), (None, None))[0]
        if "binary" in principal:  # recorded by the local API's WebSocket management endpoint
            who = functions[principal["binary"]]["function"]
        if "refused" in call:
            refused[(who or f"user {principal.get('user')}", call["action"], call["refused"])] += 1
            continue
        if who is None:
            harness += 1  # the tests' own arranging and checking
            continue
        judged += 1
        for resource in map(_as_configured, call["resources"]):
            allowed = False
            for index, (statement, _) in enumerate(policies[who]):
                if statement["Effect"] == "Allow" and permits(statement, call["action"], resource, call["context"]):
                    allowed = True
                    exercised.add((who, index, call["action"]))
            if not allowed:
                denied[(who, call["action"], resource)] += 1

    print(f"aws: {len(calls)} calls recorded, {judged} by functions judged against template.yaml, {harness} by the tests' own user")
    failed = False
    for (who, action, resource), count in sorted(denied.items()):
        print(f"  DENIED ({count}x) {who}: {action} on {resource}")
        failed = True
    for (who, action, why), count in sorted(refused.items()):
        print(f"  REFUSED BY MOTO ({count}x) {who}: {action}: {why}")
        failed = True

    reasons = unexercised_reasons(readme_path)
    unexplained, explained = [], 0
    for who, statements in sorted(policies.items()):
        for index, (statement, source) in enumerate(statements):
            for action in _list(statement["Action"]):
                if (who, index, action) in exercised:
                    continue
                resources = ", ".join(statement["Resource"])
                if any(f in (who, "*") and a == action and r in resources for f, a, r in reasons):
                    explained += 1
                    continue
                unexplained.append(f"{who}: {action} on {resources} ({source})")
    print(f"  {explained} granted actions no test exercised, each with its reason in README.md")
    for line in unexplained:
        print(f"  UNEXERCISED, NO REASON GIVEN: {line}")
    if not calls:
        print("  no AWS call was recorded: nothing was judged")
    return 1 if failed or unexplained or not calls else 0


def unexercised_reasons(readme_path):
    """(function or *, action, resource text) rows README.md's permissions table gives a reason
    for: `| \`Function\` | \`action\` | \`resource\` | reason |`."""
    rows = set()
    for line in pathlib.Path(readme_path).read_text().splitlines():
        match = re.match(r"\|\s*`([\w*]+)`\s*\|\s*`([\w:*-]+)`\s*\|\s*`([^`]+)`\s*\|\s*\S", line)
        if match:
            rows.add(match.groups())
    return rows


if __name__ == "__main__":
    sys.exit(check(*sys.argv[1:5]))
