"""Fixtures: a simple-salesforce client logged in to the emulator over HTTPS."""

import itertools
import os

import pytest
import requests
import simple_salesforce

LOGIN_URL = os.environ["PGFORCE_LOGIN_URL"]
CONTROL_URL = os.environ["PGFORCE_CONTROL_URL"]
CA = os.environ["PGFORCE_CA"]
API_VERSION = "62.0"


def login():
    """Obtains a token with the OAuth password grant, trusting the emulator's CA."""
    response = requests.post(
        f"{LOGIN_URL}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "pgforce",
            "client_secret": "pgforce",
            "username": "admin@example.com",
            "password": "pgforce",
        },
        verify=CA,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def client_for(token):
    session = requests.Session()
    session.verify = CA
    return simple_salesforce.Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        session=session,
        version=API_VERSION,
    )


@pytest.fixture()
def sf():
    return client_for(login())


@pytest.fixture()
def control():
    def call(method, path, body=None):
        response = requests.request(method, f"{CONTROL_URL}{path}", json=body, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else None

    return call


_names = itertools.count()


@pytest.fixture()
def unique():
    return lambda prefix: f"{prefix}-{os.getpid()}-{next(_names)}"
