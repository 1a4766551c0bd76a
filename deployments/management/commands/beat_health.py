"""Exit with status 1 unless Celery beat ran a periodic task recently; for container health checks."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


class Command(BaseCommand):
    help = "Check that Celery beat ran a periodic task within the last --within seconds."

    def add_arguments(self, parser):
        parser.add_argument("--within", type=float, default=60.0, help="Maximum age of the last run, in seconds.")

    def handle(self, *args, within, **options):
        since = timezone.now() - timedelta(seconds=within)
        if not PeriodicTask.objects.filter(enabled=True, last_run_at__gte=since).exists():
            raise CommandError(f"No periodic task ran in the last {within:.0f} s; is beat running?")
        self.stdout.write("beat is running")
