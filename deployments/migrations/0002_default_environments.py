from django.db import migrations

DEFAULT_ENVIRONMENTS = [
    ("development", "Try models out; releases start at once.", False),
    ("staging", "Pre-production checks; releases start at once.", False),
    ("production", "Customer traffic; an ops lead approves each release.", True),
]


def create_environments(apps, schema_editor):
    Environment = apps.get_model("deployments", "Environment")
    for name, description, approval in DEFAULT_ENVIRONMENTS:
        Environment.objects.get_or_create(name=name, defaults={"description": description, "requires_approval": approval})


class Migration(migrations.Migration):
    dependencies = [("deployments", "0001_initial")]

    operations = [migrations.RunPython(create_environments, migrations.RunPython.noop)]
