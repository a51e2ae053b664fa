"""The kopf operator: thin handlers -> reconcilers -> pure builders of child objects.

Must not import the trainer, the server or the monitor: it launches them as programs.
"""
