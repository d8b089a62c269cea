"""moto_server, with DynamoDB transactions that snapshot only the items they write.

moto (5.x) backs up every table a transaction names, with a deep copy of the whole table
for each of its items, so that it can put the table back if a condition fails. With a few
thousand items that costs seconds per transaction, and the service writes every SMS it
sends in one. DynamoDB's own semantics are what this keeps: all of the transaction's
writes or none. Here the items the transaction writes are saved before it runs and put
back, exactly, if it is cancelled; nothing else is copied.

Run as moto_server is: `moto-server -H 127.0.0.1 -p PORT` (scripts/moto-server).
"""

import copy
import sys

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main

_original = DynamoDBBackend.transact_write_items


def _key_of(backend, op_type, op):
    table = backend.get_table(op["TableName"])
    if op_type != "Put":
        return op["Key"]
    item = op["Item"]
    key = {table.hash_key_attr: item[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = item[table.range_key_attr]
    return key


def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            key = _key_of(self, op_type, op)
            current = self.get_item(op["TableName"], key)
        except Exception:
            # Malformed: moto's own code answers it, before writing anything.
            continue
        attrs = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        saved.append((op["TableName"], key, attrs))
    Table.__deepcopy__ = lambda table, memo: table
    try:
        return _original(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(saved):
            if attrs is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise
    finally:
        del Table.__deepcopy__


DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main())
