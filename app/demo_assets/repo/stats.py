"""Small statistics helpers."""


def mean(values):
    """The arithmetic mean of ``values``."""
    return sum(values) / len(values)


def median(values):
    """The middle value of ``values``; for an even count, the mean of the two middle ones."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 0:
        return ordered[middle]
    return ordered[middle]
