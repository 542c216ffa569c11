"""The pipeline on every core: `sinernn repro -j N`, its resident worker, and the plan for more cores."""
