"""CalcJobs of aiida-slem; each runs a subcommand of the ``slem`` tool on the computer.

pw.x MD runs need no CalcJob of their own: they use aiida-quantumespresso's ``PwCalculation`` with
``metadata.options.parser_name = 'slem.md'``.
"""
