"""Client autoconfiguration: the documents that let a mail client set itself up from an
address alone (Thunderbird's autoconfig, Outlook's autodiscover, an Apple
.mobileconfig), built by pure functions (documents.py) from what apply renders into
/etc/appliance/autoconfig.json (appliance.services.autoconfig), and served to nginx over
a Unix socket (server.py, `appliance autoconfig-server` under supervisord).
"""
