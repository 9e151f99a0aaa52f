"""Deploy template.yaml onto an emulated AWS (moto), in process or behind moto's server.

Everything comes from the template: tables (keys, indexes, TTL), the bucket, the secret, the
functions (their resolved environment) and the state machine (its real ASL with the
substitutions resolved). Nothing here describes a resource a second time.
"""
from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from local import cfn
from local.lambda_runtime import Router, load_handler
from local.queues import create_queues

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
# What differs locally from AWS, beyond template parameters: the simulator and the local S3 are
# on 127.0.0.1, so outbound requests to user-given URLs (reference images, webhooks) may go there.
LOCAL_ENVIRONMENT = {"ALLOW_PRIVATE_HOSTS": "true"}
ACCOUNT = "123456789012"


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    raise RuntimeError('routed in process')\n")
    return buffer.getvalue()


@dataclass
class Deployment:
    template: dict
    resolver: cfn.Resolver
    names: dict[str, str]  # logical id -> physical name
    environment: dict[str, str]  # the functions' resolved environment (shared Globals + their own)
    function_env: dict[str, dict[str, str]] = field(default_factory=dict)
    router: Router = field(default_factory=Router)
    state_machine_arn: str = ""

    def name(self, logical_id: str) -> str:
        return self.names[logical_id]


def _physical(template: dict, prefix: str) -> tuple[dict, dict]:
    names: dict[str, str] = {}
    physical: dict[str, dict] = {}
    for logical, resource in (template.get("Resources") or {}).items():
        kind = resource.get("Type", "")
        name = f"{prefix}-{logical}"
        if kind == "AWS::S3::Bucket":
            name = name.lower()
            attrs = {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        elif kind == "AWS::DynamoDB::Table":
            attrs = {"Ref": name, "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}
        elif kind == "AWS::Serverless::Function":
            attrs = {"Ref": name, "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"}
        elif kind == "AWS::Serverless::StateMachine":
            arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            attrs = {"Ref": arn, "Arn": arn, "Name": name}
        elif kind == "AWS::SecretsManager::Secret":
            attrs = {"Ref": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}", "Id": name}
        else:
            attrs = {"Ref": name, "Arn": f"arn:aws:local:{REGION}:{ACCOUNT}:{logical}"}
        names[logical] = name
        physical[logical] = attrs
    for logical, spec in cfn.functions(template).items():  # SAM's `!Ref <Function>.Alias`
        if spec["alias"]:
            physical[f"{logical}.Alias"] = {"Ref": f"{physical[logical]['Arn']}:{spec['alias']}"}
    return names, physical


def deploy(
    *,
    parameters: dict | None = None,
    secret: dict | None = None,
    prefix: str = "aigc-local",
    template_path: Path = TEMPLATE,
    env_overrides: dict | None = None,
) -> Deployment:
    """Create the template's resources in the current moto backend and route its functions.

    boto3 clients are created plainly, so this works inside `mock_aws()` and against a moto
    server (set AWS_ENDPOINT_URL first). Sets `os.environ` to the functions' environment so the
    in-process handlers see what the template gives them.
    """
    template = cfn.load_template(template_path)
    names, physical = _physical(template, prefix)
    resolver = cfn.Resolver(template, parameters or {}, physical, region=REGION, account=ACCOUNT, stack_name=prefix)
    resources = template["Resources"]

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for logical in cfn.resources_of_type(template, "AWS::DynamoDB::Table"):
        if not resolver.resource_enabled(logical):
            continue
        dynamodb.create_table(**cfn.dynamodb_table_kwargs(template, logical, names[logical], resolver))
        ttl = cfn.ttl_attribute(template, logical)
        if ttl:
            dynamodb.update_time_to_live(
                TableName=names[logical], TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )

    s3 = boto3.client("s3", region_name=REGION)
    for logical, resource in cfn.resources_of_type(template, "AWS::S3::Bucket").items():
        declared = (resource.get("Properties") or {}).get("BucketName")
        if declared is not None:  # the template names it: use exactly that name
            names[logical] = str(resolver.resolve(declared))
            physical[logical].update(Ref=names[logical], Arn=f"arn:aws:s3:::{names[logical]}")
        s3.create_bucket(Bucket=names[logical])
        versioning = resolver.resolve((resource.get("Properties") or {}).get("VersioningConfiguration") or {})
        if versioning.get("Status") == "Enabled":  # as the template deploys it: events name the version
            s3.put_bucket_versioning(Bucket=names[logical], VersioningConfiguration={"Status": "Enabled"})

    # Queues: the webhook queue and the dead-letter queues (ops.dlq reads them); the other operations
    # resources (alarms, dashboard, SNS, CodeDeploy) have no local counterpart and are not created.
    create_queues(template, resolver, names, physical, REGION, ACCOUNT)

    secrets = boto3.client("secretsmanager", region_name=REGION)
    for logical, resource in cfn.resources_of_type(template, "AWS::SecretsManager::Secret").items():
        value = json.dumps(secret) if secret is not None else resource["Properties"].get("SecretString", "{}")
        created = secrets.create_secret(Name=names[logical], SecretString=value)
        physical[logical]["Ref"] = created["ARN"]

    iam = boto3.client("iam", region_name=REGION)
    role_arn = iam.create_role(
        RoleName=f"{prefix}-lambda-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]

    deployment = Deployment(template, resolver, names, {})
    lambda_client = boto3.client("lambda", region_name=REGION)
    package = _dummy_zip()
    specs = cfn.functions(template)
    for logical, spec in specs.items():
        if not resolver.resource_enabled(logical):
            continue
        env = {k: str(v) for k, v in resolver.resolve(spec["environment"]).items()}
        env.update(LOCAL_ENVIRONMENT)
        env.update(env_overrides or {})
        deployment.function_env[logical] = env
        deployment.environment.update(env)
        lambda_client.create_function(
            FunctionName=names[logical], Runtime="python3.12", Role=role_arn, Handler=spec["handler"],
            Code={"ZipFile": package}, Timeout=spec["timeout"], MemorySize=spec["memory"],
            Environment={"Variables": env},
        )
        if spec["alias"]:  # AutoPublishAlias: callers invoke the alias, as on AWS
            version = lambda_client.publish_version(FunctionName=names[logical])["Version"]
            lambda_client.create_alias(FunctionName=names[logical], Name=spec["alias"], FunctionVersion=version)
        factory = functools.partial(load_handler, spec["code_uri"], spec["handler"])  # one per environment
        dead_letter = (resources[logical].get("Properties") or {}).get("DeadLetterQueue")
        if dead_letter:
            factory = _dead_lettered_factory(factory, str(resolver.resolve(dead_letter["TargetArn"])))
        deployment.router.add(
            names[logical], factory,
            timeout=spec["timeout"], memory=spec["memory"],
            concurrency=_reserved_concurrency(resolver, spec["reserved_concurrency"]),
        )

    os.environ.update(deployment.environment)
    _cold_start()
    _connect_s3_notifications(template, resolver, names, specs, s3)

    sfn = boto3.client("stepfunctions", region_name=REGION)
    for logical in cfn.resources_of_type(template, "AWS::Serverless::StateMachine"):
        machine = cfn.state_machine(template, logical)
        substitutions = {k: str(v) for k, v in resolver.resolve(machine["substitutions"]).items()}
        definition = cfn.render_definition((ROOT / machine["definition_uri"]).read_text(), substitutions)
        created = sfn.create_state_machine(
            name=names[logical], definition=definition, roleArn=role_arn, type=machine["type"]
        )
        deployment.state_machine_arn = created["stateMachineArn"]
    del resources
    return deployment


def _connect_s3_notifications(template, resolver, names, specs, s3) -> None:
    """SAM `Type: S3` function events become the bucket's Lambda notification configuration."""
    per_bucket: dict[str, list] = {}
    for logical, spec in specs.items():
        for event in spec["events"].values():
            if event.get("Type") != "S3":
                continue
            props = event["Properties"]
            bucket = resolver.resolve(props["Bucket"])
            events = props["Events"] if isinstance(props["Events"], list) else [props["Events"]]
            config = {"LambdaFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{names[logical]}",
                      "Events": events}
            if props.get("Filter"):
                config["Filter"] = {"Key": {"FilterRules": props["Filter"]["S3Key"]["Rules"]}}
            per_bucket.setdefault(bucket, []).append(config)
    for bucket, configs in per_bucket.items():
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configs}
        )


def _cold_start() -> None:
    """A new deployment starts every function cold: drop what the shared library cached."""
    from aigc.core.snapstart import forget_cached_state

    forget_cached_state()


def _reserved_concurrency(resolver: cfn.Resolver, value) -> int | None:
    """The template's ReservedConcurrentExecutions (resolved), or None when it reserves none."""
    resolved = resolver.resolve(value) if value is not None else None
    try:
        return int(resolved) if resolved not in (None, "") and int(resolved) > 0 else None
    except (TypeError, ValueError):
        return None


def _dead_lettered(handler, queue_arn: str):
    """The function's `DeadLetterQueue`: a failed invocation's event goes there, as Lambda sends an
    asynchronous event that failed (locally after one attempt, not Lambda's three)."""

    @functools.wraps(handler)
    def invoke(event, context):
        try:
            return handler(event, context)
        except Exception as error:
            sqs = boto3.client("sqs", region_name=REGION)
            sqs.send_message(
                QueueUrl=sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"],
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "RequestID": {"DataType": "String", "StringValue": context.aws_request_id},
                    "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                    "ErrorMessage": {"DataType": "String", "StringValue": f"{type(error).__name__}: {error}"[:1000]},
                },
            )
            raise

    return invoke


def _dead_lettered_factory(factory, queue_arn: str):
    return lambda number: _dead_lettered(factory(number), queue_arn)
