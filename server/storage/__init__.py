"""The device registry: a ``DeviceStore`` Protocol and its SQLite implementation."""

from server.storage.base import DeviceRecord, DeviceStore, NewDevice, Redeemed
from server.storage.sqlite import SqliteDeviceStore

__all__ = ["DeviceRecord", "DeviceStore", "NewDevice", "Redeemed", "SqliteDeviceStore"]
