"""The loop of one chat turn: request, run the tools asked for, repeat, all of it bounded.

Bounds: tool rounds, tool calls per reply and per turn, tool output per call, and one
shrink-and-retry when the endpoint refuses the prompt as longer than its context window.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from companion.errors import CompanionError, EndpointError, InputError
from companion.llm.budget import Fitted, TokenBudget
from companion.llm.client import ChatClient, Completion, RawToolCall
from companion.llm.endpoint import remember_context_length
from companion.llm.failures import ContextExceeded
from companion.llm.schemas import ToolCallRecord, Usage
from companion.toolbox import LLM_SCHEMAS, load_tools, run_tool
from companion.tools import Tool, ToolContext, wire_name

log = logging.getLogger("companion.llm")

Delta = Callable[[str], None]
Status = Callable[[str], None]
SystemFor = Callable[[TokenBudget], Awaitable[dict[str, Any]]]
# When the tool results of a turn overflow the window, each is cut to these token counts in turn.
TOOL_RESULT_SHARES = (1000, 250, 60)


def cap_text(text: str, limit: int) -> str:
    """Keep at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... truncated: {len(text) - limit} more characters ...]"


class TurnLoop:
    """The state of one turn's loop: requests made, tool calls, usage, notes."""

    def __init__(
        self,
        client: ChatClient,
        budget: TokenBudget,
        ctx: ToolContext,
        on_delta: Delta,
        on_status: Status,
    ) -> None:
        self.client, self.budget, self.ctx = client, budget, ctx
        self.on_delta, self.on_status = on_delta, on_status
        self.records: list[ToolCallRecord] = []
        self.usage = Usage()
        self.notes: list[str] = []
        self.requests = 0
        self.shown = ""
        self._separate = False
        self.schemas: list[dict[str, Any]] = []
        self._shrunk_from: int | None = None
        self._refused: ContextExceeded | None = None
        self.shrink: tuple[int, int] | None = None  # prompt tokens before and after a shrink
        self._window = ""
        self.learned_window: int | None = None  # the window a context-length refusal stated

    def note(self, text: str) -> None:
        """Add a note for the user once."""
        if text not in self.notes:
            self.notes.append(text)

    def _delta(self, text: str) -> None:
        """Forward streamed text, remembering what the user has seen."""
        if self._separate and text:
            self._separate = False  # a blank line between the text of successive rounds
            self.shown += "\n\n"
            self.on_delta("\n\n")
        self.shown += text
        self.on_delta(text)

    def _offered_schemas(self) -> list[dict[str, Any]]:
        """The tool declarations to offer, unless they would crowd out the conversation."""
        schemas = LLM_SCHEMAS.get() if self.ctx.settings.chat_max_tool_rounds > 0 else []
        if schemas and self.budget.count_tools(schemas) > self.budget.prompt_limit // 2:
            # Small contexts (e.g. Ollama's default) cannot hold every tool declaration.
            need, window = self.budget.count_tools(schemas), self.budget.context_length
            self.note(
                f"Tools were not offered: their declarations need {need} tokens of a "
                f"{window}-token context window. Use a model with a longer context for "
                "tool-grounded answers."
            )
            return []
        return schemas

    async def loop(
        self, prefix: list[dict[str, Any]], turn: list[dict[str, Any]], system_for: SystemFor
    ) -> str:
        """Request, run tools, repeat (bounded); returns the text the user saw."""
        settings = self.ctx.settings
        self.schemas = self._offered_schemas()
        tools = {t.wire_name: t for t in load_tools().values() if t.read_only}
        for round_no in range(settings.chat_max_tool_rounds + 1):
            more = round_no < settings.chat_max_tool_rounds and self._calls_left() > 0
            offer = self.schemas if more and self.schemas else None
            completion, offer = await self._request(prefix, turn, offer, system_for)
            if completion.stopped:
                self.note(completion.stopped)
            if completion.finish_reason == "length":
                self.note("The answer was cut off at the output token limit.")
            if not completion.tool_calls or offer is None:
                turn.append({"role": "assistant", "content": completion.text})
                if not self.shown.strip():
                    reason = completion.finish_reason or "none"
                    self.note(f"The model returned an empty answer (finish_reason: {reason}).")
                if completion.tool_calls:
                    self._note_no_more_tools(round_no)
                return self.shown
            calls = self._allowed(completion.tool_calls)
            turn.append(_assistant_with_calls(completion.text, calls))
            for call in calls:
                self.on_status(f"calling {call.name}")
                record, content = await self._run(call, tools)
                self.records.append(record)
                turn.append({"role": "tool", "tool_call_id": call.id, "content": content})
        raise AssertionError("unreachable: the last round offers no tools")

    def _calls_left(self) -> int:
        """Tool calls this turn may still make."""
        return self.ctx.settings.chat_max_tool_calls_per_turn - len(self.records)

    def _allowed(self, calls: list[RawToolCall]) -> list[RawToolCall]:
        """The calls of one reply that will run, within both caps (a note says what was cut)."""
        settings = self.ctx.settings
        per_round = settings.chat_max_tool_calls_per_round
        keep = min(per_round, self._calls_left())
        if len(calls) > keep:
            which = (
                f"chat_max_tool_calls_per_round={per_round}"
                if keep == per_round
                else f"chat_max_tool_calls_per_turn={settings.chat_max_tool_calls_per_turn}"
            )
            self.note(
                f"The model asked for {len(calls)} tool calls in one reply; only the first "
                f"{keep} ran ({which})."
            )
        return calls[:keep]

    def _note_no_more_tools(self, round_no: int) -> None:
        """Say which bound stopped the model from calling more tools."""
        settings = self.ctx.settings
        if self._calls_left() <= 0:
            self.note(
                f"The model asked for more tools after {len(self.records)} tool calls; the "
                f"limit is chat_max_tool_calls_per_turn={settings.chat_max_tool_calls_per_turn}."
            )
        else:
            self.note(
                f"The model asked for more tools after {round_no} round(s); the limit "
                f"is chat_max_tool_rounds={settings.chat_max_tool_rounds}."
            )

    async def _request(
        self,
        prefix: list[dict[str, Any]],
        turn: list[dict[str, Any]],
        offer: list[dict[str, Any]] | None,
        system_for: SystemFor,
    ) -> tuple[Completion, list[dict[str, Any]] | None]:
        """One request (and the tools it offered); a context-length refusal shrinks the prompt
        (dropping the tool declarations if they no longer fit) and retries once."""
        while True:
            try:
                fitted = self._fit(prefix, turn, offer)
            except InputError as too_big:
                if self._refused is None:
                    raise
                raise self._still_too_long(self._refused, too_big.message) from None
            sent_tokens = fitted.prompt_tokens + self.budget.count_tools(offer or [])
            self._separate = bool(self.shown)
            try:
                completion = await self.client.complete(
                    fitted.messages, offer, self.budget.reserve_output, self._delta
                )
            except ContextExceeded as refused:
                if self._shrunk_from is not None:
                    why = f"it refused {sent_tokens} tokens too."
                    raise self._still_too_long(refused, why) from None
                await self._shrink(refused, sent_tokens, prefix, system_for)
                self.schemas = self._offered_schemas()
                offer = self.schemas if offer and self.schemas else None
                continue
            self.requests += 1
            self._count(completion, fitted.prompt_tokens)
            if self._shrunk_from is not None and self.shrink is None:
                self.shrink = (self._shrunk_from, sent_tokens)
                self.note(
                    f"The endpoint refused a {self._shrunk_from}-token prompt as longer than its "
                    f"context window ({self._window}; llm_context_length is "
                    f"{self.ctx.settings.llm_context_length}): the prompt was shrunk to "
                    f"{sent_tokens} tokens and sent again."
                )
            return completion, offer

    async def _shrink(
        self,
        refused: ContextExceeded,
        sent: int,
        prefix: list[dict[str, Any]],
        system_for: SystemFor,
    ) -> None:
        """Rebuild the prompt for the window the endpoint stated (once per turn)."""
        self._shrunk_from, self._refused = sent, refused
        self.requests += 1
        self._window = f"{refused.window} tokens" if refused.window else "size not stated"
        self.learned_window = refused.window
        if refused.window:
            remember_context_length(
                self.client.endpoint, refused.window, "the endpoint's context-length error"
            )
        self.budget = self.budget.shrunk(refused.window, refused.requested, sent)
        prefix[0] = await system_for(self.budget)

    def _still_too_long(self, refused: ContextExceeded, why: str) -> EndpointError:
        """The refusal when the one shrink-and-retry cannot help: a clear error, never empty."""
        return EndpointError(
            f"{refused.message} The prompt ({self._shrunk_from} tokens) was shrunk once to fit "
            f"and still does not: {why}",
            hint=refused.hint,
        )

    def _fit(
        self,
        prefix: list[dict[str, Any]],
        turn: list[dict[str, Any]],
        offer: list[dict[str, Any]] | None,
    ) -> Fitted:
        """Fit the request; tool results of this turn are cut down before giving up."""
        tool_msgs = [m for m in turn if m.get("role") == "tool"]
        for share in (None, *TOOL_RESULT_SHARES):
            if share is not None:
                for m in tool_msgs:
                    m["content"], _ = self.budget.truncate_text(m["content"], share, "A result")
            try:
                fitted = self.budget.fit([*prefix, *turn], offer)
            except InputError:
                if not tool_msgs:
                    raise
                continue
            if share is not None:
                self.note(f"Tool results were cut to {share} tokens each to fit the context.")
            for n in fitted.notes:
                self.note(n)
            return fitted
        raise EndpointError(
            f"The results of {len(tool_msgs)} tool calls the model made do not fit in the "
            f"context window ({self.budget.context_length} tokens) even when cut down.",
            hint="ask a narrower question, or lower chat_max_tool_calls_per_turn, or use a "
            "model with a longer context.",
        )

    def _count(self, completion: Completion, prompt_estimate: int) -> None:
        """Add a request's usage (counted with tiktoken when the endpoint sent none)."""
        prompt, done = completion.prompt_tokens, completion.completion_tokens
        if prompt is None or done is None:
            self.usage.estimated = True
            prompt = prompt_estimate if prompt is None else prompt
            if done is None:
                args = "".join(c.name + c.arguments for c in completion.tool_calls)
                done = self.budget.count_text(completion.text + args)
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += done
        self.usage.total_tokens = self.usage.prompt_tokens + self.usage.completion_tokens

    async def _run(self, call: RawToolCall, tools: dict[str, Tool]) -> tuple[ToolCallRecord, str]:
        """Run one requested tool; problems go back to the model as an error it can read."""
        record = ToolCallRecord(name=call.name, arguments=call.arguments)
        tool = tools.get(call.name) or tools.get(wire_name(call.name))
        limit = self.ctx.settings.chat_tool_output_chars
        if tool is None:
            known = ", ".join(sorted(tools)) or "none"
            record.error = f"Unknown tool {call.name!r}. Available tools: {known}."
            return record, json.dumps({"error": record.error})
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError as exc:
            record.error = f"The arguments are not valid JSON ({exc}); send a JSON object."
            return record, json.dumps({"error": record.error})
        record.arguments = args
        record.name = tool.name  # report the registry name (audit.query), not the wire name
        try:
            result = await asyncio.to_thread(run_tool, tool.name, args, self.ctx)
        except CompanionError as exc:
            record.error = exc.text
            return record, json.dumps({"error": exc.text})
        except Exception as exc:  # a bug in one tool must not end the chat turn
            log.exception("tool %s failed", tool.name)
            record.error = (
                f"internal error in {tool.name} ({type(exc).__name__}); the other tools still "
                "work: answer without it, and report the arguments used."
            )
            return record, json.dumps({"error": record.error})
        text = result.model_dump_json()
        record.result = (
            result.model_dump(mode="json") if len(text) <= limit else cap_text(text, limit)
        )
        return record, cap_text(text, limit)


def _json_or_empty(text: str) -> str:
    """Arguments to echo back: servers that parse them choke on invalid JSON, so send {}."""
    try:
        json.loads(text)
    except ValueError:
        return "{}"
    return text


def _assistant_with_calls(text: str, calls: list[RawToolCall]) -> dict[str, Any]:
    """The assistant message that requested the tools that ran, as the API expects it back."""
    wire = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": a}}
        for c in calls
        for a in [_json_or_empty(c.arguments)]
    ]
    return {"role": "assistant", "content": text or None, "tool_calls": wire}
