"""Inbound change notifications: parse, validate and route Dataverse and Finance events.

Engine-side only (no ``azure.functions``): the HTTP and ingress-queue triggers call
:mod:`shared.events.intake` and publish what it returns.
"""
