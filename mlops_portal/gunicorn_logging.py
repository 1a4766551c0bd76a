"""A gunicorn logger that leaves the gateways' successful polling requests out of the access log.

By default each gateway fetches the route table every 0.2 s and posts its
counters every second, which would fill the access log with thousands of
identical lines an hour. Failed polls (any status but 200, 204 or 304) are
still logged.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

GATEWAY_POLLING_PREFIX = "/api/v1/gateway/"


class PortalLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO", "").startswith(GATEWAY_POLLING_PREFIX) and resp.status_code in (200, 204, 304):
            return
        super().access(resp, req, environ, request_time)
