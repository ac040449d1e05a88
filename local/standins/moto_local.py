"""Runs moto's server with DynamoDB requests applied one at a time, and every authenticated call
recorded for the permission check.

DynamoDB applies each request atomically: a conditional write checks its condition and writes
in one step, so fifty concurrent `recordingsThisMonth < :limit` increments with ten units left
succeed exactly ten times. moto's threaded server runs requests on parallel threads with no lock
around an item's read-check-write, so two requests can both pass the same condition. The quota
tests then fail on moto, not on the code. One lock around DynamoDB's request handling restores
the guarantee; S3, SSM and SES keep their parallel threads. moto's DynamoDB work is Python under
the GIL either way, so the lock costs little.

Once local/provision.py has switched authentication on, moto checks each request's SigV4
signature and session token against the identity it names (a function's assumed role, or the
tests' own user). Two additions here:
  - a presigned URL (signed in its query, no Authorization header) is let through unchecked, as
    moto never checks those (it would fail on the missing header); a request with neither is
    refused;
  - a form-encoded request's signature is checked on the body as sent (see `_keeping_form_body`);
  - `GET /_local/ses/templated` lists the templated emails SES has sent (id, source, template,
    template_data, destinations), read straight from moto's SES backend: moto's own
    `/moto-api/data.json` serialises every tracked object of every service (all DynamoDB items
    among them), which takes seconds once the tests have written a few hundred thousand;
  - with MOTO_CALL_LOG set, every call that passed the check is appended to that file as one JSON
    line: who made it (role or user), the IAM action, the resources it touched as ARNs, and the
    condition keys that can be known (`ses:FromAddress`). local/contracts/iam_check.py judges
    them against each function's policy in template.yaml.
"""

import html
import io
import json
import os
import re
import sys
import threading
from urllib.parse import parse_qs, urlparse

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.sts.models import sts_backends

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def _atomic_call_action(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = _atomic_call_action

# A form-encoded request's body (the query protocol: SES, STS, IAM) as it was sent. Flask parses
# the form and leaves moto an empty body, so moto would check the signature against the form
# encoded again its own way, and refuse any signer that encodes differently (the Rust SDK does:
# a space is %20, not +). The signature covers the bytes sent, so those are what it is checked on.
_sent = threading.local()
_dispatch = DomainDispatcherApplication.__call__


def _templated_emails():
    from moto.ses import ses_backends
    from moto.ses.models import TemplateMessage

    sent = []
    for regions in list(ses_backends.values()):
        for backend in list(regions.values()):
            for message in list(backend.sent_messages):
                if isinstance(message, TemplateMessage):
                    sent.append({"id": message.id, "source": message.source, "template": message.template,
                                 "template_data": message.template_data, "destinations": message.destinations})
    return sent


def _keeping_form_body(self, environ, start_response):
    if environ.get("PATH_INFO") == "/_local/ses/templated" and environ.get("REQUEST_METHOD") == "GET":
        body = json.dumps(_templated_emails()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    _sent.body = None
    length = environ.get("CONTENT_LENGTH")
    if length and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        _sent.body = body
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _keeping_form_body

_LOG = os.environ.get("MOTO_CALL_LOG")
_log_lock = threading.Lock()
_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _checked(self, iam_request_cls, resource="*"):
    # A browser's CORS preflight: S3 answers it from the bucket's CORS rules, for no identity.
    if self.method == "OPTIONS":
        return
    authenticating = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
    if authenticating and "Authorization" not in self.headers:
        query = parse_qs(urlparse(self.uri).query)
        if "X-Amz-Signature" not in query:
            raise AccessDeniedError(user_arn="anonymous", action=str(self._get_action()))
        # Presigned: moto checks no presigned signature (nor its expiry), but the permission is
        # the signer's, so the call is recorded under the identity that signed it.
        if _LOG:
            _record(self, resource, credential=query["X-Amz-Credential"][0])
        return
    if authenticating and not self.raw_body and getattr(_sent, "body", None):
        self.raw_body = _sent.body
    items = _transaction_items(self) if authenticating else []
    for action, table in items:
        # AWS authorizes a transaction's items as their own actions on their own tables.
        original = self._get_action
        self._get_action = lambda action=action: action
        try:
            _authenticate(self, iam_request_cls, resource)
        except Exception as error:
            if _LOG:
                refused = f"{type(error).__name__}: {getattr(error, 'message', error)}"
                _record(self, resource, refused=refused, action=action, table=table)
            raise
        finally:
            self._get_action = original
        if _LOG:
            _record(self, resource, action=action, table=table)
    if items:
        return
    try:
        _authenticate(self, iam_request_cls, resource)
    except Exception as error:
        if authenticating and _LOG:
            _record(self, resource, refused=f"{type(error).__name__}: {getattr(error, 'message', error)}")
        raise
    if authenticating and _LOG:
        _record(self, resource)


# A DynamoDB transaction's item kinds and the action IAM authorizes each as.
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def _transaction_items(response):
    """(action, table) of each item of a DynamoDB TransactWriteItems request, as IAM authorizes
    them (AWS: "Permissions for Put, Update, Delete ... are governed by the permissions used for the
    underlying PutItem, UpdateItem, DeleteItem"); empty for any other request."""
    if response._get_action() != "TransactWriteItems":
        return []
    items = []
    body = _body(response)
    for item in body.get("TransactItems", []):
        for kind, request in item.items():
            pair = (_TRANSACT_ACTIONS[kind], request["TableName"])
            if pair not in items:
                items.append(pair)
    return items


ActionAuthenticatorMixin._authenticate_and_authorize_action = _checked


# moto's names for S3 requests that IAM authorizes as another action.
_S3_ACTIONS = {"HeadBucket": "ListBucket", "HeadObject": "GetObject", "ListObjects": "ListBucket",
               "ListObjectsV2": "ListBucket", "DeleteObjects": "DeleteObject"}


def _record(response, resource, refused=None, credential=None, action=None, table=None):
    if credential is None:
        credential = response.headers["Authorization"].partition("Credential=")[2].partition(",")[0]
    scope = credential.split("/")
    access_key, region, service = scope[0], scope[2], scope[3]
    if action is None:
        action = response._get_action()
    if service == "s3":
        action = _S3_ACTIONS.get(action, action)
    resources = _resources(response, service, action, region, resource)
    if table is not None:
        resources = [f"arn:aws:dynamodb:{region}:{response.current_account}:table/{table}"]
    call = {
        "principal": _principal(response.current_account, access_key),
        "action": f"{service}:{action}",
        "resources": resources,
        "context": _context(response, service),
    }
    if refused:
        call["refused"] = refused
    calls = [call]
    if call["action"] == "s3:PutObject" and any(k.lower() == "x-amz-tagging" for k in response.headers.keys()):
        calls.append({**call, "action": "s3:PutObjectTagging"})  # tags set with the object need both
    with _log_lock, open(_LOG, "a") as log:
        for each in calls:
            log.write(json.dumps(each) + "\n")


def _principal(account, access_key):
    for assumed in sts_backends[account]["aws"].assumed_roles:
        if assumed.access_key_id == access_key:
            return {"role": assumed.role_arn.split("/")[-1]}
    return {"user": access_key}



def _body(response):
    """A JSON-protocol request's body (DynamoDB's handler has parsed it already)."""
    if isinstance(response.body, dict):
        return response.body
    try:
        return json.loads(response.body or "{}")
    except (TypeError, ValueError):
        return {}


def _resources(response, service, action, region, resource):
    """The ARNs of what the call touched (moto itself passes only `*` outside S3)."""
    account = response.current_account
    if service == "s3":
        keys = re.findall(r"<Key>([^<]*)</Key>", _text(response.body)) if "delete" in response.querystring else []
        if keys:  # a multi-object delete is authorized as s3:DeleteObject on each key
            return [f"{resource}/{html.unescape(key)}" for key in keys]
        return [resource]
    if service == "dynamodb":
        body = _body(response)
        table = lambda name: f"arn:aws:dynamodb:{region}:{account}:table/{name}"  # noqa: E731
        if "RequestItems" in body:
            return [table(name) for name in body["RequestItems"]]
        if "TransactItems" in body:
            return [table(next(iter(item.values()))["TableName"]) for item in body["TransactItems"]]
        arn = table(body.get("TableName", "*"))
        return [f"{arn}/index/{body['IndexName']}" if body.get("IndexName") else arn]
    if service == "ssm":
        body = _body(response)
        names = body.get("Names") or [body.get("Name", "*")]
        return [f"arn:aws:ssm:{region}:{account}:parameter{n if n.startswith('/') else '/' + n}" for n in names]
    if service == "ses":
        source = response.querystring.get("Source", [""])[0]
        address = source.rpartition("<")[2].rstrip(">").strip()
        arns = [f"arn:aws:ses:{region}:{account}:identity/{address}"]
        if "Template" in response.querystring:
            arns.append(f"arn:aws:ses:{region}:{account}:template/{response.querystring['Template'][0]}")
        return arns
    return [resource]


def _text(body):
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")


def _context(response, service):
    if service == "ses":
        source = response.querystring.get("Source", [""])[0]
        return {"ses:FromAddress": source.rpartition("<")[2].rstrip(">").strip()}
    return {}


if __name__ == "__main__":
    main(sys.argv[1:])
