"""The web app's parts: the JSON API (api/), the pages (pages/), sign-in and access control (auth.py), the
error answers (errors.py), security headers (headers.py), the templates (templating.py).

ROUTERS is every router, in the order their routes are matched.
"""

from app.web.api import accounts as accounts_api
from app.web.api import events as events_api
from app.web.api import health, jobs, metrics, notifications, scans, schedules, secrets, targets
from app.web.pages import dashboard, login, settings
from app.web.pages import events as events_page
from app.web.pages import jobs as jobs_pages
from app.web.pages import scans as scan_pages
from app.web.pages import secrets as secret_pages
from app.web.pages import targets as target_pages

ROUTERS = (
    login.router,
    health.router,
    accounts_api.router,
    schedules.router,  # before jobs and targets: /jobs/scheduled is not a job id
    targets.router,  # also /jobs/scheduled/{target_id}/run
    jobs.router,
    secrets.router,
    scans.router,
    events_api.router,
    notifications.router,
    dashboard.router,
    target_pages.router,
    secret_pages.router,
    settings.router,
    jobs_pages.router,
    events_page.router,
    scan_pages.router,
    metrics.router,
)

__all__ = ["ROUTERS"]
