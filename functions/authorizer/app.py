"""The HttpApi's Lambda authorizer (REQUEST, payload 2.0, simple responses): a JWT of the users' issuer or
an API key, the same check the local front runs (aigc.domain.auth). It never caches: API Gateway calls it
for every request, so a revoked key is refused from the next request on."""
from __future__ import annotations

from aigc.core import snapstart
from aigc.core.config import AuthorizerEnv
from aigc.core.observability import logger
from aigc.domain.auth import JwtVerifier, authorizer_response

ENV = AuthorizerEnv.load()  # a missing or malformed variable stops the cold start, naming it
VERIFIER = JwtVerifier(ENV.jwt_issuer, ENV.jwt_audience, ENV.jwks_url)
snapstart.register()  # SnapStart (template.yaml): fresh connections and caches after each restore


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    return authorizer_response(event, VERIFIER)
