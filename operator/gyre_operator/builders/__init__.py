"""Pure functions: an object, its observed children, the config and now -> the desired state.

Nothing here does I/O; the controllers read, hand what they read to a builder, and carry out
the plan it returns.
"""
