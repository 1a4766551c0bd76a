"""The audit log: one row per action on the portal, by a person or by the system."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One action on one object, with its actor and time. Rows are never updated after they are written."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Dotted verb such as "release.rollback" or "alias.set".
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    # Denormalized names, so the log can be filtered without joins and keeps
    # its meaning after the object is deleted.
    endpoint = models.CharField(max_length=64, blank=True, db_index=True)
    model = models.CharField(max_length=256, blank=True, db_index=True)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor or 'system'} {self.action}"
