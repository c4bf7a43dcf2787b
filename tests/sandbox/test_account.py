"""The emulated account on its own, without a server: what it stores and how it refuses."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from importer.exceptions import ConfigError
from importer.sandbox import ApiError, SandboxAccount, SandboxSchema

from .helpers import body

PACKAGE = Path(__file__).resolve().parents[2] / "importer" / "sandbox"


def create(account: SandboxAccount, payload: Any) -> dict[str, Any]:
    return account.create_custom("application/json", json.dumps(payload).encode())


def refusal(
    account: SandboxAccount, payload: Any, content_type: str = "application/json"
) -> ApiError:
    with pytest.raises(ApiError) as info:
        account.create_custom(content_type, json.dumps(payload).encode())
    return info.value


def test_upsert_by_search_by_updates_one_lead_and_adds_activities() -> None:
    account = SandboxAccount(clock=lambda: 42.0)
    first = create(account, body("a@example.com", lead=[{"Attribute": "mx_City", "Value": "Pune"}]))
    again = create(account, body(" A@Example.COM", lead=[{"Attribute": "mx_City", "Value": "Goa"}]))
    assert first["Status"] == again["Status"] == "Success"
    lead_id = first["Message"]["RelatedId"]
    assert again["Message"]["RelatedId"] == lead_id and list(account.leads) == [lead_id]
    assert account.leads[lead_id]["mx_City"] == "Goa"
    assert [a["Id"] for a in account.activities] == [first["Message"]["Id"], again["Message"]["Id"]]
    assert {a["LeadId"] for a in account.activities} == {lead_id}
    assert account.activities[0]["CreatedAt"] == 42.0


def test_search_by_phone_and_by_prospect_id() -> None:
    account = SandboxAccount()
    by_phone = body(lead=[{"Attribute": "Phone", "Value": "+91 98765-43210"}], search_by="Phone")
    lead_id = create(account, by_phone)["Message"]["RelatedId"]
    by_phone["LeadDetails"][1]["Value"] = "919876543210"
    assert create(account, by_phone)["Message"]["RelatedId"] == lead_id
    by_id = body(lead=[{"Attribute": "ProspectID", "Value": lead_id}], search_by="ProspectId")
    assert create(account, by_id)["Message"]["RelatedId"] == lead_id
    by_id["LeadDetails"][1]["Value"] = "no-such-lead"
    err = refusal(account, by_id)
    assert (err.status, err.exception_type) == (500, "MXInvalidInputException")
    assert len(account.leads) == 1 and len(account.activities) == 3


def test_validation_error_is_a_status_and_an_envelope_and_stores_nothing() -> None:
    account = SandboxAccount()
    err = refusal(account, body(lead=[{"Attribute": "firstname", "Value": "A"}]))
    assert err.status == 500
    assert err.envelope() == {
        "Status": "Error",
        "ExceptionType": "MXInvalidInputException",
        "ExceptionMessage": "Unknown lead attribute 'firstname' (did you mean FirstName?)",
    }
    assert account.leads == {} and account.activities == []


def test_bad_request_shape_is_400() -> None:
    account = SandboxAccount()
    err = refusal(account, body(), content_type="text/plain")
    assert (err.status, err.message) == (
        400,
        "Content-Type must be application/json, not 'text/plain'",
    )
    with pytest.raises(ApiError) as info:
        account.create_custom("application/json", b"{not json")
    assert (info.value.status, info.value.message) == (400, "Request body is not valid JSON")


def test_mandatory_lead_field_only_for_a_new_lead() -> None:
    schema = SandboxSchema.default()
    next(f for f in schema.lead_fields if f["SchemaName"] == "LastName")["IsMandatory"] = True
    account = SandboxAccount(schema)
    err = refusal(account, body())
    assert err.exception_type == "MXMandatoryAttributeMissingException"
    create(account, body(lead=[{"Attribute": "LastName", "Value": "Rao"}]))
    create(account, body())  # an update: LastName is not needed
    assert len(account.leads) == 1


def test_lookup_and_store_apart_can_double_a_lead_as_a_racy_upsert_would() -> None:
    account = SandboxAccount()
    raw = json.dumps(body("race@example.com")).encode()
    calls = [account.parse_create("application/json", raw) for _ in range(2)]
    found = [account.lookup(call) for call in calls]  # both before either insert
    assert found == [None, None]
    for call, lead_id in zip(calls, found, strict=True):
        account.store(call, lead_id)
    assert len(account.leads) == 2 and account.duplicate_leads() == 2

    atomic = SandboxAccount()
    for _ in range(2):
        atomic.create_custom("application/json", raw)
    assert len(atomic.leads) == 1 and atomic.duplicate_leads() == 0


def test_metadata_answers_are_copies_of_the_schema() -> None:
    account = SandboxAccount()
    assert [t["ActivityEvent"] for t in account.get_activity_types()] == [105, 106]
    setting = account.get_activity_setting("105")
    assert setting["Name"] == "Website_Purchase"
    setting["Fields"].clear()
    assert account.get_activity_setting("105")["Fields"]
    fields = account.get_leads_metadata()
    fields.clear()
    assert account.get_leads_metadata()
    for code, message in [
        ("abc", "Invalid activity event code 'abc'"),
        ("999", "Activity event 999 does not exist in this account"),
    ]:
        with pytest.raises(ApiError) as info:
            account.get_activity_setting(code)
        assert (info.value.status, info.value.message) == (500, message)


def test_reset_forgets_leads_and_their_lookup() -> None:
    account = SandboxAccount()
    before = create(account, body())["Message"]["RelatedId"]
    account.reset()
    assert account.leads == {} and account.activities == []
    assert create(account, body())["Message"]["RelatedId"] != before


def test_schema_is_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"sandbox schema: activity_types\[0\]"):
        SandboxAccount(SandboxSchema(lead_fields=[], activity_types=[{"Fields": []}]))


def _imports(path: Path) -> set[str]:
    """Modules a file imports, relative ones written as in the source (``..exceptions``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_sandbox_stands_alone_and_only_its_server_speaks_http() -> None:
    """Like a separate service: it may share the importer's exceptions and settings, nothing
    of its sending, results or runner; and the account stays usable without aiohttp."""
    modules = sorted(PACKAGE.glob("*.py"))
    assert {p.name for p in modules} >= {"account.py", "server.py"}
    for path in modules:
        imported = _imports(path)
        outside = {m for m in imported if m.startswith("..") or m.startswith("importer")}
        assert outside <= {"..exceptions", "..settings"}, (path.name, outside)
        speaks_http = any(m.split(".")[0] == "aiohttp" for m in imported)
        assert speaks_http == (path.name == "server.py"), path.name
