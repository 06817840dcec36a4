"""The store's migrations, one frozen module per version: ``DESCRIPTION`` and ``apply(conn)``."""
