"""`python -m local`: the whole application on 127.0.0.1, in one process, from template.yaml.

    moto server (in process)   AWS endpoint: DynamoDB, S3, Step Functions (executing), Lambda, Secrets Manager
    provider simulator         DashScope + OpenAI-compatible Images test double
    API front                  API Gateway HttpApi + JWT authorizer in front of ApiFunction
    WebSocket push             API Gateway WebSocket API in front of SocketFunction, and its Management API

Heavy imports (moto, boto3, the handlers) happen only after the ports were found free, so a port
in use is reported at once.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from contextlib import ExitStack

DEFAULT_PORT = 8081
DEFAULT_MOTO_PORT = 8091
DEFAULT_SIM_PORT = 8090
DEFAULT_WS_PORT = 8082
HOST = "127.0.0.1"
S3_MEMORY_BYTES_PER_OBJECT = 64 * 1024
# The stack's dummy AWS credentials: every client of the process signs with them (moto accepts any),
# and the local S3 checks presigned POST signatures against them.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}
OPEN_FILES_WANTED = 65536

log = logging.getLogger("local.dev")


class StartupError(Exception):
    """A clear, one-line reason the stack cannot start."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env_port = os.environ.get("PORT")
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run the application locally: moto (AWS), the provider simulator and the API on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=int(env_port) if env_port else DEFAULT_PORT,
                        help=f"API port (default: $PORT or {DEFAULT_PORT})")
    parser.add_argument("--moto-port", type=int, default=DEFAULT_MOTO_PORT,
                        help=f"embedded AWS endpoint port (default {DEFAULT_MOTO_PORT}; 0 = any free port)")
    parser.add_argument("--sim-port", type=int, default=DEFAULT_SIM_PORT,
                        help=f"provider simulator port (default {DEFAULT_SIM_PORT}; 0 = any free port)")
    parser.add_argument("--ws-port", type=int, default=DEFAULT_WS_PORT,
                        help=f"WebSocket push port (default {DEFAULT_WS_PORT}; 0 = any free port)")
    parser.add_argument("--wait-scale", type=float, default=1.0,
                        help="scale the workflow's Wait/Retry sleeps (tests only; default 1.0 = real waits)")
    parser.add_argument("--param", action="append", default=[], metavar="Key=Value",
                        help="template parameter override, e.g. --param TaskDeadlineSeconds=120 (repeatable)")
    parser.add_argument("--sim", action="append", default=[], metavar="field=value",
                        help="simulator config, e.g. --sim latency_min=0.5 --sim max_concurrency=5 (repeatable)")
    parser.add_argument("--provider-keys", action="append", default=[], metavar="provider=count",
                        help="simulated provider accounts (keys), e.g. --provider-keys dashscope=3: the secret lists 3 "
                             "keys and the simulator runs max_concurrency jobs per key (default 1)")
    parser.add_argument("--grant", action="append", default=[], metavar="user=points",
                        help="grant points at startup (through the API, on the ledger), e.g. --grant alice=1000")
    parser.add_argument("--sweep-seconds", type=float, default=10.0,
                        help="how often the reconciler's scheduled sweep runs locally (AWS: SweepSchedule)")
    parser.add_argument("--retention-seconds", type=float, default=600.0,
                        help="forget workflow executions (and their history) this long after they end, and DynamoDB "
                             "stream records this long after they were written (default 600)")
    parser.add_argument("--quiet", action="store_true", help="no access log and function logs at WARNING")
    return parser.parse_args(argv)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StartupError(f"{what} must look like Key=Value, got {item!r}")
        out[key.strip()] = value
    return out


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def check_ports(ports: dict[str, int]) -> dict[str, int]:
    """Resolve 0 to free ports; StartupError naming the first port in use (or used twice)."""
    resolved = {}
    for name, port in ports.items():
        if port == 0 and name != "API":
            port = _free_port()
        if not 0 < port < 65536:
            raise StartupError(f"{name} port {port} is not a valid port")
        if port in resolved.values():
            raise StartupError(f"{name} port {port} is given twice; pick distinct ports")
        if not _port_free(port):
            flag = {"API": "--port (or PORT=)", "AWS": "--moto-port", "simulator": "--sim-port",
                    "WebSocket": "--ws-port"}[name]
            raise StartupError(f"port {port} ({name}) on {HOST} is already in use; stop what uses it or pick another with {flag}")
        resolved[name] = port
    return resolved


def _aws_environment(moto_port: int) -> None:
    """Every boto3/pynamodb client of this process talks to the embedded moto server."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        os.environ.pop(name, None)
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://{HOST}:{moto_port}",
        "MOTO_PORT": str(moto_port),  # the Step Functions interpreter calls localhost:$MOTO_PORT
        **{name.upper(): value for name, value in LOCAL_CREDENTIALS.items()},
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    # S3 objects larger than this live in temporary files (gone with the process), not in memory:
    # moto's default keeps up to 5 MB per object in memory, and every result image is an object.
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(S3_MEMORY_BYTES_PER_OBJECT))
    _allow_open_files(OPEN_FILES_WANTED)


def _allow_open_files(wanted: int) -> int:
    """Raise this process's open-files limit towards `wanted` (each S3 object kept in a temporary file
    holds one open; 1024, a common default, would cap the results a stack can hold). Returns the limit."""
    try:
        import resource
    except ImportError:  # not on this platform: keep what it allows
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the open-files limit from %s; large S3 objects each hold a file open", soft)
    return soft


def _validate_parameters(template: dict, values: dict[str, str]) -> None:
    declared = template.get("Parameters") or {}
    for name, value in values.items():
        spec = declared.get(name)
        if spec is None:
            raise StartupError(f"--param {name}: the template has no such parameter ({', '.join(sorted(declared))})")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                raise StartupError(f"--param {name}={value}: not a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise StartupError(f"--param {name}={value}: below the template's MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise StartupError(f"--param {name}={value}: above the template's MaxValue {spec['MaxValue']}")
        allowed = spec.get("AllowedValues")
        if allowed and str(value) not in [str(a) for a in allowed]:
            raise StartupError(f"--param {name}={value}: not one of {allowed}")


def _sim_config(items: dict[str, str]) -> dict:
    from local.simulator.server import SimConfig

    defaults = SimConfig()
    out = {}
    for key, value in items.items():
        if not hasattr(defaults, key):
            raise StartupError(f"--sim {key}: no such simulator setting (see local/simulator/README.md)")
        current = getattr(defaults, key)
        try:
            if isinstance(current, bool):
                out[key] = value.lower() in ("1", "true", "yes")
            elif isinstance(current, int):
                out[key] = int(value)
            elif isinstance(current, float):
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError:
            raise StartupError(f"--sim {key}={value}: not a {type(current).__name__}") from None
    return out


def _provider_keys(items: dict[str, str]) -> dict:
    """--provider-keys provider=count -> the simulator's settings (each key an account, aigc.providers.accounts)."""
    out = {}
    for provider, value in items.items():
        if provider != "dashscope":
            raise StartupError(f"--provider-keys {provider}: the simulator has several accounts for dashscope only")
        if not value.isdigit() or not 1 <= int(value) <= 50:
            raise StartupError(f"--provider-keys {provider}={value}: a count from 1 to 50")
        out["dashscope_keys"] = int(value)
    return out


class LocalStack:
    """The running stack; `start()` then `stop()` (or use it as a context manager)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.ports: dict[str, int] = {}
        self._exit = ExitStack()
        self.front = None
        self.websocket = None
        self.sim = None
        self.moto = None
        self.deployment = None
        self.started_at = time.monotonic()

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        args = self.args
        params = _pairs(args.param, "--param")
        sim_settings = _pairs(args.sim, "--sim")
        grants = {user: int(points) for user, points in _pairs(args.grant, "--grant").items()}
        self.ports = check_ports({"API": args.port, "AWS": args.moto_port, "simulator": args.sim_port,
                                  "WebSocket": args.ws_port})

        from local import auth, cfn
        from local.front import (ApiFront, authorizer_config, cors_from_template, routes_from_template,
                                 throttle_from_template)
        from local.stack import TEMPLATE

        template = cfn.load_template(TEMPLATE)
        _validate_parameters(template, params)
        sim_config = _sim_config(sim_settings)
        sim_config.update(_provider_keys(_pairs(args.provider_keys, "--provider-keys")))
        key = auth.load_or_create_key()

        # Bind the API port first: it is the one users know, and /health answers 503 until ready.
        self.front = ApiFront(routes_from_template(template), "", verifier=auth.Verifier(key), jwks=auth.jwks(key))
        from local.webapp import WebApp

        # The web app at /app/ with its dev sign-in (local/webapp.py); on AWS CloudFront serves it.
        self.front.webapp = WebApp(ws_url=f"ws://{HOST}:{self.ports['WebSocket']}/", key=key)
        self.front.bind(HOST, self.ports["API"])
        self._exit.callback(self.front.stop)
        self.front.start()

        _aws_environment(self.ports["AWS"])
        from moto.server import ThreadedMotoServer

        from local import moto_dynamodb, moto_dynamodb_results, moto_memory

        self._exit.callback(moto_dynamodb.install())
        self._exit.callback(moto_memory.install())
        self._exit.callback(moto_dynamodb_results.install())  # answers as JSON, without the shape walker

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.moto = ThreadedMotoServer(ip_address=HOST, port=self.ports["AWS"], verbose=False)
        self.moto.start()
        self._exit.callback(self.moto.stop)
        from local import moto_inprocess

        # the handlers' DynamoDB and Step Functions calls: into the server's app, without the HTTP round trip
        self._exit.callback(moto_inprocess.install(self.moto._server.app, os.environ["AWS_ENDPOINT_URL"]))
        import requests

        moto_url = os.environ["AWS_ENDPOINT_URL"]
        requests.post(f"{moto_url}/moto-api/config",
                      json={"stepfunctions": {"execute_state_machine": True}}, timeout=10).raise_for_status()

        from local.simulator import start_simulator

        # Stripe's signed events go to the stack's own webhook route (local/simulator/stripe.py).
        sim_config.setdefault("stripe_webhook_url", f"http://{HOST}:{self.ports['API']}/payments/stripe/webhook")
        self.sim = start_simulator(HOST, self.ports["simulator"], **sim_config)
        self._exit.callback(self.sim.stop)

        from local.lambda_runtime import install_router, scaled_waits
        from local.stack import deploy

        parameters = {
            "JwtIssuer": auth.ISSUER,
            "JwtAudience": auth.AUDIENCE,
            "DashScopeBaseUrl": self.sim.url,
            "OpenAIBaseUrl": self.sim.url,
            "StripeApiBase": self.sim.url,  # the simulator speaks the part of Stripe the app calls
            "CheckoutSuccessUrl": f"{self.sim.url}/_sim/stripe/success?session_id={{CHECKOUT_SESSION_ID}}",
            "CheckoutCancelUrl": f"{self.sim.url}/_sim/stripe/success?cancelled=1",
            "ResultHostAllowlist": f"{HOST}:{self.sim.port}",
            # The capacity we declare is the simulated provider's real quota (aigc.domain.capacity).
            "ProviderCapacity": json.dumps({"*": {"concurrency": self.sim.config.max_concurrency}}),
            **params,
        }
        if args.quiet:
            parameters.setdefault("LogLevel", "WARNING")
        secret = {"dashscope_api_keys": self.sim.config.dashscope_api_keys(),  # one account per simulated key
                  "openai_api_key": self.sim.config.openai_api_key,
                  # the fixed, documented test values (local/README.md, "Buying points")
                  "stripe_api_key": self.sim.config.stripe_api_key,
                  "stripe_webhook_secret": self.sim.config.stripe_webhook_secret}
        from local.websocket import WebSocketFront, routes_from_template

        # The WebSocket API's Management API answers on its own port: the functions post through it,
        # and check tokens against the front's JWKS (local/README.md, "Push").
        self.websocket = WebSocketFront(HOST, self.ports["WebSocket"], routes_from_template(template))
        self._exit.callback(self.websocket.stop)
        push_environment = {"WEBSOCKET_MANAGEMENT_URL": self.websocket.management_url,
                            "JWKS_URL": f"{self.api_url}/.well-known/jwks.json"}
        try:
            self.deployment = deploy(parameters=parameters, secret=secret, env_overrides=push_environment)
        except KeyError as error:
            raise StartupError(f"template parameters: {error.args[0]}") from None
        self._exit.callback(install_router(self.deployment.router))
        from local import faults, s3_events, s3_post_policy, sfn_redrive, sfn_reuse, sfn_stop

        self._exit.callback(sfn_redrive.install())  # RedriveExecution on the moto endpoint
        self._exit.callback(s3_post_policy.install())  # presigned POST uploads checked as S3 does
        self._exit.callback(s3_events.install())  # S3 notifications name the object's version, as S3 does
        self._exit.callback(sfn_stop.install())  # StopExecution is final, as on AWS
        self._exit.callback(sfn_reuse.install())  # executions share the parsed definition and Lambda client
        self._exit.callback(faults.install(self.sim.sim.app))  # /_local/faults on the simulator port
        for function in self.deployment.router.routes.values():
            function.warm()  # every handler imported once before /health says ready
        if args.wait_scale != 1.0:
            self._exit.enter_context(scaled_waits(args.wait_scale))
        from local.events import EventSources

        events = EventSources(self.deployment, poll_seconds=1.0, schedule_seconds=args.sweep_seconds).start()
        self._exit.callback(events.stop)
        from local.retention import Pruner

        pruner = Pruner(args.retention_seconds, interval=min(30.0, max(1.0, args.retention_seconds / 4)),
                        on_dropped=events.forget).start()
        self._exit.callback(pruner.stop)
        from local.queues import EventSourceMappings

        self._exit.callback(EventSourceMappings(self.deployment).start().stop)  # SQS and stream -> functions
        socket_functions = {route: self.deployment.name(logical)
                            for route, logical in self.websocket.routes.functions.items()}
        self.websocket.invoke = lambda route, event: self.deployment.router.invoke(
            socket_functions[route], socket_functions[route], event)[:2]
        self.websocket.start()

        issuer, audiences = authorizer_config(template, self.deployment.resolver)
        self.front.verifier = auth.Verifier(key, issuer=issuer, audiences=audiences)
        self.front.cors = cors_from_template(template, self.deployment.resolver)
        self.front.throttle = throttle_from_template(template, self.deployment.resolver)
        self.front.function_name = self.deployment.name("ApiFunction")
        api_function = self.deployment.name("ApiFunction")
        router = self.deployment.router
        self.front.invoke = lambda event: router.invoke(api_function, api_function, event)[:2]
        # The HttpApi's Lambda authorizers (API keys or JWTs): their functions, invoked per request, uncached.
        self.front.lambda_authorizers = {
            name: (lambda event, fn=self.deployment.name(logical): router.invoke(fn, fn, event)[:2])
            for name, logical in cfn.lambda_authorizers(template).items()}
        self.front.ready.set()

        for user, amount in grants.items():
            self._grant(key, user, amount)

    def _grant(self, key, user: str, amount: int) -> None:
        import requests

        from local import auth

        token = auth.mint("local-dev", admin=True, ttl=300, key=key,
                          issuer=self.front.verifier.issuer, audience=self.front.verifier.audiences[0])
        response = requests.post(
            f"{self.api_url}/admin/points/grant", timeout=30,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"local-dev-{user}"},
            json={"userId": user, "amount": amount, "reason": "local dev stack (--grant)"},
        )
        if response.status_code != 200:
            raise StartupError(f"--grant {user}={amount}: {response.status_code} {response.text}")

    # ------------------------------------------------------------------ info
    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports['API']}"

    def banner(self) -> str:
        from local import auth

        api, sim, aws = self.api_url, self.sim.url, os.environ["AWS_ENDPOINT_URL"]
        seconds = time.monotonic() - self.started_at
        sample = f"{sim}/samples/cat.png?w=512&h=512"
        waits = "real waits" if self.args.wait_scale == 1.0 else f"waits scaled x{self.args.wait_scale}"
        submit = json.dumps({"modelName": "image-out-painting", "imageUrl": sample,
                             "parameters": {"xScale": 2, "yScale": 2}})
        return "\n".join([
            f"aigc local stack ready in {seconds:.1f} s ({waits}); all data goes with the process.",
            f"  API        {api}   routes of template.yaml, JWT checked; GET /health",
            f"  simulator  {sim}   DashScope + OpenAI Images double; {sim}/_sim/config",
            f"  AWS (moto) {aws}   DynamoDB, S3, Step Functions, Lambda, Secrets Manager",
            f"  push       {self.websocket.url}   WebSocket: ?token=<JWT>, then task.updated / points.changed",
            f"  web app    {api}/app/   sign in with any user name (tick 'operator' for the console)",
            f"  JWT        issuer {auth.ISSUER}, audience {auth.AUDIENCE}, key {_rel(auth.KEY_FILE)}",
            "",
            "Get a token (ADMIN=1 adds the admins group, needed to grant points):",
            "  TOKEN=$(make -s token USER=alice ADMIN=1)",
            "Try it:",
            f"  curl -s -X POST {api}/admin/points/grant -H \"Authorization: Bearer $TOKEN\" "
            "-H 'Content-Type: application/json' -d '{\"userId\":\"alice\",\"amount\":100,\"reason\":\"try\"}'",
            f"  curl -s -X POST {api}/user/ai/tasks/submit -H \"Authorization: Bearer $TOKEN\" "
            f"-H 'Content-Type: application/json' -d '{submit}'",
            f"  curl -s {api}/user/ai/tasks/<taskNo> -H \"Authorization: Bearer $TOKEN\"   "
            "# resultUrl downloads from the local S3",
            "Upload an image as alice (it becomes an outpainting task, x-amz-meta-* overrides parameters):",
            f"  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws --endpoint-url {aws} --region us-east-1 "
            f"s3 cp photo.png s3://{os.environ.get('RESULTS_BUCKET', '<bucket>')}/uploads/alice/photo.png",
            "Ctrl-C stops everything.",
        ])

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        self._exit.close()


def _rel(path) -> str:
    try:
        return str(path.relative_to(os.getcwd()))
    except ValueError:
        return str(path)


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("pynamodb").setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if quiet:
        logging.getLogger("local.front").setLevel(logging.WARNING)


def _signals_caught(pid: int) -> int:
    """The signals a process has handlers for (Linux: SigCgt in /proc/<pid>/status), as a bit mask."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    raise OSError(f"no SigCgt for {pid}")


def follow_make_interrupt(stop: threading.Event, *, interval: float = 0.25) -> threading.Thread | None:
    """Under `make dev`, stop when make is interrupted (SIGINT to make's own PID), as on SIGTERM.

    GNU make passes SIGTERM on to the recipe it runs, but not SIGINT: it takes a SIGINT as one the
    terminal sent to the whole process group (Ctrl-C), resets its handler to the default and waits
    for the recipe to end, so `kill -INT <make's pid>` would leave make waiting on a stack that never
    heard it. So when our parent is make and catches SIGINT, a thread watches it (Linux /proc) and
    sets `stop` when make stops catching SIGINT (it is handling one) or goes away. None when there is
    nothing to follow.
    """
    parent = os.getppid()
    sigint = 1 << (signal.SIGINT - 1)
    try:
        with open(f"/proc/{parent}/comm") as comm:
            if comm.read().strip() not in ("make", "gmake"):
                return None
        if not _signals_caught(parent) & sigint:
            return None  # make ignores SIGINT (a background job): nothing to follow
    except (OSError, ValueError):
        return None

    def watch() -> None:
        while not stop.wait(interval):
            try:
                interrupted = os.getppid() != parent or not _signals_caught(parent) & sigint
            except (OSError, ValueError):
                interrupted = True
            if interrupted:
                log.info("make was interrupted: stopping")
                stop.set()
                return

    thread = threading.Thread(target=watch, name="follow-make", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.quiet)
    stop = threading.Event()

    def _on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    follow_make_interrupt(stop)

    stack = LocalStack(args)
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping the local stack ...", file=sys.stderr, flush=True)
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        code = 1
    except Exception as error:  # one clear line, then the details for a bug report
        log.exception("the local stack failed to start")
        print(f"error: the local stack failed to start: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        stopper = threading.Thread(target=_stop_quietly, args=(stack,), name="stop", daemon=True)
        stopper.start()
        stopper.join(STOP_SECONDS)
    sys.stdout.flush()
    sys.stderr.flush()
    # All state is in memory and goes with the process. Do not wait for what is still running:
    # workflow executions in moto's threads, invocations retrying against the stopped endpoint,
    # executor threads joined at interpreter exit. So SIGTERM ends the stack within STOP_SECONDS.
    os._exit(code)


STOP_SECONDS = 3.5  # the orderly part of stopping (servers closed, pollers told to stop), at most


def _stop_quietly(stack: "LocalStack") -> None:
    try:
        stack.stop()
    except Exception:
        log.exception("while stopping")
