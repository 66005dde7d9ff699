"""Peer initial load: simple-salesforce query_all_iter (REST paging) into Postgres by COPY.

Usage: load.py LOGIN_URL USERNAME PASSWORD CLIENT_ID CLIENT_SECRET DATABASE_URL TABLE FIELD...
Prints {"records": n, "seconds": s, "calls": c} on one line.
"""

import json
import sys
import time

import psycopg

from common import login


def main():
    login_url, username, password, client_id, client_secret, db_url, table, *fields = sys.argv[1:]
    sf = login(login_url, username, password, client_id, client_secret)
    started = time.monotonic()
    soql = f"SELECT {', '.join(fields)} FROM Account"
    columns = ", ".join("sfid" if f == "Id" else f.lower() for f in fields)
    count = 0
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for record in sf.query_all_iter(soql):
                copy.write_row([record.get(f) for f in fields])
                count += 1
    elapsed = time.monotonic() - started
    print(json.dumps({"records": count, "seconds": elapsed, "calls": -(-count // 2000)}))


if __name__ == "__main__":
    main()
