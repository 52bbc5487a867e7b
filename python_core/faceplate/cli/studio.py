"""``faceplate studio``: review facesets, fix alignments and label masks in the browser."""

from __future__ import annotations

import argparse
import contextlib
import sys
import webbrowser
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "studio", help="review facesets, fix alignments and label masks in the browser",
        description="Start the Studio on alignments stores and faceset folders (or a folder "
                    "holding both, such as demo_out), print its URL with the access token, "
                    "and open a browser. Ctrl-C stops it; every change is already saved.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="an alignments store (.fpstore), a faceset folder, or a folder "
                        "holding both")
    p.add_argument("--port", type=int, default=0,
                   help="port to listen on (default: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faceplate.studio.server import StudioServer
    from faceplate.studio.workspace import Workspace

    if not 0 <= args.port <= 65535:
        from faceplate.core.errors import ConfigError

        raise ConfigError(f"--port: {args.port} is not a port number")

    def opened(doc: Any) -> None:
        print(f"  faceset {doc.folder} ({len(doc.faces)} faces)", file=sys.stderr, flush=True)

    print("faceplate studio: opening…", file=sys.stderr, flush=True)
    ws = Workspace.open(args.paths, progress=opened)
    try:
        for st in ws.stores:
            print(f"  store {st.path}", file=sys.stderr)
        for problem in ws.problems:
            print(f"  left out: {problem}", file=sys.stderr)
        server = StudioServer(ws, args.host, args.port)
        if args.host not in ("127.0.0.1", "::1", "localhost"):
            print(f"faceplate studio: warning: listening on {args.host}: anyone who can reach "
                  "it and has the URL can change these files", file=sys.stderr)
        print(f"Faceplate Studio: {server.url}", flush=True)
        if not args.no_browser:
            webbrowser.open(server.url)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()  # uvicorn shuts down gracefully on Ctrl-C, then re-raises it
    finally:
        ws.close()
    print("faceplate studio: stopped; every change was saved as it was made", file=sys.stderr)
    return 0
