"""The vocabulary every room shares: outcome and counter names, exit codes, units."""
