"""Destinations behind one interface: segment, webhook, file."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from traits.destinations.base import Call, DeliveryReport, Destination

KINDS = {
    "file": "traits.destinations.file:FileDestination",
    "segment": "traits.destinations.segment:SegmentDestination",
    "webhook": "traits.destinations.webhook:WebhookDestination",
}


def open_destination(name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> Destination:
    module_name, class_name = KINDS[config.type].split(":")
    cls: type[Destination] = getattr(importlib.import_module(module_name), class_name)
    return cls(name, config, config_dir=config_dir, deadline=deadline)


__all__ = ["KINDS", "Call", "DeliveryReport", "Destination", "open_destination"]
