"""From the store to the recommendation model's inputs (Ibis, then integer coding in NumPy).

Purchases are order lines of valid orders (not cancelled, not refunded in full); views are
``Product Viewed`` events (``properties.product_id``). Only what happened by the cut-off is read.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd

from siyu.compute import WorkspaceTables
from siyu.predict.reco.model import Interactions, RecoData


def purchases(t: WorkspaceTables, start: datetime | None, end: datetime) -> pd.DataFrame:
    """customer_id, product_id, at: order lines placed in (start, end]."""
    o = t.orders
    o = o.filter(
        o.customer_id.notnull()
        & ~o.status.isin(["refunded", "cancelled"])
        & (o.placed_at <= ibis.literal(end, type="timestamp"))
    )
    if start is not None:
        o = o.filter(o.placed_at > ibis.literal(start, type="timestamp"))
    lines = t.order_lines
    lines = lines.filter(lines.product_id.notnull())
    joined = lines.join(o, ["workspace_id", "order_id"])
    out: pd.DataFrame = joined.select("customer_id", "product_id", at=joined.placed_at).execute()
    return out


def views(t: WorkspaceTables, end: datetime) -> pd.DataFrame:
    e = t.events
    e = e.filter(
        (e.event == "Product Viewed")
        & e.customer_id.notnull()
        & (e.timestamp <= ibis.literal(end, type="timestamp"))
    )
    sel = e.select("customer_id", product_id=e.properties["product_id"].str, at=e.timestamp)
    out: pd.DataFrame = sel.filter(sel.product_id.notnull()).execute()
    return out


def _interactions(
    frame: pd.DataFrame, customers: pd.Index, products: pd.Index, as_of: datetime
) -> Interactions:
    c = customers.get_indexer(pd.Index(frame["customer_id"]))
    p = products.get_indexer(pd.Index(frame["product_id"]))
    keep = (c >= 0) & (p >= 0)
    at = pd.to_datetime(frame["at"]).to_numpy("datetime64[us]")
    age = (np.datetime64(as_of, "us") - at).astype("timedelta64[s]").astype(float) / 86_400.0
    return Interactions(c[keep].astype(np.int64), p[keep].astype(np.int64), age[keep])


def load_reco_data(t: WorkspaceTables, as_of: datetime) -> RecoData:
    """Every customer and product known by ``as_of`` with their purchases and views."""
    bought = purchases(t, None, as_of)
    seen = views(t, as_of)
    catalogue = t.products.select("product_id", "sku", "category", "name").execute()
    people = t.customers.select("customer_id", "country").execute()
    product_ids = pd.Index(
        pd.unique(
            pd.concat([catalogue["product_id"], bought["product_id"], seen["product_id"]])
        ).astype(str)
    )
    customer_ids = pd.Index(
        pd.unique(
            pd.concat([people["customer_id"], bought["customer_id"], seen["customer_id"]])
        ).astype(str)
    )
    info = catalogue.drop_duplicates("product_id").set_index("product_id").reindex(product_ids)
    country = people.drop_duplicates("customer_id").set_index("customer_id")["country"]
    country = country.reindex(customer_ids)
    codes, markets = pd.factorize(country, use_na_sentinel=True)
    return RecoData(
        customers=customer_ids.to_numpy(dtype=str),
        products=product_ids.to_numpy(dtype=str),
        skus=info["sku"].fillna("").to_numpy(dtype=str),
        categories=info["category"].fillna("").to_numpy(dtype=str),
        names=info["name"].fillna("").to_numpy(dtype=str),
        country=codes.astype(np.int64),
        markets=len(markets),
        purchases=_interactions(bought, customer_ids, product_ids, as_of),
        views=_interactions(seen, customer_ids, product_ids, as_of),
    )
