"""Abuse defence shared by every service that takes a password.

`bans` is the one store of failed logins and banned addresses (SQLite on the data
volume): the SMTP daemons, Dovecot (through its auth policy server) and the webmail
(whose logins are Dovecot's) record failures in it and ask it whether an address is
banned. Nothing here imports a service: each service calls in.
"""
