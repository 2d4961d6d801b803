"""Every error AssetMon raises on purpose, in one hierarchy.

`AssetMonError` carries the HTTP status it maps to, so the web app needs one handler for all of them
(app/main.py) and the CLI one `except` (it prints the message and exits 2). Messages are written for
the person who typed the input: what is wrong and, where it helps, what would be right.

The branches say what kind of problem it is, whatever module raises it:

    AssetMonError (500)
    ├── InvalidInput (422)        bad input; also a ValueError, so validators (pydantic) can raise it
    ├── NotFound (404)            no such thing; also a LookupError
    ├── Conflict (409)            the thing is in a state that does not allow it
    ├── TooManyAttempts (429)
    ├── Unavailable (503)         a service we need is down (the database)
    ├── JobFailed, JobCancelled, TransientError      how a job ended, or why it should run again
    └── SourceError               a scanner's source failed (CT, DNS, a body not read, a file skipped):
                                  a warning in a scan, never an answer of the web app

Where a class belongs to two branches (TargetNotFound is a TargetError and a NotFound), the branch that
gives the status comes first among its bases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class AssetMonError(Exception):
    """An error whose message a person can act on; `status_code` is its HTTP answer."""

    status_code = 500


class InvalidInput(AssetMonError, ValueError):
    status_code = 422


class NotFound(AssetMonError, LookupError):
    status_code = 404


class Conflict(AssetMonError):
    status_code = 409


class Unavailable(AssetMonError):
    status_code = 503


class TooManyAttempts(AssetMonError):
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {max(1, retry_after // 60 or 1)} minute(s)")
        self.retry_after = retry_after


# --- the database ---------------------------------------------------------------------------------------


class DatabaseError(Unavailable, RuntimeError):
    """The database cannot be reached or prepared; the message says why."""


# --- what users type: names, URLs, scopes, ports, resolvers, schedules --------------------------------------


class InvalidURL(InvalidInput):
    """A URL that cannot be scanned; the message says why."""


class ScopeError(InvalidInput):
    """Input that cannot be a target or a scope rule; the message says what is wrong."""


class InvalidName(ScopeError):
    """Not a domain name (or one we refuse: an IP address, a bare label)."""


class PortSpecError(InvalidInput):
    """A port spec that is not a comma-separated list of ports, START-END ranges and topN."""


class ResolverError(InvalidInput):
    """A resolver spec (setting or argument) is unusable; the message says which and why."""


class ScheduleError(InvalidInput):
    """A schedule that is neither {"every_seconds": N} nor {"cron": "..."} within the limits."""


# --- jobs ---------------------------------------------------------------------------------------------------


class JobError(AssetMonError):
    """A job cannot be found or changed as asked."""

    status_code = 400


class JobNotFound(NotFound, JobError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")


class JobStateError(Conflict, JobError):
    """The job's state does not allow it (cancel a finished job, requeue a running one)."""


class UnknownTask(NotFound):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"no task named {name!r}; registered tasks: {', '.join(sorted(known)) or 'none'}")


class InvalidArguments(InvalidInput):
    def __init__(self, name: str, error: Any) -> None:
        if callable(getattr(error, "errors", None)):  # a pydantic ValidationError: one part per field
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
        else:
            problems = str(error)
        super().__init__(f"invalid arguments for {name}: {problems}")


class JobLogError(InvalidInput):
    """A log line that cannot be written as asked (an unknown level)."""


class JobFailed(AssetMonError, RuntimeError):
    """The job ended failed or cancelled; the message carries its error."""


class JobCancelled(AssetMonError):
    """Raised inside a job at a checkpoint after a cancel was requested."""


class TransientError(AssetMonError):
    """A failure worth trying again later (a service briefly down, a rate limit): the job is re-run
    with backoff, as many times as its `retries` allow, before it fails."""


# --- recon: targets and scans -------------------------------------------------------------------------------


class TargetError(InvalidInput):
    """A target body that cannot be stored."""


class TargetNotFound(NotFound, TargetError):
    def __init__(self, ref: int | str) -> None:
        super().__init__(f"no target {ref!r}")


class TargetExists(Conflict, TargetError):
    pass


class ScanError(InvalidInput):
    """A scan that cannot be started as asked (bad options, modules or target)."""


class ScanBusy(Conflict, ScanError):
    """The target has a scan queued or running already."""


class ScanNotFound(NotFound, ScanError):
    def __init__(self, scan_id: str) -> None:
        super().__init__(f"no scan with id {scan_id!r}")


class AssetQueryError(NotFound, InvalidInput):
    """A tab of a target's page that does not exist; the message lists those that do."""

    def __init__(self, tab: str, tabs: Iterable[str]) -> None:
        super().__init__(f"no tab {tab!r}; tabs are {', '.join(tabs)}")


# --- scanners: what a source or a target did ----------------------------------------------------------------


class SourceError(AssetMonError):
    """A source of a scan could not be used; the scan reports the message as a warning and goes on."""

    status_code = 502


class CTError(SourceError):
    """The certificate transparency source could not be used; the message says why."""


class DNSFailure(SourceError):
    """A lookup got no usable answer after every retry (SERVFAIL, REFUSED, timeouts, a dead server)."""

    def __init__(self, name: str, rdtype: str, reason: str) -> None:
        super().__init__(f"{rdtype} {name}: {reason}")
        self.name = name
        self.rdtype = rdtype
        self.reason = reason


class PortScanError(SourceError, RuntimeError):
    """The scan could not go on: no sockets to be had for too long, or an error no retry can fix."""


class BodyRefused(SourceError):
    """An HTTP body was not read whole; the message says why (too big, a bomb, an unknown encoding)."""


class DecodeError(SourceError):
    """Compressed data that cannot be decoded within the caps (corrupt, too big, a likely bomb)."""


class SkipFile(SourceError):
    """This file is not scanned; the message says why."""


# --- secrets ------------------------------------------------------------------------------------------------


class RuleError(InvalidInput):
    """A rule file or rule is invalid; the message names which and why."""


class FindingNotFound(NotFound):
    def __init__(self, finding_id: int) -> None:
        super().__init__(f"no secret finding with id {finding_id}")


class BadConfidenceFilter(InvalidInput):
    pass


class VerificationOff(Conflict):
    """Live verification was asked for where it is not turned on."""


class SealError(Unavailable):
    """A stored secret cannot be sealed or unsealed: the key is missing, wrong or unreadable."""


class BadStatusFilter(InvalidInput):
    def __init__(self, status: str, allowed: Iterable[str]) -> None:
        super().__init__(f"status must be one of {', '.join(allowed)}, not {status!r}")


class TriageError(InvalidInput):
    """A verdict that cannot be recorded as asked; the message says what would be accepted."""


# --- checks -------------------------------------------------------------------------------------------------


class TemplateError(InvalidInput):
    """A check template that cannot be read or is malformed; the message names the file and the problem."""


class UnsupportedTemplate(TemplateError):
    """A well-formed template that uses something the engine does not do (yet); `reason` is short and
    stable, so that `assetmon checks templates --stats` can count templates skipped by reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class DslError(TemplateError):
    """A DSL expression that does not parse, calls an unknown helper, or exceeds the evaluator's bounds."""


class ServiceProbeError(SourceError):
    """A service probe could not run (the port refused, timed out, or answered nothing readable)."""


# --- accounts -----------------------------------------------------------------------------------------------


class AccountError(InvalidInput):
    pass


class UserNotFound(NotFound, AccountError):
    pass


class UserExists(Conflict, AccountError):
    pass


class LastAdmin(Conflict, AccountError):
    pass


class TokenNotFound(NotFound, AccountError):
    pass


# --- monitoring: notification channels ----------------------------------------------------------------------


class ChannelError(InvalidInput):
    """A channel body or request a user can fix; the message says what is wrong."""


class ChannelNotFound(NotFound, ChannelError):
    def __init__(self, channel_id: int) -> None:
        super().__init__(f"no notification channel with id {channel_id}")
