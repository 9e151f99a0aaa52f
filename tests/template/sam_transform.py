"""Print template.yaml transformed by the SAM translator, as JSON (offline).

Run with the aws-sam-cli virtualenv's interpreter (it has samtranslator):

    .venv-sam/bin/python tests/template/sam_transform.py template.yaml

Local code paths are replaced by S3 URIs (as cfn-lint does) so the translator
accepts them; the output is the CloudFormation that SAM would deploy, with the
IAM roles its policy templates expand to.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from local.cfn import load_template
from samtranslator.translator.transform import transform

MANAGED = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
}


class _PolicyLoader:
    def load(self) -> dict:
        return dict(MANAGED)


def main(path: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = load_template(path)
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://bucket/" + props[key].strip("/")
    pseudo = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    out = transform(template, pseudo, _PolicyLoader())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "template.yaml"))
