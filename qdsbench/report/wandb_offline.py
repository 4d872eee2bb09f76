"""Read an offline W&B run file (``run-<id>.wandb``) without a server.

The file is LevelDB-log framed: a 7-byte header (":W&B", 0xBEE1, version), then 32 KiB blocks of records, each with
a 7-byte header <crc32 u32, length u16, type u8> (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST); payloads are
``wandb_internal_pb2.Record`` protobufs. Only history rows, config and summary are extracted.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7


def _payloads(data: bytes):
    offset, pending = HEADER, b""
    while offset + HEADER <= len(data):
        block_left = BLOCK - (offset % BLOCK)
        if block_left < HEADER:  # block trailer padding
            offset += block_left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        offset += HEADER
        chunk = data[offset : offset + length]
        offset += length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:
            offset += BLOCK - (offset % BLOCK) if offset % BLOCK else 0


def _value(item) -> Any:
    try:
        return json.loads(item.value_json)
    except (ValueError, AttributeError):
        return None


def read_wandb_run(path: str | Path) -> dict[str, Any]:
    """{'history': [row dicts], 'config': {...}, 'summary': {...}} from one ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (bad magic)")
    history, config, summary = [], {}, {}
    for payload in _payloads(data):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - a torn tail record of a crashed run
            continue
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({(item.key or "/".join(item.nested_key)): _value(item) for item in record.history.item})
        elif kind == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = _value(item)
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = _value(item)
    return {"history": history, "config": config, "summary": summary}
