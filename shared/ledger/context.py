"""The first round trip of a till's write: find the member (by id or by an identifier), lock
its balance row for the transaction, and read the merchant's terms and whatever the write's
rules need, in one statement.

Each write names what it needs as select-list items (sub-selects that may use the member
`m`, its balance row `b` and the merchant `mer`, whose id is $2); `LockingRead` prepares
the forms of the statement (the member by id, by network identifier, by the merchant's own
reference, or as the holder of one of the merchant's holds) once, at import. The row also
says which merchant owns the store the request names, if any (`require_store`).
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.errors import NotFound
from shared.identifiers import IdentifierKind, normalise
from shared.ledger.journal import LOCKED_MEMBER_COLUMNS, fetch_locked
from shared.members import MemberRef, resolve
from shared.merchants import Terms, posting_terms

_TEMPLATE = f"""
SELECT {LOCKED_MEMBER_COLUMNS},
       mer.status AS merchant_status, mer.currency, mer.earn_rate, mer.pending_days,
       (SELECT s.merchant_id FROM stores s WHERE s.store_id = {{store}}) AS store_merchant_id{{needs}}
FROM members m
JOIN member_balances b ON b.member_id = m.member_id
LEFT JOIN merchants mer ON mer.merchant_id = $2
WHERE m.member_id = {{member}}
FOR UPDATE OF b
"""
# The identifier lookups are members.find_member_id's, inlined.
_BY_NETWORK_IDENTIFIER = (
    "(SELECT member_id FROM member_identifiers WHERE kind = $3 AND scope_merchant_id IS NULL"
    " AND value = $1)"
)
_BY_MERCHANT_REF = (
    "(SELECT member_id FROM member_identifiers WHERE kind = $3 AND scope_merchant_id = $2"
    " AND value = $1)"
)
_BY_HOLD = "(SELECT member_id FROM holds WHERE hold_id = $1 AND merchant_id = $2)"


class LockingRead:
    """One write's locking read; `needs` is its extra select-list items, SQL.

    After a wait for another write of the member, the statement runs again when that write
    moved the balance (journal.fetch_locked). Writes that change the member without moving
    the balance are not seen that way:
    - a hold's reservation: a write that must not miss it reads the lots after the lock,
      in a statement of its own (redemption does);
    - a status change: the write then goes through as if it had committed just before the
      change, which is an order the two could have had.
    """

    def __init__(self, needs: str = "") -> None:
        needs = needs.strip()
        statement = _TEMPLATE.replace("{needs}", ",\n       " + needs if needs else "")
        # The store named by the request, if any, is the last parameter of each form.
        self._by_id = statement.replace("{member}", "$1").replace("{store}", "$3")
        self._by_network_identifier = statement.replace("{member}", _BY_NETWORK_IDENTIFIER).replace(
            "{store}", "$4"
        )
        self._by_merchant_ref = statement.replace("{member}", _BY_MERCHANT_REF).replace(
            "{store}", "$4"
        )
        self._by_hold = statement.replace("{member}", _BY_HOLD).replace("{store}", "$3")

    async def fetch(
        self,
        connection: AsyncConnection,
        actor: Principal,
        merchant_id: uuid.UUID,
        member_ref: MemberRef,
        default_region: str,
        store_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """The row, the balance row locked; NotFound when there is no member. The row says
        whose `store_id` is (require_store)."""
        if member_ref.kind == "member_id":
            statement = self._by_id
            member_id = await resolve(connection, actor, member_ref, default_region)
            arguments = (member_id, merchant_id, store_id)
        else:
            kind = IdentifierKind(member_ref.kind)
            value = normalise(kind, member_ref.value, default_region)
            statement = (
                self._by_merchant_ref
                if kind is IdentifierKind.MERCHANT_REF
                else self._by_network_identifier
            )
            arguments = (value, merchant_id, kind.value, store_id)
        row = await self._read(connection, statement, arguments)
        if row is None:
            raise NotFound("No such member.")
        return row

    async def fetch_holder(
        self, connection: AsyncConnection, merchant_id: uuid.UUID, hold_id: uuid.UUID
    ) -> dict[str, Any] | None:
        """The same read for the member holding one of the merchant's holds; None when the
        merchant has no such hold."""
        return await self._read(connection, self._by_hold, (hold_id, merchant_id, None))

    @staticmethod
    async def _read(
        connection: AsyncConnection, statement: str, arguments: tuple
    ) -> dict[str, Any] | None:
        row = await fetch_locked(connection, statement, *arguments)
        return None if row is None else dict(row)


def merchant_terms(row: dict[str, Any], merchant_id: uuid.UUID) -> Terms:
    """The merchant's terms from the row (merchants.posting_terms)."""
    merchant = None
    if row["merchant_status"] is not None:
        merchant = SimpleNamespace(
            status=row["merchant_status"],
            currency=row["currency"],
            earn_rate=row["earn_rate"],
            pending_days=row["pending_days"],
        )
    return posting_terms(merchant_id, merchant)


def require_store(row: dict[str, Any], merchant_id: uuid.UUID, store_id: uuid.UUID | None) -> None:
    """A store named by the request is one of the merchant's."""
    if store_id is not None and row["store_merchant_id"] != merchant_id:
        raise NotFound(f"Store {store_id} does not exist.")
