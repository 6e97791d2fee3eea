"""Who is calling: the principal an API key resolves to, and what each role may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from shared.errors import Forbidden


class Role(StrEnum):
    HQ_ADMIN = "hq_admin"
    HQ_ANALYST = "hq_analyst"  # read-only HQ
    MERCHANT = "merchant"  # its own data only


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    key_id: uuid.UUID | None  # None: the CLI, a job, or an HQ user of the dashboard
    merchant_id: uuid.UUID | None = None
    hq_user_id: uuid.UUID | None = None  # the dashboard user acting (audit records name them)

    @property
    def is_hq(self) -> bool:
        return self.role in (Role.HQ_ADMIN, Role.HQ_ANALYST)

    def sees_merchant(self, merchant_id: uuid.UUID) -> bool:
        return self.is_hq or self.merchant_id == merchant_id

    def require_merchant(self) -> uuid.UUID:
        if self.merchant_id is None:
            raise Forbidden("This operation is performed by a merchant API key.")
        return self.merchant_id


SYSTEM = Principal(role=Role.HQ_ADMIN, key_id=None)
