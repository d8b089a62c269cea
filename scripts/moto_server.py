"""moto_server, with DynamoDB transactions that snapshot only the items they write.

moto (5.x) backs up every table a transaction names, with a deep copy of the whole table
for each of its items, so that it can put the table back if a condition fails. With a few
thousand items that costs seconds per transaction, and the service writes every SMS it
sends in one. DynamoDB's own semantics are what this keeps: all of the transaction's
writes or none. Here the items the transaction writes are saved before it runs and put
back, exactly, if it is cancelled; nothing else is copied.

moto_server answers requests on several threads at once. Transactions run one at a time
here (a lock): the table copy is switched off for the length of one transaction only,
and the items a cancelled transaction puts back are never ones another transaction wrote
meanwhile. (Unguarded, two transactions at once turned the copy back on under each other:
moto answered 500 for writes it had committed.)

A cancelled transaction leaves nothing on the table's stream either, as on DynamoDB: moto
applies a transaction's items one by one (each adding its stream record) before it finds a
failed condition and rolls back, and the rollback adds records of its own. The stream is cut
back to where it was, so the outbox never shows an event whose change was cancelled.

Nothing this adds writes an item's values to the log: an error of its own is reported by
its kind alone, never chained to moto's cancellation, whose text carries the items.

Run as moto_server is: `moto-server -H 127.0.0.1 -p PORT` (scripts/moto-server).
"""

import copy
import logging
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main

_original = DynamoDBBackend.transact_write_items
_one_at_a_time = threading.Lock()
_log = logging.getLogger("moto_server.transactions")


class RollbackFailed(Exception):
    """The items of a cancelled transaction could not all be put back."""


def _key_of(backend, op_type, op):
    table = backend.get_table(op["TableName"])
    if op_type != "Put":
        return op["Key"]
    item = op["Item"]
    key = {table.hash_key_attr: item[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = item[table.range_key_attr]
    return key


def _save(backend, transact_items):
    saved = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            key = _key_of(backend, op_type, op)
            current = backend.get_item(op["TableName"], key)
        except Exception:
            # Malformed: moto's own code answers it, before writing anything.
            continue
        attrs = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        saved.append((op["TableName"], key, attrs))
    return saved


def _put_back(backend, saved):
    for table_name, key, attrs in reversed(saved):
        if attrs is None:
            if backend.get_item(table_name, key) is not None:
                backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, attrs)


def _stream_lengths(backend, transact_items):
    lengths = {}
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = backend.get_table(op["TableName"])
        except Exception:
            continue
        if table.stream_shard is not None:
            lengths[op["TableName"]] = (table.stream_shard, len(table.stream_shard.items))
    return lengths


def _cut_streams(lengths):
    for shard, length in lengths.values():
        del shard.items[length:]


def _same_table(table, memo):
    return table


def transact_write_items(self, transact_items):
    with _one_at_a_time:
        saved = _save(self, transact_items)
        streams = _stream_lengths(self, transact_items)
        Table.__deepcopy__ = _same_table
        try:
            return _original(self, transact_items)
        except Exception:
            try:
                _put_back(self, saved)
                _cut_streams(streams)
            except Exception as error:
                # By its kind only, and without the cancellation it interrupted: their
                # texts carry items (numbers, tokens).
                _log.error("a cancelled transaction's items were not all put back: %s",
                           type(error).__name__)
                raise RollbackFailed() from None
            raise
        finally:
            del Table.__deepcopy__


DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main())
