"""The private moto methods the local stack and these tests replace. If a moto upgrade renames
them, these fail first (moto is pinned in requirements-dev.txt)."""
import inspect

import moto
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction


def test_lambda_invocation_seam_exists():
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]


def test_wait_and_retry_seams_exist():
    assert list(inspect.signature(WaitFunction._wait_interval).parameters) == ["self", "env", "wait_seconds"]
    assert retrier_decl.time.sleep


def test_moto_is_the_pinned_version():
    assert moto.__version__ == "5.2.5"
