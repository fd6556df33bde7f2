"""The plug-in's mapping directory (``peppol/*.yaml``), published in the ``saleshub.mappings`` group."""
