"""Creates the local tables and bucket from template.yaml and writes the functions' environment.

Nothing here restates the schema: every AWS::DynamoDB::Table and AWS::S3::Bucket in the template
is created on the moto server as declared (keys, indexes, TTL, streams, CORS). `functions.json`
holds each function's environment as Lambda would give it (the template's Globals and the
function's own Variables, resolved for the local stack); `stack.env` the Globals alone, for the
local tools and the tests' own use. Idempotent: what exists is left alone.

Usage: provision.py TEMPLATE STATE_DIR   (ports come from the environment, see stack.sh)
"""

import json
import os
import re
import sys

import urllib.error
import urllib.parse
import urllib.request

import boto3
import yaml

STACK_NAME = "voice-local"
# The stand-ins' own credentials (local/idp/server.mjs, localstripe accepts any sk_test key).
LOCAL_SECRETS = {
    "AUTH0_CLIENT_SECRET_PARAM": "voice-local-secret",
    "STRIPE_SECRET_KEY_PARAM": "sk_test_local",
    "ELEVENLABS_API_KEY_PARAM": "xi-local-key",
    "STRIPE_WEBHOOK_SECRET_PARAM": "whsec_local_test",
    # local/stack.sh starts redis-server with this user's password; the value has the shape of
    # the Secrets Manager secret the template generates.
    "REDIS_PASSWORD_PARAM": '{"username": "voice-app", "password": "voice-local-redis"}',
    "SESSION_MAC_KEY_PARAM": "local-session-mac-key-0123456789abcdef",
}
# The local Stripe catalogue: in a real account these prices are made in the Stripe dashboard and
# their ids go into the template's parameters. Amounts as in the tier table (shared/src/tiers.rs).
LOCAL_PRICES = {
    "StripePriceBasicMonthly": ("price_basic_monthly", "prod_voice_basic", 999, "month"),
    "StripePriceBasicYearly": ("price_basic_yearly", "prod_voice_basic", 9990, "year"),
    "StripePricePremiumMonthly": ("price_premium_monthly", "prod_voice_premium", 2999, "month"),
    "StripePricePremiumYearly": ("price_premium_yearly", "prod_voice_premium", 29990, "year"),
    # TEAM: per seat and month, on a workspace's own customer.
    "StripePriceTeamMonthly": ("price_team_monthly", "prod_voice_team", 1500, "month"),
}
ACCOUNT_ID = "123456789012"  # moto's default account
# The local CloudFront key pair (made by `local/standins/cdn.py --make-key`, which local/stack.sh
# runs first) and the id the stand-in knows it by; in AWS, CloudFront names the public key.
CDN_KEYS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".local", "cloudfront")
CDN_KEY_PAIR_ID = "KLOCALAUDIOKEY"
# The WebSocket API's id in local ARNs (the local API serves it; IAM judges its calls by this id).
PUSH_API_ID = "local"
# Where the cache password lives locally (in AWS: SSM's Secrets Manager reference path).
LOCAL_CACHE_PASSWORD = "/voice-local/cache-password"
# In stack.env for the local tools, never in a function's environment.
STACK_ONLY = {"API_PORT", "AWS_CALL_LOG"}
REGION = "us-east-1"


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub, …) as their long forms."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load_template(path):
    with open(path) as f:
        return yaml.load(f, Loader=CfnLoader)


def port(name, default):
    return int(os.environ.get(name, default))


def local_parameters():
    api = f"http://127.0.0.1:{port('API_PORT', 3001)}"
    # The web client is served by the local API; 5173 is for a separate dev server, and
    # API_TEST_PORT is the local API that `make test` drives in a browser.
    app = os.environ.get("LOCAL_APP_URL", api)
    tests = f"http://127.0.0.1:{port('API_TEST_PORT', 3002)}"
    return {
        "Stage": "local",
        "AppUrl": app,
        "AllowedOrigins": list(dict.fromkeys([app, api, "http://localhost:5173", "http://127.0.0.1:5173", tests])),
        "Auth0Issuer": f"http://127.0.0.1:{port('IDP_PORT', 4400)}/",
        "Auth0ClientId": "voice-local",
        "CallbackUrl": f"{api}/auth/callback",
        "Auth0ClientSecretParameter": "/voice-local/auth0-client-secret",
        "StripeSecretKeyParameter": "/voice-local/stripe-secret-key",
        # Through our stand-in, which fills localstripe's gaps and passes the rest on.
        "StripeApiBase": f"http://127.0.0.1:{port('STRIPE_GAPS_PORT', 8440)}/",
        "StripeWebhookSecretParameter": "/voice-local/stripe-webhook-secret",
        "SessionMacKeyParameter": "/voice-local/session-mac-key",
        **{name: price[0] for name, price in LOCAL_PRICES.items()},
        "StripeOverageMeterEvent": "voice_overage_generations",
        "StripePriceOverage": "price_overage_generation",
        "ElevenLabsApiKeyParameter": "/voice-local/elevenlabs-api-key",
        "ElevenLabsApiBase": f"http://127.0.0.1:{port('ELEVENLABS_PORT', 8430)}/",
        "ElevenLabsVoiceSlots": "30",
        # The stand-in's account takes 50 requests at once (local/standins/elevenlabs.py).
        "ElevenLabsConcurrency": "50",
        # One account locally; tests that need several make their own at the stand-in.
        "ElevenLabsMoreAccounts": "",
        "BillingEmailFrom": "billing@voice.local",
        "SessionIdleSeconds": "900",
        # Host-only cookie: the local API serves every route, the streamed one included.
        "SessionCookieDomain": "",
        "SessionAbsoluteSeconds": "43200",
        # Audio through the CloudFront stand-in (local/standins/cdn.py), signed with the local pair.
        "CloudFrontPublicKey": read_if_there(os.path.join(CDN_KEYS, "public.pem")),
        "CloudFrontPrivateKeyParameter": "/voice-local/cloudfront-private-key",
    }


def read_if_there(path):
    return open(path).read() if os.path.exists(path) else ""


NO_VALUE = object()


def condition(name, conditions, params):
    """Evaluates one of the template's Conditions (Fn::Equals, Fn::Not, Ref of a parameter)."""
    def evaluate(expr):
        (fn, arg), = expr.items()
        if fn == "Fn::Not":
            return not evaluate(arg[0])
        if fn == "Fn::Equals":
            left, right = (params[v["Ref"]] if isinstance(v, dict) else str(v) for v in arg)
            return left == right
        if fn == "Condition":
            return condition(arg, conditions, params)
        raise KeyError(f"{fn} in a condition is not resolvable locally")
    return evaluate(conditions[name])


def resolve(value, resources, params, overrides, conditions=None):
    """Resolves the intrinsic functions the template uses, for the local stack (NO_VALUE for
    AWS::NoValue)."""
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        return [resolve(v, resources, params, overrides) for v in value]
    (fn, arg), = value.items()
    if fn == "Fn::If":
        name, then, otherwise = arg
        chosen = then if condition(name, conditions or {}, params) else otherwise
        return resolve(chosen, resources, params, overrides, conditions)
    if fn == "Ref":
        if arg == "AWS::NoValue":
            return NO_VALUE
        if arg == "AWS::StackName":
            return STACK_NAME
        if arg in overrides:
            return overrides[arg]
        if arg in params:
            return params[arg]
        if arg in resources:
            return physical_name(resources[arg])
        raise KeyError(f"!Ref {arg} has no local value")
    if fn == "Fn::Sub":
        def sub(m):
            name = m.group(1)
            pseudo = {
                "AWS::StackName": STACK_NAME,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::Region": REGION,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::Partition": "aws",
            }
            if name in pseudo:
                return pseudo[name]
            if name in params:
                return params[name]
            if name in overrides:
                return overrides[name]
            raise KeyError(f"${{{name}}} has no local value")
        return re.sub(r"\$\{([^}]+)\}", sub, arg)
    if fn == "Fn::Join":
        sep, parts = arg
        flat = []
        for p in resolve(parts, resources, params, overrides):
            flat.extend(p if isinstance(p, list) else [p])
        return sep.join(flat)
    raise KeyError(f"{fn} is not resolvable locally")


def physical_name(resource):
    props = resource["Properties"]
    raw = (
        props.get("TableName")
        or props.get("BucketName")
        or props.get("Template", {}).get("TemplateName")
        or (props.get("Name") if resource["Type"] == "AWS::SSM::Parameter" else None)
    )
    return resolve(raw, {}, {}, {})


ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
HARNESS_USER = f"{STACK_NAME}-harness"


def harness_identity(endpoint, state_dir):
    """The tests' and local tools' own IAM user (a developer's, in AWS), allowed everything; its
    access key is kept in STATE_DIR/aws-harness.json for as long as this moto server lives."""
    path = os.path.join(state_dir, "aws-harness.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=saved["AccessKeyId"], aws_secret_access_key=saved["SecretAccessKey"],
        )
        try:
            iam.get_user(UserName=HARNESS_USER)
            return saved
        except iam.exceptions.NoSuchEntityException:
            pass  # a new moto server: it knows nobody yet, and authenticates nobody until told to
    iam = boto3.client(
        "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap"
    )
    try:
        user = iam.create_user(UserName=HARNESS_USER)["User"]
    except iam.exceptions.ClientError as error:
        raise SystemExit(
            f"moto refused to create the harness identity ({error}): it already checks requests and "
            f"{path} is gone. Restart the stack: make down && make up"
        )
    iam.put_user_policy(UserName=HARNESS_USER, PolicyName="everything", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName=HARNESS_USER)["AccessKey"]
    saved = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"], "Arn": user["Arn"]}
    with open(path, "w") as f:
        json.dump(saved, f)
    print(f"  iam    {HARNESS_USER:32} created (the tests' own identity)")
    return saved


def role_name(logical):
    return f"{STACK_NAME}-{logical}"


def role_credentials(session, endpoint, logical, binary, harness_arn):
    """The function's role, as Lambda assumes it: temporary credentials with a session token.
    In moto the role may do anything (moto matches a non-S3 call's resource only against `*`);
    what the template allows each function is judged after the tests (local/contracts/iam_check.py)."""
    iam, sts = session.client("iam", endpoint_url=endpoint), session.client("sts", endpoint_url=endpoint)
    name = role_name(logical)
    # In AWS the trusted principal is the service lambda.amazonaws.com; locally the harness plays
    # Lambda's part (and moto cannot evaluate a Service principal when it checks a trust policy).
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": harness_arn}, "Action": "sts:AssumeRole"}],
    }
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="local", PolicyDocument=ALLOW_ALL)
    arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
    credentials = sts.assume_role(RoleArn=arn, RoleSessionName=binary, DurationSeconds=43200)["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def create_email_template(ses, name, props):
    existing = [t["Name"] for t in ses.list_templates().get("TemplatesMetadata", [])]
    if name in existing:
        return False
    template = {k: v for k, v in props["Template"].items() if k != "TemplateName"}
    ses.create_template(Template={"TemplateName": name, **template})
    return True


def create_table(dynamodb, name, props):
    existing = dynamodb.list_tables()["TableNames"]
    if name in existing:
        return False
    args = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in props:
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        args["SSESpecification"] = {"Enabled": True}
    dynamodb.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    return True


def create_bucket(s3, name, props, params):
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if name in existing:
        return False
    s3.create_bucket(Bucket=name)
    cors = props.get("CorsConfiguration")
    if cors:
        rules = []
        for rule in cors["CorsRules"]:
            origins = resolve(rule["AllowedOrigins"], {}, params, {})
            rules.append(
                {
                    "AllowedMethods": rule["AllowedMethods"],
                    "AllowedOrigins": origins if isinstance(origins, list) else [origins],
                    "AllowedHeaders": rule.get("AllowedHeaders", []),
                    "MaxAgeSeconds": rule.get("MaxAge", 0),
                }
            )
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
    return True


def stripe_call(method, url, form=None):
    data = urllib.parse.urlencode(form).encode() if form else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": "Bearer sk_test_local", "Test-Setup": "localstripe"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def stripe_meter_id(base, event_name):
    request = urllib.request.Request(f"{base}v1/billing/meters", headers={"Authorization": "Bearer sk_test_local", "Test-Setup": "localstripe"})
    with urllib.request.urlopen(request, timeout=10) as response:
        meters = json.load(response)["data"]
    return next(m["id"] for m in meters if m["event_name"] == event_name)


def stripe_catalogue(base, api_port):
    for price_id, product, amount, interval in LOCAL_PRICES.values():
        if stripe_call("GET", f"{base}v1/plans/{price_id}") == 200:
            continue
        stripe_call("POST", f"{base}v1/products", {"id": product, "name": product, "type": "service"})
        status = stripe_call(
            "POST",
            f"{base}v1/plans",
            {"id": price_id, "product": product, "amount": amount, "currency": "usd", "interval": interval},
        )
        if status != 200:
            raise RuntimeError(f"localstripe refused plan {price_id} ({status})")
        print(f"  price  {price_id:32} created")
    # The meter counting generations past the allowance (the stand-in keeps meters itself).
    meter = local_parameters()["StripeOverageMeterEvent"]
    form = {"event_name": meter, "display_name": "Generations past the allowance", "default_aggregation[formula]": "sum"}
    if stripe_call("POST", f"{base}v1/billing/meters", form) == 200:
        print(f"  meter  {meter:32} created")
    # Its metered price, at the tier table's overage unit (the stand-in keeps metered prices; the
    # lookup key is the local price's id).
    overage = local_parameters()["StripePriceOverage"]
    if stripe_call("GET", f"{base}v1/prices/{overage}") != 200:
        meter_id = stripe_meter_id(base, meter)
        form = {
            "lookup_key": overage, "currency": "usd", "unit_amount": 10, "product": "prod_voice_overage",
            "nickname": "Generation past the allowance", "recurring[interval]": "month",
            "recurring[usage_type]": "metered", "recurring[meter]": meter_id,
        }
        if stripe_call("POST", f"{base}v1/prices", form) != 200:
            raise RuntimeError(f"the stand-in refused the metered price {overage}")
        print(f"  price  {overage:32} created")
    # `make run`: localstripe's and the stand-in's webhooks go to the local API, and to the one
    # `make test` drives in a browser (each applies an event once; they share the tables).
    for name, api in [("local-api", api_port), ("local-api-tests", port("API_TEST_PORT", 3002))]:
        stripe_call(
            "POST",
            f"{base}_config/webhooks/{name}",
            {"url": f"http://127.0.0.1:{api}/billing/webhook", "secret": LOCAL_SECRETS["STRIPE_WEBHOOK_SECRET_PARAM"]},
        )


def main():
    template_path, state_dir = sys.argv[1], sys.argv[2]
    template = load_template(template_path)
    resources = template["Resources"]
    params = local_parameters()
    endpoint = f"http://127.0.0.1:{port('MOTO_PORT', 5055)}"
    harness = harness_identity(endpoint, state_dir)
    session = boto3.session.Session(
        aws_access_key_id=harness["AccessKeyId"], aws_secret_access_key=harness["SecretAccessKey"], region_name=REGION
    )
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    ses = session.client("ses", endpoint_url=endpoint)

    for logical, resource in resources.items():
        # Fn::ForEach entries (the alarms) are templates of resources, none of them local.
        if not isinstance(resource, dict):
            continue
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = physical_name(resource)
            made = create_table(dynamodb, name, resource["Properties"])
            print(f"  table  {name:32} {'created' if made else 'exists'}")
        elif kind == "AWS::S3::Bucket":
            name = physical_name(resource)
            made = create_bucket(s3, name, resource["Properties"], params)
            print(f"  bucket {name:32} {'created' if made else 'exists'}")
        elif kind == "AWS::SES::Template":
            name = physical_name(resource)
            made = create_email_template(ses, name, resource["Properties"])
            print(f"  email  {name:32} {'created' if made else 'exists'}")
        elif kind == "AWS::SSM::Parameter":
            name = physical_name(resource)
            props = resource["Properties"]
            session.client("ssm", endpoint_url=endpoint).put_parameter(
                Name=name, Value=props["Value"], Type=props["Type"], Overwrite=True
            )
            print(f"  param  {name:32} stored")
    # In AWS the sender identity is verified once by hand (DNS); moto verifies on request.
    ses.verify_email_identity(EmailAddress=params["BillingEmailFrom"])

    overrides = {
        "RedisCache.Endpoint.Address": "127.0.0.1",
        "RedisCache.Endpoint.Port": str(port("REDIS_PORT", 6390)),
        "AudioDistribution.DomainName": f"127.0.0.1:{port('CDN_PORT', 8450)}",
        "AudioPublicKey": CDN_KEY_PAIR_ID,
        "PushApi": PUSH_API_ID,
    }
    variables = {}
    for key, value in template["Globals"]["Function"]["Environment"]["Variables"].items():
        resolved = resolve(value, resources, params, overrides, template.get("Conditions", {}))
        if resolved is not NO_VALUE:
            variables[key] = resolved
    # In AWS the cache password is read through SSM's reserved Secrets Manager path, which moto
    # (like SSM) refuses to write: locally it is an ordinary SecureString.
    variables["REDIS_PASSWORD_PARAM"] = LOCAL_CACHE_PASSWORD
    # Secrets go where the functions look for them in AWS: SSM SecureString parameters.
    ssm = session.client("ssm", endpoint_url=endpoint)
    for key, name in variables.items():
        if key.endswith("_PARAM"):
            if key == "CLOUDFRONT_PRIVATE_KEY_PARAM":
                value = open(os.path.join(CDN_KEYS, "private.pem")).read()
            elif key in LOCAL_SECRETS:
                value = LOCAL_SECRETS[key]
            else:
                raise KeyError(f"{key} names a secret with no local value")
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
            print(f"  secret {name:32} stored")
    # ElastiCache speaks TLS; the local redis-server does not.
    variables["REDIS_URL"] = variables["REDIS_URL"].replace("rediss://", "redis://", 1)
    # The WebSocket API is the local API itself (local/api/src/push.rs): its management endpoint
    # and the socket clients open.
    api = f"127.0.0.1:{port('API_PORT', 3001)}"
    variables["PUSH_ENDPOINT"] = f"http://{api}"
    variables["PUSH_URL"] = f"ws://{api}/push"
    # CloudFront serves HTTPS; its local stand-in, plain HTTP.
    if "CLOUDFRONT_DOMAIN" in variables:
        variables["CLOUDFRONT_DOMAIN"] = variables["CLOUDFRONT_DOMAIN"].replace("https://", "http://", 1)
    variables.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "S3_FORCE_PATH_STYLE": "true",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": harness["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": harness["SecretAccessKey"],
            "API_PORT": str(port("API_PORT", 3001)),
            # Where the local API records the WebSocket management calls it judged (beside
            # moto's own record of the AWS calls), for local/contracts/iam_check.py.
            "AWS_CALL_LOG": os.path.join(os.path.abspath(state_dir), "contracts", "aws.jsonl"),
        }
    )

    stripe_catalogue(variables["STRIPE_API_BASE"], port("API_PORT", 3001))

    # Each function's own environment, as Lambda would give it: the template's Globals and the
    # function's own Variables, resolved as above, plus what Lambda sets (region, the role's
    # credentials) and what only the local stack needs (moto's endpoint, path-style S3).
    functions = {}
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource["Type"] != "AWS::Serverless::Function":
            continue
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        environment = {k: v for k, v in variables.items() if k not in STACK_ONLY}
        for key, value in own.items():
            resolved = resolve(value, resources, params, overrides, template.get("Conditions", {}))
            if resolved is not NO_VALUE:
                environment[key] = resolved
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        environment["AWS_LAMBDA_FUNCTION_NAME"] = f"{STACK_NAME}-{logical}"
        environment.update(role_credentials(session, endpoint, logical, binary, harness["Arn"]))
        functions[binary] = {"function": logical, "role": role_name(logical), "environment": environment}
    functions_path = os.path.join(os.path.abspath(state_dir), "functions.json")
    with open(functions_path, "w") as f:
        json.dump(functions, f, indent=2, sort_keys=True)
    variables["LOCAL_FUNCTIONS"] = functions_path

    with open(os.path.join(state_dir, "stack.env"), "w") as f:
        for key, value in variables.items():
            f.write(f"{key}={value}\n")

    # From here on moto checks every request's SigV4 signature (and session token) against the
    # identities above, as AWS does.
    reset = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(reset).close()
    print("  moto   request authentication on (SigV4, per-function role credentials)")

    # For `sam local` (Docker): the same values, with the host reachable from the container.
    docker = {k: v.replace("127.0.0.1", "host.docker.internal") for k, v in variables.items()}
    with open(os.path.join(state_dir, "sam-env.json"), "w") as f:
        json.dump({"Parameters": docker}, f, indent=2)


if __name__ == "__main__":
    main()
