from django.db import migrations

# The role names that mlops_portal.access checks; a migration keeps its own
# copy because it must not import application code that may change later.
ROLES = ["data scientist", "ops lead", "viewer", "admin"]


def create_role_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("deployments", "0004_environment_access_and_approvals"),
    ]

    # Reversing keeps the groups, because users may have been added to them.
    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
