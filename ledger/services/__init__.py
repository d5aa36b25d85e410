"""Use cases. Each takes a unit of work and a clock; none knows about HTTP."""
