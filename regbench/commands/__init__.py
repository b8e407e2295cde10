"""The subcommands of `regbench` (regbench/cli.py picks one): each parses its options, calls the module that does the
work, prints what it gives, and returns None, or what failed (the command exits 1); bad input is a UserError."""
