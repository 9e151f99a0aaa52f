"""template.yaml's web app: CloudFront reads only the bucket's app/ prefix (origin access control, this
distribution's ARN), the bucket stays private, the app's security headers match the local stack's, and both
Cognito app clients sign in on the hosted UI with the authorization code flow back to the distribution."""
from __future__ import annotations

from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]

from local import webapp
from local.cfn import resources_of_type




def test_cloudfront_reads_only_the_app_prefix_through_its_origin_access_control(template: dict) -> None:
    resources = template["Resources"]
    (name,) = resources_of_type(template, "AWS::CloudFront::Distribution")
    config = resources[name]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["ResultsBucket", "RegionalDomainName"]}
    assert origin["OriginPath"] == "/app" and origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["WebAppOriginAccessControl", "Id"]}
    oac = resources["WebAppOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert oac["SigningBehavior"] == "always" and oac["OriginAccessControlOriginType"] == "s3"
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert config["DefaultRootObject"] == "index.html"

    statements = resources["ResultsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 1, allows  # the only grant on the bucket: CloudFront, app/ only, this distribution
    (grant,) = allows
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"} and grant["Action"] == "s3:GetObject"
    assert grant["Resource"] == {"Fn::Sub": "${ResultsBucket.Arn}/app/*"}
    assert f"distribution/${{{name}}}" in grant["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    block = resources["ResultsBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values())


def test_the_security_headers_are_the_local_stacks(template: dict) -> None:
    policy = template["Resources"]["WebAppResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    headers = policy["SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    deployed = {d.split()[0]: d.split()[1:] for d in (part.strip() for part in csp.split(";")) if d}
    local = dict(webapp.security_headers(["http://127.0.0.1:*"]))
    served = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in local["Content-Security-Policy"].split(";")) if d}
    assert set(deployed) == set(served)
    for directive in ("default-src", "script-src", "style-src", "object-src", "base-uri", "frame-ancestors"):
        assert deployed[directive] == served[directive], directive
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert headers["FrameOptions"]["FrameOption"] == local["X-Frame-Options"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == local["Referrer-Policy"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000


def test_both_app_clients_sign_in_on_the_hosted_ui_back_to_the_web_app(template: dict) -> None:
    resources = template["Resources"]
    callback = {"Fn::Sub": "https://${WebAppDistribution.DomainName}/"}
    for client in ("UserPoolClient", "AdminUserPoolClient"):
        props = resources[client]["Properties"]
        assert props["AllowedOAuthFlows"] == ["code"], client  # no implicit flow: code + PKCE
        assert props["GenerateSecret"] is False and props["AllowedOAuthFlowsUserPoolClient"] is True
        assert props["CallbackURLs"] == [callback] and props["LogoutURLs"] == [callback]
        assert "openid" in props["AllowedOAuthScopes"]
    domains = {d["Properties"]["UserPoolId"]["Ref"] for d in resources_of_type(template, "AWS::Cognito::UserPoolDomain").values()}
    assert domains == {"UserPool", "AdminUserPool"}
    outputs = template["Outputs"]
    assert {"WebAppUrl", "WebAppDistributionId", "UserPoolSignInUrl", "AdminSignInUrl"} <= set(outputs)
    assert "POST" in resources["ResultsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"]
