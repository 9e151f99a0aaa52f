"""Publish the web app (web/) to a deployed stack: its files under the results bucket's app/ prefix,
the config.json the app reads (the API and WebSocket URLs, where to sign in), then a CloudFront invalidation.

    python -m ops.webapp --stack aigc-prod              # publish, print the app's URL
    python -m ops.webapp --stack aigc-prod --dry-run    # print config.json and the files, change nothing
    python -m ops.webapp --stack aigc-prod --issuer https://id.example.com --client-id web-app
                                                        # a stack with JwtIssuer: sign in at that OIDC issuer

Sign-in: the stack's Cognito pools (template.yaml: UserPoolDomain, AdminUserPoolDomain) use the hosted UI's
/oauth2/authorize and /oauth2/token endpoints, the authorization code flow with PKCE, back to the app's URL;
with --issuer the endpoints come from its /.well-known/openid-configuration (register the app's URL as the
client's redirect URI there, and its origin in WebAppSignInOrigin). Files that are gone from web/ are
deleted from app/ (the bucket keeps old versions 30 days).
"""
from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
PREFIX = "app/"
SCOPE = "openid email profile"
# Files the app reads first or names by a fixed URL: always revalidated. The rest: 5 minutes, and every
# publish invalidates the distribution anyway.
NO_CACHE = {"index.html", "config.json"}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
         ".json": "application/json; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}


class PublishError(Exception):
    """A clear, one-line reason publishing cannot go on."""


def cognito_auth(sign_in_url: str, client_id: str) -> dict:
    base = sign_in_url.rstrip("/")
    return {"type": "oidc", "authorizeUrl": f"{base}/oauth2/authorize", "tokenUrl": f"{base}/oauth2/token",
            "logoutUrl": f"{base}/logout", "clientId": client_id, "scope": SCOPE}


def discovered_auth(issuer: str, client_id: str, fetch=None) -> dict:
    """An OIDC issuer's endpoints from its discovery document."""
    if fetch is None:
        import requests

        def fetch(url):
            response = requests.get(url, timeout=10)
            response.raise_for_status()
            return response.json()
    found = fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")
    try:
        return {"type": "oidc", "authorizeUrl": found["authorization_endpoint"], "tokenUrl": found["token_endpoint"],
                "logoutUrl": found.get("end_session_endpoint"), "clientId": client_id, "scope": SCOPE}
    except KeyError as missing:
        raise PublishError(f"{issuer}: the discovery document has no {missing.args[0]}") from None


def app_config(outputs: dict, *, issuer: str | None = None, client_id: str | None = None, fetch=None) -> dict:
    """config.json for a stack with these CloudFormation outputs."""
    for name in ("ApiUrl", "WebSocketUrl", "WebAppUrl"):
        if not outputs.get(name):
            raise PublishError(f"the stack has no output {name}: deploy the current template.yaml first")
    if issuer:
        if not client_id:
            raise PublishError("--issuer needs --client-id (the app's client at that issuer)")
        auth, admin = discovered_auth(issuer, client_id, fetch), None  # one issuer: its token serves /admin too
    elif outputs.get("UserPoolSignInUrl"):
        auth = cognito_auth(outputs["UserPoolSignInUrl"], outputs["UserPoolClientId"])
        admin = cognito_auth(outputs["AdminSignInUrl"], outputs["AdminUserPoolClientId"])
    else:
        raise PublishError("the stack signs in at an external issuer (JwtIssuer): pass --issuer and --client-id")
    return {"apiBase": outputs["ApiUrl"].rstrip("/"), "wsUrl": outputs["WebSocketUrl"], "auth": auth,
            "adminAuth": admin, "stage": "aws"}


def files(root: Path = WEB) -> list[tuple[str, Path, str, str]]:
    """(key, path, content type, cache control) of every file to publish, config.json aside."""
    out = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        name = relative.as_posix()
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        cache = "no-cache" if name in NO_CACHE else "public, max-age=300"
        out.append((PREFIX + name, path, kind, cache))
    return out


def publish(config: dict, bucket: str, distribution_id: str | None, *, s3, cloudfront, root: Path = WEB) -> dict:
    """Upload web/ and config.json under app/, delete what web/ no longer has, invalidate the distribution."""
    uploaded = []
    for key, path, kind, cache in files(root):
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=kind, CacheControl=cache)
        uploaded.append(key)
    s3.put_object(Bucket=bucket, Key=PREFIX + "config.json", Body=json.dumps(config, indent=2).encode(),
                  ContentType=TYPES[".json"], CacheControl="no-cache")
    uploaded.append(PREFIX + "config.json")
    stale = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        stale += [item["Key"] for item in page.get("Contents", []) if item["Key"] not in uploaded]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[start:start + 1000]]})
    invalidation = None
    if distribution_id:
        invalidation = cloudfront.create_invalidation(DistributionId=distribution_id, InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": f"ops.webapp-{time.time_ns()}"},
        )["Invalidation"]["Id"]
    return {"uploaded": uploaded, "deleted": stale, "invalidation": invalidation}


def stack_outputs(cloudformation, stack: str) -> dict:
    from botocore.exceptions import ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        raise PublishError(f"stack {stack}: {error.response['Error']['Message']}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.webapp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the deployed stack's name (samconfig.toml)")
    parser.add_argument("--region", help="default: the AWS CLI's")
    parser.add_argument("--issuer", help="an OIDC issuer to sign in at (stacks deployed with JwtIssuer)")
    parser.add_argument("--client-id", help="the app's client id at --issuer")
    parser.add_argument("--dry-run", action="store_true", help="print config.json and the files; change nothing")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.Session(region_name=args.region)
    try:
        outputs = stack_outputs(session.client("cloudformation"), args.stack)
        config = app_config(outputs, issuer=args.issuer, client_id=args.client_id)
        if args.dry_run:
            print(json.dumps(config, indent=2))
            for key, _, kind, cache in files():
                print(f"{key}\t{kind}\t{cache}")
            return 0
        result = publish(config, outputs["ResultsBucketName"], outputs.get("WebAppDistributionId"),
                         s3=session.client("s3"), cloudfront=session.client("cloudfront"))
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"published {len(result['uploaded'])} files (deleted {len(result['deleted'])} stale), "
          f"invalidation {result['invalidation']}")
    print(f"the web app: {outputs['WebAppUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
