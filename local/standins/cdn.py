"""A CloudFront stand-in in front of the local audio bucket (ours: moto has no CloudFront).

It does what the distribution does for a request under a trusted key group: a URL without a
signature, with another key pair id, with a signature that does not verify over the canned
policy CloudFront rebuilds from the URL, or past its Expires, gets 403 (CloudFront's
AccessDenied, as XML); a good one is served from the bucket, the Range header passed on (206 for
seeking). Only GET and HEAD, as the template's cache behaviour allows. In AWS the distribution
reads the private bucket through its Origin Access Control; here it signs its reads with the
local tools' identity (moto checks every request's signature).

Usage: cdn.py --port P --origin http://127.0.0.1:MOTO --bucket B --public-key PEM --key-pair-id K
              --credentials .local/aws-harness.json
       cdn.py --make-key DIR   (writes DIR/private.pem and DIR/public.pem once: the local pair)
"""

import argparse
import asyncio
import base64
import json
import os
import pathlib
import time

import boto3
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

def make_key(directory):
    """The local key pair (2048-bit RSA, PKCS#1 private key as `openssl genrsa` writes), made once."""
    directory = pathlib.Path(directory)
    private, public = directory / "private.pem", directory / "public.pem"
    if private.exists() and public.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def denied(message):
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
    return web.Response(status=403, text=body, content_type="text/xml")


def from_cloudfront_base64(text):
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


def make_app(origin, bucket, public_key, key_pair_id, credentials):
    key = serialization.load_pem_public_key(public_key)
    s3 = boto3.client(
        "s3", endpoint_url=origin, region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
        config=Config(s3={"addressing_style": "path"}),
    )

    def read(method, object_key, byte_range):
        ranged = {"Range": byte_range} if byte_range else {}
        if method == "HEAD":
            return s3.head_object(Bucket=bucket, Key=object_key, **ranged), b""
        answer = s3.get_object(Bucket=bucket, Key=object_key, **ranged)
        return answer, answer["Body"].read()

    async def serve(request):
        query = request.rel_url.query
        expires, signature, pair = query.get("Expires"), query.get("Signature"), query.get("Key-Pair-Id")
        if not (expires and signature and pair):
            return denied("Missing Key-Pair-Id query parameter or cookie value")
        if pair != key_pair_id:
            return denied("Unknown Key")
        # The resource CloudFront signs against: the URL as requested, without the query.
        resource = f"{request.scheme}://{request.host}{request.raw_path.split('?', 1)[0]}"
        policy = '{"Statement":[{"Resource":"%s","Condition":{"DateLessThan":{"AWS:EpochTime":%s}}}]}' % (resource, expires)
        try:
            key.verify(from_cloudfront_base64(signature), policy.encode(), padding.PKCS1v15(), hashes.SHA1())
        except (InvalidSignature, ValueError):
            return denied("Access denied")
        if not expires.isdigit() or int(expires) <= time.time():
            return denied("Access denied")
        object_key = request.match_info["key"]  # percent-decoded, as S3 names it
        try:
            answer, body = await asyncio.to_thread(read, request.method, object_key, request.headers.get("range"))
        except ClientError as error:
            status = error.response["ResponseMetadata"]["HTTPStatusCode"]
            code = error.response["Error"].get("Code", "Error")
            return web.Response(status=status, text=f"<Error><Code>{code}</Code></Error>", content_type="text/xml")
        ranged = "ContentRange" in answer
        response = web.Response(status=206 if ranged else 200, body=body if request.method == "GET" else None)
        response.headers["content-type"] = answer.get("ContentType", "binary/octet-stream")
        response.headers["accept-ranges"] = "bytes"
        if ranged:
            response.headers["content-range"] = answer["ContentRange"]
        if "ETag" in answer:
            response.headers["etag"] = answer["ETag"]
        response.headers["x-cache"] = "Miss from cloudfront-stand-in"
        return response

    app = web.Application()
    app.router.add_route("GET", "/{key:.+}", serve)
    app.router.add_route("HEAD", "/{key:.+}", serve)
    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--make-key")
    parser.add_argument("--port", type=int)
    parser.add_argument("--origin")
    parser.add_argument("--bucket")
    parser.add_argument("--public-key")
    parser.add_argument("--key-pair-id")
    parser.add_argument("--credentials")
    args = parser.parse_args()
    if args.make_key:
        return make_key(args.make_key)
    public_key = pathlib.Path(args.public_key).read_bytes()
    credentials = json.loads(pathlib.Path(args.credentials).read_text())
    app = make_app(args.origin.rstrip("/"), args.bucket, public_key, args.key_pair_id, credentials)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
