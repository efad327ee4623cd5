"""Pure: the operator's decisions as functions of plain data, tested without a cluster."""
