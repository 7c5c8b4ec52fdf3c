"""siyu's deterministic synthetic cross-border DTC brand.

``generate`` streams Segment-spec messages from seven sources (Shopify, Amazon, TikTok Shop,
WhatsApp, Instagram, the e-mail service and the web store) for customers in twelve markets;
``truth`` says which identifiers belong to whom, including the adversarial cases identity
resolution must not fall for; ``fx_rates`` gives the daily rates to convert the orders.
Same arguments, same bytes: demos, tests and benchmarks can rely on it.
"""

from siyu.demo.fx import fx_rates
from siyu.demo.generator import DemoChunk, generate, generate_with_truth, person_id, truth
from siyu.demo.markets import MARKETS, SOURCES, Market

__all__ = [
    "MARKETS",
    "SOURCES",
    "DemoChunk",
    "Market",
    "fx_rates",
    "generate",
    "generate_with_truth",
    "person_id",
    "truth",
]
