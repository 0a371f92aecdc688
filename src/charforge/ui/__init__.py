"""The local web UI (``charforge ui``): a page per step, built with gradio over :mod:`charforge.api`."""

from .app import check_bind, parse_auth, serve

__all__ = ["serve", "check_bind", "parse_auth"]
