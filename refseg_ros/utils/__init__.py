"""Small helpers shared by every stage (weight locations, logging)."""
