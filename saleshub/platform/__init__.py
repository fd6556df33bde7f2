"""Platform: settings, the secret store and telemetry, the ports through which the hub meets its host."""
