"""What the CBOR tests share."""


def typed(value):
    """`value` with every item tagged by its type, so that True != 1 and b"" != "";
    tuples read as lists, as they decode."""
    if isinstance(value, (list, tuple)):
        return ("list", [typed(item) for item in value])
    if isinstance(value, dict):
        return ("dict", dict((typed(k), typed(v)) for k, v in value.items()))
    return (type(value).__name__, value)
