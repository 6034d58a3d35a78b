"""The MCP front door: every registry tool, recorded results and prompt templates over stdio.

`companion mcp` starts it; see docs/mcp.md for the agent set-up snippets. Engines never
import this package.
"""
