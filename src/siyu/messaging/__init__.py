"""Messaging: channels, templates and the send policy every outbound message passes through."""
