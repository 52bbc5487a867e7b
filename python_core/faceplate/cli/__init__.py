"""Command-line front end: the only layer that parses arguments, prints and exits."""
