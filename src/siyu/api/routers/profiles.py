"""Profile endpoints: a customer's golden record by id, or looked up by any identifier."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from siyu.api.deps import ReadWorkspace, RuntimeDep
from siyu.errors import InvalidInput
from siyu.profiles import customer_by_identifier, load_profile
from siyu.registry import registry

router = APIRouter(prefix="/api", tags=["profiles"])


@router.get("/customers/lookup")
def lookup_customer(request: Request, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """The profile of the customer holding an identifier: exactly one ``kind=value`` query
    parameter, any identifier kind (email, phone, instagram, user_id=amazon:A1...), normalised
    by its kind before the lookup."""
    given = list(request.query_params.multi_items())
    kinds = registry.identifier_kinds.names()
    if len(given) != 1:
        raise InvalidInput(
            f"Give exactly one identifier, got {len(given)} query parameters.",
            hint=f"For example ?email=ana@example.com or ?phone=%2B6281234567890; kinds: "
            f"{', '.join(kinds)}.",
        )
    kind, value = given[0]
    with rt.db.engine.connect() as conn:
        customer_id = customer_by_identifier(conn, ws.workspace_id, kind, value)
        return _profile(conn, ws.workspace_id, customer_id, rt)


@router.get("/customers/{customer_id}")
def get_customer(customer_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """A customer's golden record: traits with provenance, identifiers, latest consents, recent
    orders and events, tiers, tags, scores and every registered section. A merged-away id
    answers with its surviving customer."""
    with rt.db.engine.connect() as conn:
        return _profile(conn, ws.workspace_id, customer_id, rt)


def _profile(conn: Any, workspace_id: str, customer: str, rt: RuntimeDep) -> dict[str, Any]:
    return load_profile(
        conn,
        workspace_id,
        customer,
        recent=rt.settings.profile_recent,
        trait_priority=rt.settings.profile_trait_priority,
    )
