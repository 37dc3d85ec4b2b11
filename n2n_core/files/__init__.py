"""Files: bounded reads of what a user names, the one output-path check, atomic
writes and the one safe open for files we write.

A leaf: imports only ``errors``.
"""
