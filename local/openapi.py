"""The API's OpenAPI document from the code: `python -m local.openapi [FILE]` (make openapi writes docs/openapi.json)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "openapi.json"


# The API validates its environment when imported (aigc.core.config.ApiEnv); the document does not
# depend on the values, so placeholders stand in for a deployment's.
PLACEHOLDER_ENVIRONMENT = {
    "POINTS_TABLE": "points", "TASKS_TABLE": "tasks", "SCHEDULER_TABLE": "scheduler", "IDEMPOTENCY_TABLE": "idem",
    "WEBHOOK_SECRETS_TABLE": "secrets", "RESULTS_BUCKET": "results", "PROVIDER_SECRET_ARN": "secret",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:openapi",
    "DASHSCOPE_BASE_URL": "https://dashscope.aliyuncs.com", "OPENAI_BASE_URL": "https://api.openai.com",
    "RESULT_HOST_ALLOWLIST": "*.aliyuncs.com", "SUBMIT_RATE_LIMIT_PER_MINUTE": "3", "TASK_DEADLINE_SECONDS": "600",
    "VIDEO_TASK_DEADLINE_SECONDS": "1800",
    "HOLD_GRACE_SECONDS": "3600", "QUEUE_TIMEOUT_SECONDS": "1800", "PROVIDER_CAPACITY": "", "MEMBER_GROUP": "members",
    "ADMIN_GROUP": "admins", "POWERTOOLS_SERVICE_NAME": "aigc", "POWERTOOLS_METRICS_NAMESPACE": "Aigc/openapi",
    "POWERTOOLS_LOG_LEVEL": "INFO", "UPLOAD_TRIGGER": "Enabled", "UPLOAD_MAX_BYTES": "10485760",
    "MAX_GRANT_POINTS": "100000", "API_KEYS_TABLE": "api-keys", "STATS_TABLE": "stats",
    "STRIPE_API_BASE": "https://api.stripe.com", "CHECKOUT_SUCCESS_URL": "https://example.com/points/success",
    "CHECKOUT_CANCEL_URL": "https://example.com/points/cancelled",
}


def api_document() -> dict:
    from aigc.api import contract

    name = "_openapi_api_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "api" / "app.py")
        module = importlib.util.module_from_spec(spec)
        with mock.patch.dict(os.environ, {**PLACEHOLDER_ENVIRONMENT, **os.environ}):
            spec.loader.exec_module(module)
        sys.modules[name] = module
    return contract.openapi_document(sys.modules[name].app)


def main(argv: list[str]) -> int:
    from aigc.api import contract

    text = contract.dumps(api_document())
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
