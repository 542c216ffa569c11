"""One module per pipeline stage (and per command that is not a stage): params and paths in, outputs out.

Only the command line (sinernn/commands.py) imports these; a stage's DVC deps are its job module and the packages it uses.
"""
