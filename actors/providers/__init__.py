"""Provider adapters: one module per wire format, chosen with `base.get_adapter(provider)`."""
