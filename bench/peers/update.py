"""Peer writes: simple-salesforce sending the same update to every Account, 200 records per
sObject Collections call, one call after another (what a script without pgforce does).

Usage: update.py LOGIN_URL USERNAME PASSWORD CLIENT_ID CLIENT_SECRET VALUE COUNT
Prints {"records": n, "seconds": s, "calls": c} on one line.
"""

import json
import sys
import time

from common import login


def main():
    login_url, username, password, client_id, client_secret, value, count = sys.argv[1:]
    sf = login(login_url, username, password, client_id, client_secret)
    ids = [r["Id"] for r in sf.query_all_iter(f"SELECT Id FROM Account LIMIT {int(count)}")]
    started = time.monotonic()
    calls = 0
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Id": i, "Industry": value} for i in chunk
            ],
        }
        results = sf.restful("composite/sobjects", method="PATCH", json=body)
        calls += 1
        failed = [r for r in results if not r["success"]]
        if failed:
            raise SystemExit(f"update failed: {failed[0]}")
    elapsed = time.monotonic() - started
    print(json.dumps({"records": len(ids), "seconds": elapsed, "calls": calls}))


if __name__ == "__main__":
    main()
