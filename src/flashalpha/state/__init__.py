"""The Market State Engine: schema, shared-memory segment, writer, readers, events."""
