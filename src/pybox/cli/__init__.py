"""Command-line front ends: ``pybox-runtime`` (runc's CLI, in cli/runtime/) and,
later, ``pybox`` (docker's) and ``pyboxd``.  Each is a thin layer that parses
arguments and calls the library below it."""
