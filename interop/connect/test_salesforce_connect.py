"""simple-salesforce reads external objects that the emulator's Salesforce Connect answers
from pgforce's OData 4.0 service, live: nothing is copied into the org."""

import os
import subprocess
import urllib.parse

import pytest
import requests
import simple_salesforce

ORG = os.environ["PGFORCE_ORG_URL"]
CONTROL = f"{ORG}/__emulator"
DATABASE = os.environ["PGFORCE_DATABASE_URL"]
OBJECT = "archive_closed_case__x"
SOURCE = "Archive"


def control(method, path, body=None):
    response = requests.request(method, f"{CONTROL}{path}", json=body, timeout=60)
    assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def psql(sql):
    """Rows of a query against pgforce's database, as lists of text."""
    out = subprocess.run(
        ["psql", DATABASE, "-tA", "-F", "\t", "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def synced():
    control("POST", "/external-data-sources", {
        "name": SOURCE,
        "endpoint": os.environ["ODATA_URL"],
        "username": os.environ["ODATA_USER"],
        "password": os.environ["ODATA_PASSWORD"],
        "inlineCountEnabled": True,
        "pagination": "SERVER",
    })
    return control("POST", f"/external-data-sources/{SOURCE}/sync",
                   {"tables": ["archive$closed_case"]})


@pytest.fixture()
def sf(synced):
    token = requests.post(f"{ORG}/services/oauth2/token", data={
        "grant_type": "password", "client_id": "pgforce", "client_secret": "pgforce",
        "username": "admin@example.com", "password": "pgforce",
    }, timeout=10)
    token.raise_for_status()
    token = token.json()
    session = requests.Session()
    session.verify = os.environ["PGFORCE_CA"]
    return simple_salesforce.Salesforce(
        instance_url=os.environ["PGFORCE_INSTANCE_URL"], session_id=token["access_token"],
        session=session, version="62.0")


def callouts():
    return control("GET", f"/external-data-sources/{SOURCE}/callouts")["callouts"]


def sent_query(callout):
    """The query options of a logged callout, decoded."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callout["url"]).query))


def test_sync_made_an_external_object_with_a_field_per_column(synced, sf):
    assert [o["name"] for o in synced["externalObjects"]] == [OBJECT]
    described = getattr(sf, OBJECT).describe()
    fields = {f["name"]: f for f in described["fields"]}
    for name in ["ExternalId", "DisplayUrl", "subject__c", "status__c", "priority__c",
                 "closeddate__c", "amount__c"]:
        assert name in fields, f"{name} missing from {sorted(fields)}"
    assert fields["closeddate__c"]["type"] == "datetime"
    assert fields["amount__c"]["type"] == "double"
    listed = [o["name"] for o in sf.describe()["sobjects"]]
    assert OBJECT in listed


def test_a_filtered_ordered_limited_query_is_answered_from_postgres(sf):
    control("DELETE", f"/external-data-sources/{SOURCE}/callouts")
    result = sf.query(
        f"SELECT ExternalId, subject__c, priority__c FROM {OBJECT} "
        "WHERE priority__c = 'High' AND status__c != 'Closed' ORDER BY subject__c DESC LIMIT 26")
    expected = psql(
        "select sfid, subject from archive.closed_case where priority = 'High' "
        "and status <> 'Closed' order by subject desc, sfid desc limit 26")
    got = [[r["ExternalId"], r["subject__c"]] for r in result["records"]]
    assert got == expected
    assert all(r["priority__c"] == "High" for r in result["records"])
    [call] = callouts()
    options = sent_query(call)
    assert options["$top"] == "26"
    assert options["$orderby"] == "subject desc"
    assert options["$filter"] == "priority eq 'High' and status ne 'Closed'"
    assert options["$count"] == "true"
    assert call["status"] == 200


def test_query_all_pages_through_every_row_once(sf):
    records = sf.query_all(f"SELECT ExternalId, amount__c FROM {OBJECT}")["records"]
    ids = [r["ExternalId"] for r in records]
    assert len(ids) == len(set(ids)) == 2500
    assert sorted(ids) == sorted(row[0] for row in psql("select sfid from archive.closed_case"))
    total = sum(r["amount__c"] for r in records)
    assert total == pytest.approx(float(psql("select sum(amount) from archive.closed_case")[0][0]))


def test_count_and_datetime_filters(sf):
    closed = sf.query(f"SELECT COUNT() FROM {OBJECT} WHERE status__c = 'Closed'")
    assert closed["totalSize"] == int(
        psql("select count(*) from archive.closed_case where status = 'Closed'")[0][0])
    early = sf.query_all(
        f"SELECT ExternalId FROM {OBJECT} WHERE closeddate__c < 2019-01-02T00:00:00Z")
    assert early["totalSize"] == 23


def test_a_record_read_by_external_id_and_rows_added_later_show_at_once(sf):
    record = getattr(sf, OBJECT).get("500000000000000042")
    assert record["subject__c"] == "Case 42"
    psql("insert into archive.closed_case (sfid, subject, status, priority) "
         "values ('500000000000009999', 'Added after sync', 'Closed', 'Low')")
    found = sf.query(f"SELECT subject__c FROM {OBJECT} WHERE ExternalId = '500000000000009999'")
    assert [r["subject__c"] for r in found["records"]] == ["Added after sync"]
