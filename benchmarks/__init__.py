"""Speed and memory figures for the project (`make bench`); figures to read, not pass/fail tests."""
