"""Every reply line the daemons send: the protocol's, the stages' defaults, the plugins'.

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
HELO_OK = "250 {hostname}"
EHLO_EXTENSIONS = ("250-PIPELINING", "250-ENHANCEDSTATUSCODES")  # besides aiosmtpd's
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
OK = "250 2.0.0 OK"
OK_SENDER = "250 2.1.0 Sender OK"
OK_RECIPIENT = "250 2.1.5 Recipient OK"
QUEUED = "250 2.0.0 Ok: queued as {queue_id}"

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_ADDRESS = "421 4.7.0 Too many connections from your address, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TIMEOUT = "421 4.4.2 {hostname} Error: timeout exceeded"

TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
USER_TOO_MANY_RECIPIENTS = ("452 4.5.3 Too many recipients: {user} may send a message to "
                            "{limit} (limits.user_recipients_per_message)")
SEND_LIMIT = ("451 4.7.1 {user} has sent {limit} messages in the last hour (the limit): "
              "try again in {minutes} minute(s)")
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
# -- a stage's refusal when the plugin that refused gave no text of its own
CONNECTION_REFUSED = "554 5.7.1 Connection refused"
HELO_REFUSED = "550 5.7.1 HELO refused"
SENDER_REFUSED = "550 5.7.1 Sender refused"
RECIPIENT_REFUSED = "550 5.7.1 Recipient refused"
TRANSACTION_REFUSED = "554 5.7.1 Transaction refused"
MESSAGE_REFUSED = "554 5.6.0 Message refused"

BARE_CR_LF = "554 5.6.0 Message refused: bare CR or LF in message data (SMTP smuggling)"

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTHZID_REFUSED = "535 5.7.8 Authorization identity must be the login"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_BAD_BASE64 = "501 5.5.2 Can't decode base64"
AUTH_BAD_PLAIN = "501 5.5.2 Can't split auth value"

# -- who may send as whom, who may write to internal addresses (sender_login, badrcptto)
SENDER_NOT_OWNED = "553 5.7.1 <{address}>: Sender address rejected: not owned by user {user}"
FROM_NOT_OWNED = "550 5.7.1 <{address}>: From: header address not owned by user {user}"
INTERNAL_ONLY = ("550 5.7.1 <{address}>: Recipient address rejected: internal address, "
                 "only local senders and our logged-in users may write to it")

# -- the plugins' refusals, by stage ---------------------------------------------------

# connect and HELO: earlytalker, loadcheck, dnsbl, karma, naughty, helo, unknown commands
EARLY_TALKER = "554 5.7.1 Talking before the greeting is not allowed"
EARLY_DATA = "554 5.7.1 Sending the message before the 354 reply is not allowed"
SERVER_BUSY = "451 4.3.2 Server busy, try again later"
LISTED = "550 5.7.1 {reason}"  # dnsbl, rhsbl: the list's TXT record or configured text
PENALTY_BOX = ("550 5.7.1 Your host {ip} is in the penalty box for sending bad mail; "
               "try again in {hours} hour(s)")
NAUGHTY = "550 5.7.1 Mail from your host is refused"
HELO_CHECK_FAILED = "550 5.7.1 HELO refused ({test}): {reason}"
UNRECOGNIZED_LIMIT = "521 5.5.1 Too many unrecognized commands, goodbye"
AUTH_TOO_MANY_FAILURES = "421 4.7.0 Too many failed authentications, goodbye"
# the ban store (appliance.security.bans): at connect, and on the failure that bans
BANNED = "421 4.7.0 {ip} is banned {left}: {reason}"
AUTH_BANNED = "421 4.7.0 Too many failed logins: {ip} is banned for {left}"

# MAIL: badmailfrom, resolvable_fromhost, spf
SENDER_BLOCKED = "550 5.7.1 Mail from <{sender}> refused"
SENDER_DOMAIN_DEFERRED = "451 4.4.3 Sender domain {domain} lookup failed, try again later"
SENDER_DOMAIN_UNKNOWN = "550 5.1.8 Sender address rejected: Domain {domain} does not exist"
SENDER_DOMAIN_NULL_MX = ("550 5.7.27 Sender address rejected: Domain {domain} accepts no "
                         "mail (null MX)")
SENDER_DOMAIN_BAD_MX = ("550 5.1.8 Sender address rejected: Domain {domain} has no usable "
                        "mail exchanger")
SENDER_DOMAIN_PRIVATE = ("550 5.1.8 Sender address rejected: Domain {domain} resolves only "
                         "to private or reserved addresses")
SENDER_DOMAIN_MALFORMED = "550 5.1.7 Sender address rejected: Malformed sender domain"
SPF_TEMPERROR = "451 4.7.24 SPF: temporary error checking {domain}, try again later"
SPF_PERMERROR = "550 5.7.24 SPF: the SPF record of {domain} is broken"
SPF_FAIL = "550 5.7.23 SPF: {domain} does not designate {ip} as permitted sender"

# RCPT: badrcptto, check_smtp_forward, greylisting, bogus_bounce
RECIPIENT_BLOCKED = "550 5.7.1 Mail to <{address}> is not accepted"
CANNOT_VERIFY_RECIPIENT = ("451 4.4.1 Cannot verify <{recipient}> with {host} now, "
                           "try again later")
GREYLISTED = "451 4.7.1 Greylisted, try again later"
BOUNCE_ONE_RECIPIENT = "550 5.7.0 A bounce has one recipient"
BOUNCE_RETURN_PATH = "550 5.7.0 A bounce must have an empty Return-Path (RFC 3834)"

# after DATA: headers, dmarc, uribl, pattern_filter, clamav, spamassassin
HEADER_MISSING = "550 5.6.0 Message has no {name} header"
HEADER_REPEATED = "554 5.6.0 Too many {name} headers"
DATE_INVALID = "554 5.6.0 The Date header is not a valid date"
DATE_FUTURE = "554 5.6.0 The Date header is too far in the future"
DATE_PAST = "554 5.6.0 The Date header is too far in the past"
DMARC_REJECT = "550 5.7.1 DMARC policy of {domain} says reject: not aligned"
DMARC_UNKNOWN = "451 4.7.5 Cannot check the DMARC policy of {domain} now, try again later"
BLOCKED_LINK = "550 5.7.1 Message contains a blocked link: {domain} ({zone})"
ATTACHMENT_BLOCKED = "550 5.7.1 Attachment refused: {name} is a blocked file type"
ARCHIVE_BOMB = "552 5.3.4 Attachment expands more than {ratio} times and was refused ({name})"
VIRUS_SCANNER_UNAVAILABLE = "451 4.3.0 Virus scanner unavailable, please try again later"
NOT_FULLY_SCANNED = "552 5.3.4 Message could not be fully scanned for viruses ({name})"
VIRUS_FOUND = "550 5.7.1 Virus found: {name}"
SPAM_FILTER_UNAVAILABLE = "451 4.3.0 Spam filter unavailable, please try again later"
SPAM_REFUSED = "550 5.7.1 Message refused as spam (score {score:.1f}, limit {limit:g})"
