"""Alerts: one message shape, logged always and posted to a webhook when one is configured."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Alert:
    """Something a person should look at."""

    title: str
    detail: str
    severity: str = "error"
    context: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """One line for logs and chat."""
        return f"[ml_assets {self.severity}] {self.title}: {self.detail}"


def post_webhook(url: str, alert: Alert, *, timeout: float = 5.0) -> int:
    """POSTs the alert as JSON (with a Slack-compatible `text` field).

    Args:
        url: The webhook URL.
        alert: The alert.
        timeout: Seconds before giving up.

    Returns:
        The HTTP status code.
    """
    body = json.dumps({"text": alert.text(), **asdict(alert)}, default=str).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # the URL is the operator's own webhook
        return int(response.status)
