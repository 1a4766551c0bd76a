# The portal's own image: web, worker, beat and gateway run from it with
# different commands (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTAL_VAR_DIR=/var/lib/mlops-portal

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --create-home --uid 1000 portal \
    && mkdir -p /var/lib/mlops-portal \
    && chown portal /var/lib/mlops-portal \
    && DJANGO_DEBUG=true python manage.py collectstatic --noinput --verbosity 0

USER portal
EXPOSE 8000 8080
CMD ["gunicorn", "mlops_portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
