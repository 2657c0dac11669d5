"""appliance.toml: schema, loading, validation, the default file."""

from appliance.config.load import Config, ConfigError, load, parse, save, write_atomic

__all__ = ["Config", "ConfigError", "load", "parse", "save", "write_atomic"]
