"""The operations behind ``autopr-migrate``: one module per command, each a plain function."""
