"""The device register: school-owned devices and personal (BYOD) ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class DeviceRecord(Base):
    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # aa:bb:cc:dd:ee:ff; how a DHCP lease finds the device.
    mac: Mapped[str | None] = mapped_column(String(17), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="")
    personal: Mapped[bool] = mapped_column(default=False)
    # At most one of: the person it is assigned to (or who owns it, if personal), a class, a shared trolley.
    username: Mapped[str | None] = mapped_column(String(128), index=True)
    school_class: Mapped[str | None] = mapped_column(String(64))
    trolley: Mapped[str | None] = mapped_column(String(64))
    group_name: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    # "Only school-owned devices, pre-approved by the headteacher" take pupils' pictures: set in the console, cleared
    # when an import makes the device personal or gives it another MAC address.
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
