"""SQS: the only module that sends queue messages (webhook deliveries and their dead letters)."""
from __future__ import annotations

import json
import math
from functools import lru_cache

import boto3

MAX_SQS_DELAY = 900  # SQS DelaySeconds limit; longer waits hop through the queue


@lru_cache(maxsize=1)
def _sqs():
    return boto3.client("sqs")


def send(queue_url: str, message: dict, delay: float = 0) -> None:
    _sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(message),
                        DelaySeconds=max(0, min(MAX_SQS_DELAY, math.ceil(delay))))
