"""Logging in to the emulator the way a simple-salesforce user does (OAuth password flow)."""

import requests
import simple_salesforce


def login(login_url, username, password, client_id, client_secret):
    token = requests.post(
        f"{login_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": client_secret,
            "username": username,
            "password": password,
        },
        timeout=60,
    )
    token.raise_for_status()
    body = token.json()
    return simple_salesforce.Salesforce(
        instance_url=body["instance_url"], session_id=body["access_token"], version="62.0"
    )
