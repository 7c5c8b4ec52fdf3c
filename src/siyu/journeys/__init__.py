"""Journeys: automated, versioned customer journeys (triggers, steps, workers, measurement)."""
