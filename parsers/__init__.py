"""Parsers of aiida-slem, including ``slem.md`` (pw.x MD with velocities and temperatures)."""
