"""Access: workspaces and scoped API keys."""

from siyu.access.keys import (
    SCOPES,
    ApiKey,
    authenticate,
    create_key,
    list_keys,
    parse_scopes,
    revoke_key,
)
from siyu.access.workspaces import (
    Workspace,
    create_workspace,
    get_workspace,
    get_workspace_by_id,
    utcnow,
)

__all__ = [
    "SCOPES",
    "ApiKey",
    "Workspace",
    "authenticate",
    "create_key",
    "create_workspace",
    "get_workspace",
    "get_workspace_by_id",
    "list_keys",
    "parse_scopes",
    "revoke_key",
    "utcnow",
]
