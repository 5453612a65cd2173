"""moto_server whose TransactWriteItems rolls back the items it touched, not the whole table.

moto 5.x deep-copies the whole table (once per item of the transaction) before every
TransactWriteItems, to restore it if the transaction is cancelled. That costs O(table) per
transaction: in the full-size reliability run (scripts/reliability.sh) moto's table grew to
thousands of items, each transaction took longer than the SDK's attempt timeout, most API calls
ended in 503 and moto's memory reached 4 GB. The fault proxy already lets one DynamoDB call at a
time reach moto (tests/support/fault_proxy.rs), so no other write can land between a snapshot and
its restore: snapshotting just the items the transaction names restores exactly what moto's
whole-table copy restored. Also isolates a cancelled transaction better than moto does unserialised
(it no longer erases other tables' or items' concurrent writes).

Used by scripts/reliability.sh for the full-size fault run (MOTO_SERVER names this wrapper's
launcher, scripts/moto-server-item-rollback); the tests in `cargo test` run on stock moto.
"""

import copy as _copy
import re
import sys

import moto.dynamodb.models as models
from moto.server import main


class _TablesAreNotCopied:
    """Stands in for `copy` inside moto.dynamodb.models: a Table "copy" is the table itself
    (moto's restore then reassigns the same object, a no-op); anything else is deep-copied."""

    def deepcopy(self, value, memo=None):
        if isinstance(value, models.Table):
            return value
        return _copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(_copy, name)


models.copy = _TablesAreNotCopied()
_transact_write_items = models.DynamoDBBackend.transact_write_items


def _key(table, op):
    if "Item" in op:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op["Key"]


def transact_write_items(self, transact_items):
    snapshots = []
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            hash_key, range_key = self.get_keys_value(table, _key(table, op))
            before = table.get_item(hash_key, range_key)
            snapshots.append((table, hash_key, range_key, _copy.deepcopy(before)))
        except Exception:
            # A malformed entry: moto's own code raises the right error for it.
            continue
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        # Oldest snapshot last, so an item named twice ends as it was before the transaction.
        for table, hash_key, range_key, before in reversed(snapshots):
            if range_key is None:
                if before is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = before
            elif before is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = before
        raise


models.DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
