"""The flows, one per module, each a checklist over the layers below."""
