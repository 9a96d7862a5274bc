"""Deployment tooling: the Service Bus topology generated from the catalog, and the app package.

Not deployed itself: it runs on the operator's machine and imports ``shared/`` only.
"""
