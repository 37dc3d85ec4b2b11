"""``n2n-core bench``: how fast the engine is, against a plain port and the machine's limit.

Owns the benchmark command and the plain fp32 port it compares against
(``plain_unet``, built from nothing of ours on purpose). May import everything
below it: engine, evaluation, training (the real step is what is timed).
"""
