"""Automatic retraining decisions: cron schedules, cooldowns, daily caps, and what a request is.

Pure: the caller passes every time. A retrain request is the ``mlsteward.io/retrain``
annotation's value; automatic ones are ``drift/<monitor>/<time>`` (from a Monitor) and
``schedule/<time>`` (from the Model's own cron schedule). Only automatic requests are subject
to the Model's cooldown, daily cap and ``onDrift``; a person's request always runs.
"""

from __future__ import annotations

import dataclasses
import datetime

DRIFT_PREFIX = "drift/"
SCHEDULE_PREFIX = "schedule/"
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class CronError(ValueError):
    """A schedule that is not five valid cron fields."""


def token_time(now: datetime.datetime) -> str:
    """A compact UTC time for tokens (annotation values stay short and sortable)."""
    return now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def is_automatic(token: str | None) -> bool:
    return bool(token) and str(token).startswith((DRIFT_PREFIX, SCHEDULE_PREFIX))


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = int(a), int(b)
        else:
            first = int(base)
            last = high if step_text else first
        if step < 1 or first < low or last > high or first > last:
            raise CronError(f"{part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return values


def parse_cron(schedule: str) -> list[set[int]]:
    """minute, hour, day of month, month, day of week (0 = Sunday; 7 is Sunday too)."""
    fields = schedule.split()
    if len(fields) != 5:
        raise CronError(f"spec.retraining.schedule {schedule!r} must have five fields")
    try:
        parsed = [
            _field(text.replace("7", "0") if i == 4 else text, *_RANGES[i]) for i, text in enumerate(fields)
        ]
    except ValueError as error:
        raise CronError(f"spec.retraining.schedule {schedule!r}: {error}") from error
    return parsed


def _matches(fields: list[set[int]], when: datetime.datetime) -> bool:
    minute, hour, day, month, weekday = fields
    dow = (when.weekday() + 1) % 7
    day_ok = when.day in day
    dow_ok = dow in weekday
    # Cron's rule: when both day fields are restricted, either may match.
    days = (day_ok or dow_ok) if len(day) < 31 and len(weekday) < 7 else (day_ok and dow_ok)
    return when.minute in minute and when.hour in hour and when.month in month and days


def last_fire(schedule: str, after: datetime.datetime, now: datetime.datetime) -> datetime.datetime | None:
    """The latest cron time in (after, now], looking back at most one day."""
    fields = parse_cron(schedule)
    start = max(after, now - datetime.timedelta(days=1))
    when = now.replace(second=0, microsecond=0)
    while when > start:
        if _matches(fields, when):
            return when
        when -= datetime.timedelta(minutes=1)
    return None


def next_fire(schedule: str, now: datetime.datetime) -> datetime.datetime | None:
    """The first cron time after ``now`` within a day (None: further away)."""
    fields = parse_cron(schedule)
    when = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    end = now + datetime.timedelta(days=1)
    while when <= end:
        if _matches(fields, when):
            return when
        when += datetime.timedelta(minutes=1)
    return None


@dataclasses.dataclass(frozen=True)
class Budget:
    """Cooldown and daily cap over a record of past runs."""

    cooldown_seconds: float
    max_per_day: int

    def refusal(self, last: datetime.datetime | None, count_today: int, now: datetime.datetime) -> str | None:
        """Why a run now is not allowed (None: allowed). ``count_today`` counts runs on ``last``'s UTC day."""
        if self.max_per_day <= 0:
            return "the daily cap is 0 (retraining disabled)"
        if last is not None and (now - last).total_seconds() < self.cooldown_seconds:
            wait = self.cooldown_seconds - (now - last).total_seconds()
            return f"cooldown: the last run was {(now - last).total_seconds():.0f}s ago; {wait:.0f}s to go"
        if last is not None and last.date() == now.date() and count_today >= self.max_per_day:
            return f"daily cap reached: {count_today} of {self.max_per_day} today (UTC)"
        return None

    @staticmethod
    def count_after(last: datetime.datetime | None, count_today: int, now: datetime.datetime) -> int:
        """The day's count once a run happens at ``now``."""
        return count_today + 1 if last is not None and last.date() == now.date() else 1
