"""`companion chat "question" [--file F]`: one chat turn, streamed to the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from companion.errors import InputError


def add_parser(sub: Any) -> None:
    """Add the `chat` subcommand."""
    p = sub.add_parser(
        "chat",
        help="ask the LLM a question grounded in the recorded evidence (streams the answer)",
        description="Ask a question; the answer streams to stdout. Tool calls, notes and "
        "token usage go to stderr. Needs an LLM endpoint (see COMPANION_LLM_BASE_URL).",
    )
    p.add_argument("question", help="the question to ask")
    p.add_argument("--file", type=Path, help="quote this file as context")
    p.add_argument("--conversation", help="continue a saved conversation (id printed earlier)")
    p.add_argument("--json", dest="_json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--no-store", dest="_no_store", action="store_true", help="do not save the transcript"
    )
    p.set_defaults(_extra=run)


def run(ns: argparse.Namespace) -> int:
    """Run one chat turn; CompanionError propagates to the CLI's clean error path."""
    import asyncio  # here, not at the top: the other subcommands never need it

    from companion.llm import ChatRequest, ChatService, DocumentContext
    from companion.settings import load_settings

    settings = load_settings()
    if ns._no_store:
        settings = settings.model_copy(update={"store_enabled": False})
    roots = [Path.cwd()]
    context = None
    if ns.file is not None:
        path = ns.file.expanduser().resolve()
        if not path.is_file():
            raise InputError(f"{ns.file} is not a file.", hint="pass an existing file to --file.")
        roots.append(path.parent)  # the user named this file, so its folder is in scope
        context = DocumentContext(uri=path.as_uri())
    request = ChatRequest(message=ns.question, conversation_id=ns.conversation, context=context)

    def delta(text: str) -> None:
        if not ns._json:
            sys.stdout.write(text)
            sys.stdout.flush()

    def status(message: str) -> None:
        print(f"[{message}]", file=sys.stderr, flush=True)

    async def go() -> Any:
        service = ChatService()
        try:
            return await service.chat(request, settings, roots, delta, status)
        finally:
            await service.close()

    result = asyncio.run(go())
    if ns._json:
        print(json.dumps(result.to_wire(), indent=2))
        return 0
    print()
    for call in result.tool_calls:
        outcome = f"error: {call.error}" if call.error else "ok"
        print(f"[tool {call.name}: {outcome}]", file=sys.stderr)
    for note in result.notes:
        print(f"[note: {note}]", file=sys.stderr)
    u = result.usage
    print(
        f"[conversation {result.conversation_id} · {u.prompt_tokens} prompt + "
        f"{u.completion_tokens} completion tokens{' (estimated)' if u.estimated else ''}]",
        file=sys.stderr,
    )
    return 0
