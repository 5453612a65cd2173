"""Schemathesis hooks for scripts/fuzz-api.sh: the rules no schema can state, and one quirk.

- A list cursor is issued by the server and sealed with an HMAC: any other string is refused
  (documented: 400 invalid-cursor), and no schema can tell an issued cursor from a forged one.
  So the fuzzer does not invent cursors; every other query parameter is fuzzed as documented.
- An activity's date may be at most one day after today (UTC): a bound that moves with the
  clock. A well-formed date beyond it is moved to that day; malformed dates are left as drawn,
  so the negative cases still test the format.

- An Idempotency-Key names one request: reused with another body it is refused (documented:
  422 idempotency-key-reused). The fuzzer draws keys from a small space and reuses them, so a
  well-formed key is made unique per case; a malformed one is left as drawn.
- schemathesis 4.32.5 counts a header drawn as a non-string (`0`, `true`) as schema-valid once
  serialised, without checking the header's pattern; such a "positive" If-Match is dropped.

Everything else must match docs/openapi.yaml exactly.
"""

import datetime
import re
import uuid

import schemathesis

_CALENDAR_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# As in docs/openapi.yaml.
_IF_MATCH = re.compile(r'^[ \t]*("[0-9]+"|\*)[ \t]*\Z')
_IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,200}\Z")


def _header(case, name):
    for key, value in (case.headers or {}).items():
        if key.lower() == name:
            return key, value
    return None, None


# Case-level hooks: schemathesis applies them in every phase (coverage included).


@schemathesis.hook
def filter_case(ctx, case):
    operation = case.operation
    if operation.method.upper() == "GET" and operation.path == "/activities":
        if isinstance(case.query, dict) and "cursor" in case.query:
            return False
    _, if_match = _header(case, "if-match")
    positive = case.meta is not None and case.meta.generation.mode.name == "POSITIVE"
    if positive and if_match is not None and not _IF_MATCH.match(str(if_match)):
        return False
    return True


@schemathesis.hook
def map_case(ctx, case):
    name, key = _header(case, "idempotency-key")
    if isinstance(key, str) and _IDEMPOTENCY_KEY.match(key):
        case.headers[name] = f"{key}-{uuid.uuid4().hex}"
    body = case.body
    if not isinstance(body, dict):
        return case
    raw = body.get("activity_date")
    if not isinstance(raw, str) or not _CALENDAR_DATE.match(raw):
        return case
    try:
        date = datetime.date.fromisoformat(raw)
    except ValueError:
        return case
    latest = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=1)
    if date > latest:
        case.body = {**body, "activity_date": latest.isoformat()}
    return case
