"""The headteacher's approval of school-owned devices for taking and posting pupils' pictures ("Only school-owned
devices ... which have been pre-approved by the headteacher"). The caller commits; the change is audited in the
same transaction. Changing `updated_at` is what makes every proxy's directory reload it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.audit import record
from gateway.store.models.devices import DeviceRecord
from gateway.store.sites import within


class ApprovalRefused(ValueError):
    """The device cannot be approved, with why."""


def devices(session: Session, allowed_sites: tuple[str, ...] = ()) -> list[DeviceRecord]:
    """The register's active devices, by name, of the given sites (every site for none)."""
    return list(session.scalars(select(DeviceRecord).where(DeviceRecord.active, *within(DeviceRecord.site, allowed_sites))
                                .order_by(DeviceRecord.name)))  # fmt: skip


def set_approval(session: Session, device_id: int, *, approved: bool, by: str, now: datetime, role: str | None,
                 client_ip: str | None, allowed_sites: tuple[str, ...] = ()) -> DeviceRecord:  # fmt: skip
    """Approve a school-owned device, or withdraw its approval. LookupError for no such active device (at the
    given sites)."""
    device = session.get(DeviceRecord, device_id)
    if device is None or not device.active or (allowed_sites and device.site not in allowed_sites):
        raise LookupError(device_id)
    if approved and device.personal:
        raise ApprovalRefused(f"{device.name} is a personal device: only school-owned devices take pupils' pictures")
    if approved and device.mac is None:
        raise ApprovalRefused(f"{device.name} has no MAC address in the register, so the gateway cannot know it")
    if approved == (device.approved_at is not None):
        return device
    device.approved_at, device.approved_by = (now, by) if approved else (None, None)
    device.updated_at = now
    record(session, by, "device_approved" if approved else "device_approval_withdrawn", target=f"device-{device.name}",
           role=role, client_ip=client_ip, detail={"mac": device.mac, "kind": device.kind})  # fmt: skip
    return device
