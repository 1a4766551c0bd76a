"""Template filters for the portal's pages."""

from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """Format seconds as "1 h 2 min", "3 min 5 s" or "40 s"."""
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return ""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


@register.filter
def state_label(value) -> str:
    """Turn a state value such as "awaiting_approval" into "awaiting approval"."""
    return str(value).replace("_", " ")


@register.filter
def percent(value) -> str:
    """Format a weight such as 12.50 as "12.5%"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{number:g}%"
