"""Training the neural reader (qa/neural) on public reading-comprehension data, on a CPU."""
