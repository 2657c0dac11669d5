"""The `appliance` command's verbs, one module per verb.

table.py holds the argparse table and the dispatch (the `appliance` entry point); a verb's
module is imported only when that verb runs. base.py has what several verbs share. sme.py
is SME Server's `config`, `db` and `signal-event`; docs.py writes docs/ (`make docs`);
testmail.py is the console's test message.

This package is the top layer: appliance/services and appliance/smtpd never import it
(an import-linter contract in pyproject.toml); console/ may.
"""
