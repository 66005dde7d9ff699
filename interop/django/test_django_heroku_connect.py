"""django-heroku-connect's own API client and import command, unchanged, against pgforce:
list the app's connections, read one deeply, import the models' mapping and wait for it,
and see the mappings synced."""

import time

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from heroku_connect import utils  # noqa: E402


def connection_id():
    (connection,) = utils.get_connections("main")
    return connection["id"]


def test_lists_the_apps_connections_and_reads_one_deeply():
    connections = utils.get_connections("main")
    assert [c["name"] for c in connections] == ["main"]
    assert utils.get_connections("someone-else") == []
    detail = utils.get_connection(connection_id(), deep=True)
    assert detail["schema_name"] == "salesforce"
    assert [m["object_name"] for m in detail["mappings"]] == ["Account"]
    shallow = utils.get_connection(connection_id())
    assert "mappings" not in shallow
    # pgforce writes every change in order, which Heroku Connect calls poll_db_no_merge.
    assert utils.get_connection_write_mode(connection_id()) == utils.WriteAlgorithm.ORDERED_WRITES


def test_the_models_mapping_is_imported_and_synced():
    mapping = utils.get_mapping(app_name="main")
    assert {m["object_name"] for m in mapping["mappings"]} == {"Account", "Contact"}
    utils.link_connection_to_account("main")
    call_command("import_mappings", "--app", "main", "--wait", "--wait-interval", "1")
    deadline = time.time() + 60
    while True:
        detail = utils.get_connection(connection_id(), deep=True)
        states = {m["object_name"]: m["state"] for m in detail["mappings"]}
        if states.get("Contact") == "DATA_SYNCED" and states.get("Account") == "DATA_SYNCED":
            break
        assert time.time() < deadline, f"mappings never synced: {states}"
        time.sleep(0.5)
    contact = next(m for m in detail["mappings"] if m["object_name"] == "Contact")
    assert contact["access"] == "read_write"
    assert contact["counts"]["count"] == contact["counts"]["sf"] > 0
