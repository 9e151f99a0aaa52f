"""S3 event notifications that name the object's version, as S3 does for a versioned bucket.

moto's notification record (`moto.s3.notifications._get_s3_event`) carries the key, size and ETag but
neither `versionId` nor `sequencer`; S3's carries `versionId` whenever the bucket is versioned (the
results bucket is: template.yaml) and a `sequencer` always. The upload trigger reads and pins the
version the event names (aigc.flows.uploads), so the stack adds both: the version is the key's
`version_id`, the sequencer a hex counter that grows with every write of the process, as S3's grows per
key.

local/seams.py registers the target; tests/workflow/test_moto_seams.py checks it still fits.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable

from local import seams

TARGET = "moto.s3.notifications:_get_s3_event"
_SEQUENCE = itertools.count(1)
_LOCK = threading.Lock()


def install() -> Callable[[], None]:
    original = seams.resolve(TARGET)

    def _get_s3_event(event_name, bucket, key, notification_id):
        event = original(event_name, bucket, key, notification_id)
        fields = event["Records"][0]["s3"]["object"]
        if bucket.is_versioned and key.version_id not in (None, "", "null"):
            fields["versionId"] = key.version_id
        with _LOCK:  # one per write (the key object), not per notification: moto notifies a multipart upload twice
            sequencer = getattr(key, "_local_sequencer", None)
            if sequencer is None:
                sequencer = key._local_sequencer = f"{next(_SEQUENCE):018X}"
        fields["sequencer"] = sequencer
        return event

    return seams.patch(TARGET, _get_s3_event)
