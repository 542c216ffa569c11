"""The research answer: the published examples, their diagnosis, the measurements, the report."""
