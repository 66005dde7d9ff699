"""simple-salesforce, unchanged, against the pgforce emulator over HTTPS."""

import pytest
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)


def test_login_gives_an_https_instance_on_the_same_port(sf):
    assert sf.sf_instance.startswith("localhost:")
    assert sf.base_url.startswith("https://localhost:")


def test_describe_global_and_object(sf):
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "Lead", "Case", "User"} <= names
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert fields["Name"]["type"] == "string"
    assert fields["External_Id__c"]["externalId"] is True
    assert fields["OwnerId"]["referenceTo"] == ["User"]


def test_create_get_update_delete(sf, unique):
    created = sf.Account.create({"Name": unique("Acme"), "Industry": "Banking"})
    assert created["success"] is True and len(created["id"]) == 18
    record = sf.Account.get(created["id"])
    assert record["Industry"] == "Banking"
    assert sf.Account.update(created["id"], {"Phone": "555-0100"}) == 204
    assert sf.Account.get(created["id"])["Phone"] == "555-0100"
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as raised:
        sf.Account.get(created["id"])
    assert raised.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_upsert_by_external_id_creates_then_updates(sf, unique):
    key = unique("EXT")
    assert sf.Account.upsert(f"External_Id__c/{key}", {"Name": "Upserted"}) == 201
    assert sf.Account.upsert(f"External_Id__c/{key}", {"Rating": "Hot"}) in (200, 204)
    record = sf.Account.get_by_custom_id("External_Id__c", key)
    assert (record["Name"], record["Rating"]) == ("Upserted", "Hot")


def test_query_all_pages_through_more_than_2000_records(sf, control):
    control("POST", "/seed", {"Account": 2100})
    result = sf.query_all("SELECT Id, Name FROM Account")
    assert result["totalSize"] >= 2100
    ids = [r["Id"] for r in result["records"]]
    assert len(ids) == result["totalSize"] == len(set(ids))


def test_query_all_iter_pages_lazily(sf, control):
    control("POST", "/seed", {"Account": 2100})
    expected = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    seen = sum(1 for _ in sf.query_all_iter("SELECT Id FROM Account"))
    assert seen == expected > 2000


def test_query_all_with_include_deleted_sees_the_recycle_bin(sf, unique):
    name = unique("Gone")
    created = sf.Account.create({"Name": name})
    sf.Account.delete(created["id"])
    soql = f"SELECT Id, IsDeleted FROM Account WHERE Name = '{name}'"
    assert sf.query_all(soql)["totalSize"] == 0
    deleted = sf.query_all(soql, include_deleted=True)
    assert deleted["totalSize"] == 1
    assert deleted["records"][0]["IsDeleted"] is True


def test_errors_surface_as_simple_salesforce_exceptions(sf):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id FRM Account")
    assert raised.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Nope__c FROM Account")
    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Account.create({"Industry": "Banking"})
    assert raised.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_limits_report_daily_api_requests(sf):
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] > limits["DailyApiRequests"]["Remaining"] > 0


def test_expired_sessions_raise_expired_session(control):
    from conftest import client_for, login

    sf = client_for(login())
    sf.limits()
    control("POST", "/sessions/expire")
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()
