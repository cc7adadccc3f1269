"""The ``footage`` command line: parses, calls the packages, prints. No business logic here."""
