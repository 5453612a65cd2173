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

It also answers a Query from the items it can match, not from the whole table. moto 5.x answers
every Query, on the table or on an index, by listing and sorting every item of the table (with
Python comparisons) and then filtering: measured in-process at load average 12, one outbox-shard
query on GSI2 cost 175 ms at 1000 items and 385 ms at 4000, while the outbox relay of the fault run
makes 10 such queries per pass. Here a table query starts from its partition and an index query
from the items whose index hash key matches; moto's own code then filters and sorts them exactly as
before (the sort is a total order on the keys, so the answer and its order are the same).
`moto_item_rollback.py --self-check` compares both answers on a random table (run by
scripts/reliability.sh before the fault step).

Used by scripts/reliability.sh for the full-size fault run (MOTO_SERVER names this wrapper's
launcher, scripts/moto-server-item-rollback); the tests in `cargo test` run on stock moto.
"""

import copy as _copy
import inspect
import re
import sys
import threading

import moto.dynamodb.models as models
from moto.dynamodb.models.table import Table
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


# Query: moto's Table.query reads self.all_items() (every item, sorted) and filters. For the length
# of one query, on this thread only (moto's server is threaded, and reads outside the fault
# proxy's gate run concurrently), all_items() returns just the query's candidates.
_narrowed = threading.local()
_stock_all_items = Table.all_items
_stock_query = Table.query
_query_signature = inspect.signature(_stock_query)


def _all_items(self):
    narrowed = getattr(_narrowed, "items", None)
    if narrowed is not None and narrowed[0] is self:
        return narrowed[1]
    return _stock_all_items(self)


def _every_item(table):
    for value in table.items.values():
        if table.range_key_attr:
            yield from value.values()
        else:
            yield value


def _candidates(table, arguments):
    """The items the query can match, or None to let moto look at every item."""
    if arguments.get("index_name") is None:
        hash_key = arguments.get("hash_key")
        if hash_key is None:
            return None
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]
    conditions = arguments.get("hash_key_conditions") or []
    if not conditions:
        return None
    def matches(item):
        for name, value in conditions:
            found = item.attrs.get(name)
            if found is None or found != value:
                return False
        return True

    return [item for item in _every_item(table) if matches(item)]


_narrowing = True


def query(self, *args, **kwargs):
    arguments = _query_signature.bind(self, *args, **kwargs).arguments
    candidates = _candidates(self, arguments) if _narrowing else None
    if candidates is None:
        return _stock_query(self, *args, **kwargs)
    _narrowed.items = (self, candidates)
    try:
        return _stock_query(self, *args, **kwargs)
    finally:
        _narrowed.items = None


Table.all_items = _all_items
Table.query = query

def self_check(seed=14, items=300, queries=200):
    """Random queries on a random table, answered narrowed and as stock moto does: same pages."""
    import random

    import boto3
    from moto import mock_aws

    global _narrowing
    rng = random.Random(seed)
    S = lambda v: {"S": v}  # noqa: E731
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        index = lambda n: {  # noqa: E731
            "IndexName": n,
            "KeySchema": [
                {"AttributeName": f"{n}PK", "KeyType": "HASH"},
                {"AttributeName": f"{n}SK", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        names = ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"]
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in names],
            GlobalSecondaryIndexes=[index("GSI1"), index("GSI2")],
        )
        for n in range(items):
            item = {"PK": S(f"U{rng.randrange(8)}"), "SK": S(f"{rng.choice('AB')}#{rng.randrange(10**6):06d}")}
            if rng.random() < 0.6:
                item.update(GSI1PK=S(f"U{rng.randrange(8)}"), GSI1SK=S(f"2026-{rng.randrange(1, 13):02d}#{n}"))
            if rng.random() < 0.3:
                item.update(GSI2PK=S(f"O{rng.randrange(4)}"), GSI2SK=S(f"{rng.randrange(100):03d}#{n}"))
            client.put_item(TableName="t", Item=item)
        for q in range(queries):
            kind = rng.choice(["table", "GSI1", "GSI2"])
            request = {"TableName": "t", "Limit": rng.choice([1, 5, 50, 1000]), "ScanIndexForward": rng.random() < 0.5}
            if kind == "table":
                request["KeyConditionExpression"] = "PK = :h AND begins_with(SK, :p)"
                request["ExpressionAttributeValues"] = {":h": S(f"U{rng.randrange(9)}"), ":p": S(rng.choice("AB"))}
            else:
                request["IndexName"] = kind
                request["KeyConditionExpression"] = f"{kind}PK = :h AND {kind}SK < :b"
                prefix = "U" if kind == "GSI1" else "O"
                request["ExpressionAttributeValues"] = {":h": S(f"{prefix}{rng.randrange(9)}"), ":b": S(f"{rng.randrange(100):03d}")}
            pages = {}
            for narrowing in (False, True):
                _narrowing = narrowing
                got, start = [], None
                while True:
                    page = client.query(**request, **({"ExclusiveStartKey": start} if start else {}))
                    got.append(page["Items"])
                    start = page.get("LastEvaluatedKey")
                    if not start:
                        break
                pages[narrowing] = got
            _narrowing = True
            if pages[False] != pages[True]:
                raise SystemExit(f"query {q} ({request}) answered differently when narrowed")
    print(f"moto_item_rollback self-check: {queries} random queries, same answers narrowed and not")


if __name__ == "__main__" and sys.argv[1:] == ["--self-check"]:
    self_check()
elif __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
