"""The mimgw.testing fixtures (fake_clock, fake_primary, fake_backup, fake_gateway) for the
example tests; in your project this line goes in the top-level conftest.py."""

pytest_plugins = ["mimgw.testing"]
