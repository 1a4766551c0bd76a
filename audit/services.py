"""Writing audit entries; service functions call `record_action` for every action they take."""

from __future__ import annotations

from audit.models import AuditEntry


def record_action(
    actor,
    action: str,
    target,
    message: str,
    *,
    endpoint: str = "",
    model: str = "",
    data: dict | None = None,
) -> AuditEntry:
    """Store one audit entry; `target` is the model instance acted on, `actor` None for the system."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        actor=user,
        action=action,
        object_type=target._meta.label_lower,
        object_id=str(target.pk),
        endpoint=endpoint,
        model=model,
        message=message,
        data=data or {},
    )
