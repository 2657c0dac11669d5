"""The appliance's console menu (Textual): SME Server's text "server console", over
appliance.toml. It edits settings through the same schema, validation and apply path
as the `appliance` CLI; nothing here knows how a service is configured."""
