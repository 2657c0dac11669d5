"""Every reply line the daemons send that is not a plugin's own text.

Tests import these constants, so a changed wording changes code and tests together.
"""

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
