"""``n2n-core``: parse the command line and dispatch to one function of a concept.

Owns the argument parser, the table of commands and how results are printed
(``views``: rich tables for runs, replay, evaluation and sweeps). The top
layer: it may import every package; nothing imports it.
"""
