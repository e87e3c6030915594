"""Bearer tokens and roles: who may see, who may start and stop.

A request names its token in ``Authorization: Bearer <token>``. The token is compared
with every configured one in constant time (:func:`hmac.compare_digest`, and no early
exit), so the answer's timing tells nothing about how much of a guess was right. No
token, or an unknown one, is 401; a known token whose role is not enough is 403.
``operate`` includes ``read``. With ``auth: false`` every request acts as
``operate`` (the server warned about it when it started).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import ApiError
from .settings import OPERATE, READ, Token

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="lightflow"'}


class Authenticator:
    """Checks a request's ``Authorization`` header against the configured tokens.

    Args:
        tokens: The accepted tokens.
        enabled: ``False`` lets every request through with the ``operate`` role.
    """

    def __init__(self, tokens: Sequence[Token], *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._tokens = [(token.secret.encode(), token) for token in tokens]

    def role(self, authorization: str | None) -> str:
        """The role of the token in an ``Authorization`` header value.

        Raises:
            ApiError: 401: no bearer token, or not a configured one.
        """
        if not self.enabled:
            return OPERATE
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401,
                "this endpoint needs a token: send the header 'Authorization: Bearer <token>'",
                _CHALLENGE,
            )
        candidate = given.strip().encode()
        found: Token | None = None
        for secret, token in self._tokens:  # every one, whichever matches
            if hmac.compare_digest(candidate, secret):
                found = token
        if found is None:
            raise ApiError(401, "the bearer token is not one the server accepts", _CHALLENGE)
        return found.role

    def require(self, authorization: str | None, needed: str) -> str:
        """Check that the header's token has the role ``needed``; return its role.

        Raises:
            ApiError: 401 as :meth:`role`; 403: the token's role is not enough.
        """
        role = self.role(authorization)
        if needed == OPERATE and role == READ:
            raise ApiError(
                403,
                "this token has the read role; starting and stopping need a token with the "
                "operate role",
            )
        return role
