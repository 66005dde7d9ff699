"""python-odata, unchanged, against pgforce's OData 4.0 service: it reflects $metadata,
pages through an entity set of more than 2,000 rows by following the service's
@odata.nextLink, and applies filters and orderings it builds itself.

The service's URL, user and password come from ODATA_URL, ODATA_USER and ODATA_PASSWORD;
the published view reports$orders holds ids 1..4500 with bucket = id % 7 and
label = 'order <id>'.
"""

import os
import sys

import requests
from odata import ODataService

ROWS = 4500


def main():
    service = ODataService(
        os.environ["ODATA_URL"],
        auth=requests.auth.HTTPBasicAuth(os.environ["ODATA_USER"], os.environ["ODATA_PASSWORD"]),
        reflect_entities=True,
        quiet_progress=True,
    )
    names = sorted(service.entities)
    assert "reports$orders" in names, f"$metadata reflected {names}"
    assert "salesforce$account" in names, f"$metadata reflected {names}"
    Orders = service.entities["reports$orders"]

    # Every row, in pages of at most 2,000 the client follows by itself.
    ids = [order.id for order in service.query(Orders)]
    assert len(ids) == ROWS, f"read {len(ids)} rows, expected {ROWS}"
    assert sorted(ids) == list(range(1, ROWS + 1)), "every row exactly once"

    # Filters the client builds: a comparison, a function, a conjunction.
    bucket = [o.id for o in service.query(Orders).filter(Orders.bucket == 3)]
    assert sorted(bucket) == [i for i in range(1, ROWS + 1) if i % 7 == 3], "bucket eq 3"
    starting = [o.label for o in service.query(Orders).filter(Orders.label.startswith("order 44"))]
    expected = sorted(f"order {i}" for i in range(1, ROWS + 1) if str(i).startswith("44"))
    assert sorted(starting) == expected, f"startswith: {sorted(starting)[:5]}"
    both = service.query(Orders).filter((Orders.id > 4000) & (Orders.bucket == 0))
    assert sorted(o.id for o in both) == [i for i in range(4001, ROWS + 1) if i % 7 == 0], "and"

    # An ordering and a page the client asks for itself.
    top = list(service.query(Orders).order_by(Orders.id.desc()).limit(3))
    assert [o.id for o in top] == [4500, 4499, 4498], [o.id for o in top]

    # A synced table reads the same way.
    Accounts = service.entities["salesforce$account"]
    accounts = list(service.query(Accounts))
    assert accounts and all(a.sfid for a in accounts), "synced accounts with their sfid"
    print(f"python-odata: {len(ids)} rows paged, filters and orderings agree", file=sys.stderr)


if __name__ == "__main__":
    main()
