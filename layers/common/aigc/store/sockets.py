"""The API Gateway Management API: the only module that writes to a browser's WebSocket.

`post` sends one message to one connection and says whether the connection still exists: API
Gateway answers 410 `GoneException` for a connection that closed (or never existed), and the caller
forgets it. Calls are short (1 s to connect, 2 s to answer, one retry): a slow call must not hold
up the other recipients of a batch. The endpoint is the WebSocket API's stage URL
(`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`; the local stack serves the same API).
"""
from __future__ import annotations

from functools import lru_cache

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"},
                 max_pool_connections=16)


class SendFailed(Exception):
    """The Management API did not take the message (throttled, 5xx, network): the connection may still be open."""


@lru_cache(maxsize=4)
def _client(endpoint: str):
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint.rstrip("/"), config=_CONFIG)


def post(endpoint: str, connection_id: str, data: bytes) -> bool:
    """Send `data` as one message. False when the connection is gone (410); SendFailed otherwise."""
    client = _client(endpoint)
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=data)
    except client.exceptions.GoneException:
        return False
    except (ClientError, BotoCoreError) as error:
        raise SendFailed(f"{type(error).__name__}: {error}") from error
    return True



def close(endpoint: str, connection_id: str) -> None:
    """Close a connection from our side (API Gateway then runs $disconnect); one already gone is fine."""
    client = _client(endpoint)
    try:
        client.delete_connection(ConnectionId=connection_id)
    except client.exceptions.GoneException:
        pass
    except (ClientError, BotoCoreError) as error:
        raise SendFailed(f"{type(error).__name__}: {error}") from error
