"""The user's profile: where files live, settings, and secrets kept in the OS keyring."""
