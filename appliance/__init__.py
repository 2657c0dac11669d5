"""A small-office mail server appliance: one toml, rendered into every service it runs."""

__version__ = "0.2.0"
