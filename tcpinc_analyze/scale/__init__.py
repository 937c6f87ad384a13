"""Scale: many captures on all cores, one capture sharded by flow, Dask, Parquet, live.

Everything here drives the existing single-process analyzer; nothing re-derives a
protocol fact. The one promise every path keeps: the result is the one a single process
would have produced (same connection ids, same findings, same order).
"""
