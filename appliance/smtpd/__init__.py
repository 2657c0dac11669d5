"""The SMTP daemons on 25, 465 and 587: aiosmtpd with a qpsmtpd-style plugin pipeline."""
