"""DMARC (RFC 7489) in one place: `evaluate` judges a message (the dmarc plugin calls it),
`reports` stores the results and sends the aggregate reports (`appliance dmarc-report`)."""
