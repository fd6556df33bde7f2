"""The Peppol plug-in's tests: its contract suite, its rules and its XML attack suite."""
