"""StatsFunction: the tasks' and the ledger's stream records become business numbers (aigc.domain.stats).

Each record is counted once whatever the redeliveries: its counts are added in one transaction with a
marker keyed by its eventID. A record that cannot be counted (DynamoDB unavailable) fails alone
(ReportBatchItemFailures); Lambda retries from it, and the records after it find their markers.
"""
from __future__ import annotations

from datetime import datetime, timezone

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from aigc.core.observability import count, logger
from aigc.domain import stats
from aigc.store import streams
from aigc.store.db import TaskItem


def table_of(record: dict) -> str:
    """The table a stream record comes from (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)."""
    arn = record.get("eventSourceARN") or ""
    return arn.split(":table/", 1)[1].split("/", 1)[0] if ":table/" in arn else ""


def _recorded(record: dict) -> datetime:
    created = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    if created is None:
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp(float(created), timezone.utc)


def _task_record(record: dict) -> list[stats.Count]:
    images = record.get("dynamodb") or {}
    if record.get("eventName") not in ("INSERT", "MODIFY") or "NewImage" not in images:
        return []
    new = TaskItem.from_raw_data(images["NewImage"])
    old = TaskItem.from_raw_data(images["OldImage"]) if images.get("OldImage") else None
    counts = stats.task_counts(old, new, _recorded(record))
    if old is None:
        stats.active_user(new.user_id, new.model_name, stats.created_moment(new, _recorded(record)))
    return counts


def _ledger_record(record: dict) -> list[stats.Count]:
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    entry = (image.get("entry") or {}).get("S", "")
    if record.get("eventName") != "INSERT" or not entry.startswith("TXN#"):
        return []

    def text(name: str) -> str | None:
        return (image.get(name) or {}).get("S")

    amount = (image.get("amount") or {}).get("N", "0")
    return stats.ledger_counts(text("kind"), int(float(amount)), text("ref"), text("ledger_time"), entry,
                               _recorded(record))


def count_record(record: dict, *, tasks_table: str, points_table: str) -> bool:
    """Count one stream record; False when it counts nothing or was counted before."""
    table = table_of(record)
    if table == tasks_table:
        counts = _task_record(record)
    elif table == points_table:
        counts = _ledger_record(record)
    else:
        logger.warning("stream record of an unknown table ignored", extra={"table": table})
        return False
    applied = stats.record(record["eventID"], counts)
    if counts and not applied:
        count("StatsRecordsRepeated")
    return applied


def replay_stream_batch(info: dict, *, tasks_table: str, points_table: str) -> int:
    """A dead-lettered batch (the stream mapping's on-failure record) replayed by an operator: read that
    range of the stream again (it keeps records 24 h) and count it; records counted before count nothing."""
    applied = 0
    for record in streams.read_range(info["streamArn"], info["shardId"], info["startSequenceNumber"],
                                     info["endSequenceNumber"]):
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
        record.setdefault("eventSourceARN", info["streamArn"])
        applied += count_record(record, tasks_table=tasks_table, points_table=points_table)
    logger.info("stream batch replayed", extra={"counted": applied, "shard": info["shardId"]})
    return applied


def handle_event(event: dict, context, *, tasks_table: str, points_table: str) -> dict:
    """Stream batches (partial failures reported), or one dead-lettered batch sent back (ops.dlq replay)."""
    if "DDBStreamBatchInfo" in event:
        return {"counted": replay_stream_batch(event["DDBStreamBatchInfo"], tasks_table=tasks_table,
                                               points_table=points_table)}
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return process_partial_response(
        event=event, processor=processor, context=context,
        record_handler=lambda record: count_record(record.raw_event, tasks_table=tasks_table,
                                                   points_table=points_table))
