"""Prompt templates (markdown data), shipped in the wheel as companion.prompts."""
