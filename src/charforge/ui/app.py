"""``charforge ui``: the web UI, one page per step, over the home folder of character workspaces.

Every page calls :mod:`charforge.api` (long steps through the job queue of :mod:`charforge.recipes.jobs`), so a
run started here resumes from the CLI and the other way round. The server binds to 127.0.0.1; another address
is served only with a login, and only files inside the home folder are served.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import time
from pathlib import Path

from ..errors import CharforgeError

log = logging.getLogger(__name__)
DEFAULT_PORT = 7860
MAX_UPLOAD = "50mb"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(auth: str | None, token: str | None) -> list[tuple[str, str]] | None:
    """``user:pass`` (or ``CHARFORGE_UI_AUTH``), or a token any user name logs in with."""
    auth = auth or os.environ.get("CHARFORGE_UI_AUTH")
    token = token or os.environ.get("CHARFORGE_UI_TOKEN")
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise CharforgeError("--auth takes user:password")
        return [(user, password)]
    if token:
        if len(token) < 16:
            raise CharforgeError(
                "--token must be at least 16 characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        return [("charforge", token)]
    return None


def check_bind(host: str, login: list[tuple[str, str]] | None) -> None:
    """Anyone who can reach a non-loopback address could train, write files and read the workspace: not without a login."""
    if not is_loopback(host) and not login:
        raise CharforgeError(
            f"--host {host} makes the UI reachable from other machines; add --auth user:password or --token TOKEN"
        )


def build_app(root: Path, queue):
    import gradio as gr

    from . import characters, comic, evaluating, generating, jobs, training
    from .context import Context

    ctx = Context(Path(root), queue)
    with gr.Blocks(title="charforge", analytics_enabled=False) as app:
        with gr.Row():
            gr.Markdown(f"## charforge · {ctx.root}")
            names = ctx.names()
            character = gr.Dropdown(
                choices=names, value=names[0] if names else None, label="character", elem_id="character", scale=0, min_width=260
            )
        story_path = gr.State(str(ctx.root / comic.STORY_FILE))  # the Comic page's file, for "send to a comic panel"
        with gr.Tabs():
            characters.build(ctx, character)
            training.build(ctx, character)
            generating.build(ctx, character, story_path)
            evaluating.build(ctx, character)
            story = comic.build(ctx)
        jobs.build(ctx)
        story.change(lambda value: value, [story], [story_path])
        app.load(lambda value: value, [story], [story_path])
        # a reload sees characters made since the server started (in another tab, or with `charforge init`)
        app.load(lambda: gr.update(choices=ctx.names()), None, [character])
    return app


def serve(
    root: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    auth: str | None = None,
    token: str | None = None,
    open_browser: bool = False,
    block: bool = True,
):
    """Start the UI; with ``block=False`` return ``(app, url, queue)`` with the server running in the background."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ..recipes.jobs import JobQueue
    from .evaluating import SHORTCUTS

    root = Path(root).resolve()
    port = port or free_port(host)
    if not root.is_dir():
        raise CharforgeError(f"{root}: no such folder (the UI's home: a folder for character workspaces)")
    login = parse_auth(auth, token)
    check_bind(host, login)
    if not is_loopback(host):
        log.warning("serving on %s: reachable from other machines, behind a login", host)
    queue = JobQueue(root).start()
    app = build_app(root, queue)
    app.queue(default_concurrency_limit=4)
    app.launch(
        server_name=host,
        server_port=port,
        auth=login,
        auth_message="charforge: log in" if login else None,
        allowed_paths=[str(root)],
        max_file_size=MAX_UPLOAD,
        inbrowser=open_browser,
        prevent_thread_lock=True,
        share=False,
        quiet=True,
        footer_links=[],
        ssr_mode=False,
        head=SHORTCUTS,
    )
    local = f"http://{host}:{app.server_port}/"
    if block:
        block_until_interrupted(app, queue)
    return app, local, queue


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def block_until_interrupted(app, queue) -> None:
    """Serve until Ctrl-C; a training job then writes its checkpoint before the process ends (resume it later)."""
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        running = queue.running()
        if running is not None:
            print(f"stopping {running.label}: writing its checkpoint ...", flush=True)
            queue.cancel(running.id)
            with contextlib.suppress(TimeoutError, KeyboardInterrupt):
                queue.wait(running.id, timeout=300)
    finally:
        queue.close()
        app.close()
