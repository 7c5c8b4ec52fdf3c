"""The tag language: parse, type-check, compile to Ibis, explain. See docs/tags.md."""
