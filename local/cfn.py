"""Read ``template.yaml`` so tests and the local stack never describe a resource twice.

- :func:`load_template` parses the SAM template with cfn-lint's decoder, which
  turns CloudFormation short tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) into
  their long forms.
- :class:`Resolver` evaluates intrinsic functions against parameter values and
  a map of the physical names/ARNs the local stack gave each resource.
- Helpers extract what the local stack needs: DynamoDB ``create_table``
  keyword arguments, the functions with their merged environment, the state
  machine definition and substitutions, and the HttpApi routes.

Nothing here talks to AWS.
"""
from __future__ import annotations

import base64
import datetime
import re
from pathlib import Path
from typing import Any


__all__ = [
    "NO_VALUE",
    "Resolver",
    "dynamodb_table_kwargs",
    "functions",
    "http_routes",
    "load_template",
    "point_in_time_recovery",
    "render_definition",
    "resources_of_type",
    "state_machine",
    "ttl_attribute",
]

# --------------------------------------------------------------------------- loading


def load_template(path: str | Path = "template.yaml") -> dict:
    """Parse a (SAM) CloudFormation YAML template with cfn-lint's decoder: short tags (``!Ref``,
    ``!GetAtt a.b`` ...) in their long forms."""
    from cfnlint.decode import cfn_yaml

    return _plain(cfn_yaml.load(str(path)))


def _plain(value: Any) -> Any:
    """cfn-lint's nodes (dicts and strings that remember their line) as plain dicts, lists and strings;
    a YAML date (``2010-09-09`` unquoted) as its string, which is how CloudFormation reads it."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


# --------------------------------------------------------------------------- resolving


class _NoValue:
    """``AWS::NoValue``: removes the key (or list item) it is the value of."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluate intrinsic functions the way CloudFormation would.

    ``parameters`` override the template's parameter defaults. ``physical`` maps
    a resource's logical id to either its ``Ref`` value (a string) or a dict of
    attributes: ``{"Ref": "aigc-points", "Arn": "arn:aws:dynamodb:..."}``;
    ``Fn::GetAtt`` reads ``physical[logical][attr]``.
    """

    def __init__(
        self,
        template: dict,
        parameters: dict | None = None,
        physical: dict | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        stack_name: str = "aigc-local",
        partition: str = "aws",
        url_suffix: str = "amazonaws.com",
    ) -> None:
        self.template = template
        self.physical = dict(physical or {})
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": partition,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::URLSuffix": url_suffix,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self.parameters = self._parameter_values(parameters or {})
        self._conditions: dict[str, bool] = {}

    # ---- parameters and conditions

    def _parameter_values(self, overrides: dict) -> dict:
        values: dict[str, Any] = {}
        declared = self.template.get("Parameters") or {}
        for name, spec in declared.items():
            if name in overrides:
                raw = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise KeyError(f"parameter {name} has no default and no value was given")
            ptype = str(spec.get("Type", "String"))
            if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
                if isinstance(raw, str):
                    raw = [item.strip() for item in raw.split(",")]
                values[name] = [str(item) for item in raw]
            else:
                values[name] = _to_str(raw)
        unknown = set(overrides) - set(declared)
        if unknown:
            raise KeyError(f"unknown template parameters: {sorted(unknown)}")
        return values

    def condition(self, name: str) -> bool:
        """Value of a named condition of the template's ``Conditions``."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise KeyError(f"unknown condition {name}")
            self._conditions[name] = bool(self._condition_value(conditions[name]))
        return self._conditions[name]

    def _condition_value(self, value: Any) -> bool:
        if isinstance(value, dict) and set(value) == {"Condition"}:
            return self.condition(value["Condition"])
        return bool(self.resolve(value))

    def resource_enabled(self, logical_id: str) -> bool:
        """False when the resource has a ``Condition`` that is false."""
        cond = self.template["Resources"][logical_id].get("Condition")
        return True if cond is None else self.condition(cond)

    # ---- references

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            value = self.physical[name]
            if isinstance(value, dict):
                if "Ref" not in value:
                    raise KeyError(f"physical[{name!r}] has no 'Ref' entry")
                return value["Ref"]
            return value
        if name in (self.template.get("Resources") or {}):
            raise KeyError(f"resource {name} has no physical name (pass it in `physical`)")
        raise KeyError(f"unresolvable Ref {name}")

    def get_att(self, logical: str, attr: str) -> Any:
        value = self.physical.get(logical)
        if not isinstance(value, dict) or attr not in value:
            raise KeyError(f"no physical value for {logical}.{attr} (pass it in `physical`)")
        return value[attr]

    def _sub(self, text: str, variables: dict) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                logical, _, attr = name.partition(".")
                value = self.get_att(logical, attr)
            else:
                value = self.ref(name)
            if isinstance(value, list):
                raise ValueError(f"Fn::Sub variable {name} is a list")
            return _to_str(value)

        return _SUB_VAR.sub(replace, text)

    # ---- evaluation

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic function in ``value`` (recursively).

        Keys whose value is ``AWS::NoValue`` are removed; so are list items.
        A top-level ``AWS::NoValue`` resolves to ``None``.
        """
        result = self._resolve(value)
        return None if result is NO_VALUE else result

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        out = {}
        for key, item in value.items():
            resolved = self._resolve(item)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _function(self, key: str, arg: Any) -> Any:  # noqa: C901 - one branch per intrinsic function, flat
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return self._sub(arg, {})
            text, variables = arg
            return self._sub(text, {k: self._resolve(v) for k, v in (variables or {}).items()})
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                arg = arg.split(".", 1)
            logical, attr = arg[0], self._resolve(arg[1])
            return self.get_att(logical, attr)
        if key == "Fn::If":
            cond, if_true, if_false = arg
            return self._resolve(if_true if self.condition(cond) else if_false)
        if key == "Fn::Equals":
            left, right = (self._resolve(item) for item in arg)
            return _to_str(left) == _to_str(right)
        if key == "Fn::Not":
            (inner,) = arg
            return not self._condition_value(inner)
        if key == "Fn::And":
            return all(self._condition_value(item) for item in arg)
        if key == "Fn::Or":
            return any(self._condition_value(item) for item in arg)
        if key == "Fn::Join":
            delimiter, items = arg
            items = self._resolve(items)
            return self._resolve(delimiter).join(_to_str(item) for item in items)
        if key == "Fn::Select":
            index, items = arg
            return self._resolve(items)[int(self._resolve(index))]
        if key == "Fn::Split":
            delimiter, text = arg
            return self._resolve(text).split(self._resolve(delimiter))
        if key == "Fn::FindInMap":
            name, top, second = (self._resolve(item) for item in arg[:3])
            return self.template["Mappings"][name][top][second]
        if key == "Fn::Base64":
            return base64.b64encode(_to_str(self._resolve(arg)).encode()).decode()
        if key == "Fn::GetAZs":
            region = self._resolve(arg) or self.pseudo["AWS::Region"]
            return [f"{region}{zone}" for zone in "abc"]
        if key == "Fn::Length":
            return len(self._resolve(arg))
        raise NotImplementedError(f"{key} is not supported by the local resolver")


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- helpers


def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    """Logical id -> resource, for every resource of ``resource_type``."""
    return {
        logical: resource
        for logical, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == resource_type
    }


def _table_properties(template: dict, logical_id: str, resolver: Resolver | None) -> dict:
    resource = template["Resources"][logical_id]
    if resource.get("Type") != "AWS::DynamoDB::Table":
        raise ValueError(f"{logical_id} is a {resource.get('Type')}, not an AWS::DynamoDB::Table")
    props = resource.get("Properties") or {}
    return resolver.resolve(props) if resolver else props


def _index_kwargs(index: dict) -> dict:
    out = {
        "IndexName": index["IndexName"],
        "KeySchema": index["KeySchema"],
        "Projection": index.get("Projection", {"ProjectionType": "ALL"}),
    }
    if "ProvisionedThroughput" in index:
        out["ProvisionedThroughput"] = {
            k: int(v) for k, v in index["ProvisionedThroughput"].items()
        }
    return out


def dynamodb_table_kwargs(
    template: dict, logical_id: str, table_name: str, resolver: Resolver | None = None
) -> dict:
    """boto3 ``create_table`` keyword arguments for an ``AWS::DynamoDB::Table``.

    TTL and point-in-time recovery are separate API calls: see
    :func:`ttl_attribute` and :func:`point_in_time_recovery`.
    """
    props = _table_properties(template, logical_id, resolver)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if kwargs["BillingMode"] == "PROVISIONED" and "ProvisionedThroughput" in props:
        kwargs["ProvisionedThroughput"] = {
            k: int(v) for k, v in props["ProvisionedThroughput"].items()
        }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [_index_kwargs(i) for i in props["GlobalSecondaryIndexes"]]
    if props.get("LocalSecondaryIndexes"):
        kwargs["LocalSecondaryIndexes"] = [_index_kwargs(i) for i in props["LocalSecondaryIndexes"]]
    stream = props.get("StreamSpecification")
    if stream:
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    sse = props.get("SSESpecification")
    if sse:
        spec = {"Enabled": _truthy(sse.get("SSEEnabled"))}
        if sse.get("SSEType"):
            spec["SSEType"] = sse["SSEType"]
        if sse.get("KMSMasterKeyId"):
            spec["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
        kwargs["SSESpecification"] = spec
    return kwargs


def ttl_attribute(template: dict, logical_id: str) -> str | None:
    """The TTL attribute of a table, or None when TTL is not enabled."""
    spec = _table_properties(template, logical_id, None).get("TimeToLiveSpecification") or {}
    if spec and _truthy(spec.get("Enabled", True)):
        return spec["AttributeName"]
    return None


def point_in_time_recovery(template: dict, logical_id: str) -> bool:
    props = _table_properties(template, logical_id, None)
    spec = props.get("PointInTimeRecoverySpecification") or {}
    return _truthy(spec.get("PointInTimeRecoveryEnabled", False))


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _function_globals(template: dict) -> dict:
    return ((template.get("Globals") or {}).get("Function")) or {}


def functions(template: dict) -> dict[str, dict]:
    """Every ``AWS::Serverless::Function``, its properties merged with ``Globals``.

    Values are not resolved (use :class:`Resolver` on ``environment``).
    """
    glob = _function_globals(template)
    glob_env = ((glob.get("Environment") or {}).get("Variables")) or {}
    out = {}
    for logical, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource.get("Properties") or {}
        env = ((props.get("Environment") or {}).get("Variables")) or {}

        def pick(name: str, default: Any = None, props: dict = props) -> Any:
            return props.get(name, glob.get(name, default))

        layers = props.get("Layers")
        layers = list(glob.get("Layers") or []) + list(layers or [])  # SAM appends
        out[logical] = {
            "code_uri": pick("CodeUri"),
            "handler": pick("Handler"),
            "runtime": pick("Runtime"),
            "architectures": pick("Architectures", ["x86_64"]),
            "environment": {**glob_env, **env},
            "events": props.get("Events") or {},
            "timeout": int(pick("Timeout", 3)),
            "memory": int(pick("MemorySize", 128)),
            "reserved_concurrency": pick("ReservedConcurrentExecutions"),
            "layers": layers,
            "policies": props.get("Policies") or [],
            "metadata": resource.get("Metadata") or {},
            "condition": resource.get("Condition"),
            "alias": pick("AutoPublishAlias"),  # `!Ref <Function>.Alias` names this alias
        }
    return out


def state_machine(template: dict, logical_id: str) -> dict:
    """``{"definition_uri", "substitutions" (unresolved), "type", "policies"}``."""
    resource = template["Resources"][logical_id]
    if resource.get("Type") != "AWS::Serverless::StateMachine":
        raise ValueError(f"{logical_id} is not an AWS::Serverless::StateMachine")
    props = resource.get("Properties") or {}
    return {
        "definition_uri": props.get("DefinitionUri"),
        "substitutions": props.get("DefinitionSubstitutions") or {},
        "type": props.get("Type", "STANDARD"),
        "policies": props.get("Policies") or [],
    }


def render_definition(text: str, substitutions: dict[str, Any]) -> str:
    """Apply resolved ``DefinitionSubstitutions`` to an ASL document's text.

    Raises KeyError for a ``${Name}`` without a substitution.
    """
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise KeyError(f"no DefinitionSubstitution for ${{{name}}}")
        return _to_str(substitutions[name])

    return re.sub(r"\$\{([^}]+)\}", replace, text)


def http_routes(template: dict, function_logical_id: str) -> list[tuple[str, str, bool]]:
    """``(METHOD, path, authorized)`` for every HttpApi event of a function.

    ``authorized`` is False when the route says ``Authorizer: NONE`` or when its
    API has no default authorizer and the route names none.
    """
    resources = template.get("Resources") or {}
    props = resources[function_logical_id].get("Properties") or {}
    routes = []
    for event in (props.get("Events") or {}).values():
        if event.get("Type") != "HttpApi":
            continue
        ev = event.get("Properties") or {}
        api_auth = _http_api_auth(template, ev.get("ApiId"))
        route_auth = (ev.get("Auth") or {}).get("Authorizer")
        if route_auth is None:
            authorized = bool(api_auth.get("DefaultAuthorizer")) and api_auth["DefaultAuthorizer"] != "NONE"
        else:
            authorized = route_auth != "NONE"
        routes.append((str(ev.get("Method", "ANY")).upper(), ev.get("Path", "/$default"), authorized))
    return routes


def http_route_authorizers(template: dict, function_logical_id: str) -> dict[tuple[str, str], str | None]:
    """``{(METHOD, path): authorizer name}`` for every HttpApi event of a function (None: no auth)."""
    resources = template.get("Resources") or {}
    props = resources[function_logical_id].get("Properties") or {}
    out: dict[tuple[str, str], str | None] = {}
    for event in (props.get("Events") or {}).values():
        if event.get("Type") != "HttpApi":
            continue
        ev = event.get("Properties") or {}
        name = (ev.get("Auth") or {}).get("Authorizer") or _http_api_auth(template, ev.get("ApiId")).get(
            "DefaultAuthorizer")
        out[(str(ev.get("Method", "ANY")).upper(), ev.get("Path", "/$default"))] = (
            None if name in (None, "NONE") else name)
    return out


def lambda_authorizers(template: dict) -> dict[str, str]:
    """``{authorizer name: function logical id}`` of the HttpApis' Lambda authorizers (their ``FunctionArn``
    is ``!GetAtt <Function>.Arn`` or ``!Ref <Function>.Alias``)."""
    out = {}
    for api in resources_of_type(template, "AWS::Serverless::HttpApi").values():
        authorizers = (((api.get("Properties") or {}).get("Auth") or {}).get("Authorizers")) or {}
        for name, spec in authorizers.items():
            arn = spec.get("FunctionArn")
            if isinstance(arn, dict) and "Fn::GetAtt" in arn:
                target = arn["Fn::GetAtt"]
                out[name] = target[0] if isinstance(target, list) else str(target).split(".")[0]
            elif isinstance(arn, dict) and isinstance(arn.get("Ref"), str):
                out[name] = arn["Ref"].removesuffix(".Alias")
    return out


def _http_api_auth(template: dict, api_id: Any) -> dict:
    resources = template.get("Resources") or {}
    if isinstance(api_id, dict) and "Ref" in api_id:
        api = resources.get(api_id["Ref"]) or {}
        return ((api.get("Properties") or {}).get("Auth")) or {}
    # The implicit API takes its Auth from Globals.HttpApi.
    return (((template.get("Globals") or {}).get("HttpApi") or {}).get("Auth")) or {}
