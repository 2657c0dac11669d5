# Shells inside the container find the appliance tools first.
export PATH="/opt/appliance/bin:$PATH"
# The image ships nano and vi (vim-tiny): `docker compose exec appliance nano ...` or
# `vi ...`; tools that open an editor use EDITOR unless the admin set another.
export EDITOR="${EDITOR:-nano}" VISUAL="${VISUAL:-nano}"
