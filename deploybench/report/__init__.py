"""Renderers for a Results document: console table, CSV, Markdown, HTML."""
