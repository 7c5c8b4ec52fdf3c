"""Profiles: the golden record of a customer (traits with provenance, identifiers, consents,
recent orders and events, and the sections other slices register).

Other slices import only what this module exports.
"""

from siyu.profiles.assemble import ProfileRequest, build_profile, load_profile
from siyu.profiles.lookup import (
    current_customer_id,
    customer_by_identifier,
    find_customer,
    normalise_identifier,
)
from siyu.profiles.traits import Candidate, survive

__all__ = [
    "Candidate",
    "ProfileRequest",
    "build_profile",
    "current_customer_id",
    "customer_by_identifier",
    "find_customer",
    "load_profile",
    "normalise_identifier",
    "survive",
]
