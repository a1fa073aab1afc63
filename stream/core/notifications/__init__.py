"""Notifications of problems, pure: who is told what (policy), the payloads each sink
receives, webhook signatures, retry classification and de-duplication.

``vigil notify`` (``stream/notify/``) does the I/O: it consumes problems, asks
:class:`NoticePolicy` per sink, builds the request from these payloads when it sends, and
retries as :func:`classify_status` and :func:`backoff_s` say.
"""

from stream.core.notifications.dedup import DeliveryLedger
from stream.core.notifications.payloads import (
    ALERTNAME,
    alertmanager_alerts,
    pagerduty_event,
    problem_links,
    slack_message,
    top_service,
    webhook_body,
)
from stream.core.notifications.policy import Action, Notice, NoticePolicy, Skip, problem_of_alert
from stream.core.notifications.retry import (
    Attempt,
    backoff_s,
    classify_error,
    classify_status,
    parse_retry_after,
)
from stream.core.notifications.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify,
)

__all__ = [
    "ALERTNAME",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Action",
    "Attempt",
    "DeliveryLedger",
    "Notice",
    "NoticePolicy",
    "Skip",
    "alertmanager_alerts",
    "backoff_s",
    "classify_error",
    "classify_status",
    "pagerduty_event",
    "parse_retry_after",
    "problem_links",
    "problem_of_alert",
    "sign",
    "signature_headers",
    "slack_message",
    "top_service",
    "verify",
    "webhook_body",
]
