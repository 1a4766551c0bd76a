from django.apps import AppConfig
from django.db.models.signals import post_migrate

# Periodic tasks that django-celery-beat runs: name → (task, every N seconds).
PERIODIC_TASKS = {
    "Resume stalled releases": ("deployments.tasks.resume_stalled_releases", 5),
    "Stop idle model servers": ("deployments.tasks.stop_idle_servers", 2),
    "Prune traffic samples": ("deployments.tasks.prune_traffic_samples", 3600),
    "Reconcile model servers with their runtimes": ("deployments.tasks.reconcile_servers", 30),
}


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"

    def ready(self):
        post_migrate.connect(_install_periodic_tasks, sender=self)


def _install_periodic_tasks(sender, **kwargs):
    """Create or update the beat schedule rows, so a fresh database runs the sweeps."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, (task, seconds) in PERIODIC_TASKS.items():
        schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": schedule, "enabled": True})
