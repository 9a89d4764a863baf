"""The SWE batch runner: SWE-bench instances in, predictions and graded reports out."""
