"""Translations of vendor webhook payloads into canonical Segment-spec messages.

Verification (signatures, handshakes) lives with the HTTP endpoints in
``siyu.api.routers.webhooks``; these modules only translate verified payloads, so nothing
downstream reads a vendor format.
"""
