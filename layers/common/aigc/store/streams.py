"""DynamoDB Streams: reading a recorded range of a table's stream again (a dead-lettered batch)."""
from __future__ import annotations

from typing import Iterator

import boto3
from botocore.config import Config


def read_range(stream_arn: str, shard_id: str, first: str, last: str) -> Iterator[dict]:
    """The stream records of one shard from sequence number `first` to `last` (inclusive)."""
    client = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    iterator = client.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id,
                                         ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=first)["ShardIterator"]
    end = int(last)
    while iterator:
        page = client.get_records(ShardIterator=iterator, Limit=100)
        for record in page["Records"]:
            if int(record["dynamodb"]["SequenceNumber"]) > end:
                return
            yield record
        if not page["Records"]:
            return
        iterator = page.get("NextShardIterator")
