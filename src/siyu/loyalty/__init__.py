"""Loyalty: points ledger, member tiers, paid membership and coupons."""
