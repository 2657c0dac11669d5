"""Every reply line the daemons send that is not a plugin's own text.

Tests import these constants, so a changed wording changes code and tests together.
"""

# -- in place of aiosmtpd's own lines, which lack the enhanced codes (RFC 2034) we
#    advertise; server.py maps aiosmtpd's text to these ------------------------------
LINE_TOO_LONG = "500 5.5.2 Error: command line too long"  # RFC 5321 4.5.3.1.4
BAD_SYNTAX = "500 5.5.2 Error: bad syntax"
NON_ASCII = "500 5.5.2 Error: non-ASCII command without SMTPUTF8"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
TLS_ALREADY_ACTIVE = "503 5.5.1 Error: TLS already active"
TLS_UNAVAILABLE = "454 4.7.0 TLS not available due to local problem"
TLS_READY = "220 2.0.0 Ready to start TLS"
TLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
TLS_HANDSHAKE_FAILED = "554 5.7.0 Command refused due to lack of security"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
ALREADY_AUTHENTICATED = "503 5.5.1 Error: already authenticated"
PARAMETERS_UNKNOWN = "555 5.5.4 {command} parameters not recognized or not implemented"
NOT_IMPLEMENTED = "502 5.5.1 {command} not implemented"
BYE = "221 2.0.0 Bye"

GREETING = "220 {hostname} ESMTP"
OK = "250 2.0.0 OK"
OK_SENDER = "250 2.1.0 Sender OK"
OK_RECIPIENT = "250 2.1.5 Recipient OK"
QUEUED = "250 2.0.0 Ok: queued as {queue_id}"

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_ADDRESS = "421 4.7.0 Too many connections from your address, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TIMEOUT = "421 4.4.2 {hostname} Error: timeout exceeded"

TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
INSUFFICIENT_STORAGE = "452 4.3.1 Insufficient system storage"
UNRECOGNIZED = '500 5.5.1 Command "{command}" not recognized'
TOO_MANY_UNRECOGNIZED = "421 4.7.0 Too many unrecognized commands, goodbye"
NO_DECISION = "450 4.7.1 No plugin decided about this recipient, try again later"
PLUGIN_FAILED = "451 4.3.0 Temporary internal error, try again later"
HANDOFF_UNAVAILABLE = "451 4.3.0 Mail queue temporarily unavailable, try again later"
HANDOFF_REFUSED_SOME = "451 4.3.0 Queue refused some recipients, try again later"

HANDOFF_BAD_ADDRESS = "553 5.1.3 Address not accepted by the mail queue"
RELAY_DENIED = "550 5.7.1 Relaying denied: authenticate first"
BAD_ADDRESS = "501 5.1.3 <{address}>: Bad recipient address syntax"
USER_UNKNOWN = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
BARE_CR_LF = "554 5.6.0 Message refused: bare CR or LF in message data (SMTP smuggling)"

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTHZID_REFUSED = "535 5.7.8 Authorization identity must be the login"
AUTH_REQUIRED = "530 5.7.0 Authentication required"

# -- who may send as whom, who may write to internal addresses (sender_login, badrcptto)
SENDER_NOT_OWNED = "553 5.7.1 <{address}>: Sender address rejected: not owned by user {user}"
FROM_NOT_OWNED = "550 5.7.1 <{address}>: From: header address not owned by user {user}"
INTERNAL_ONLY = ("550 5.7.1 <{address}>: Recipient address rejected: internal address, "
                 "only local senders and our logged-in users may write to it")
