# Shells inside the container find the appliance tools first.
export PATH="/opt/appliance/bin:$PATH"
