#!/bin/sh
# The broker's user, password and vhost from the environment, as the official image takes them.
set -eu
cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = 5672
loopback_users = none
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
default_vhost = $RABBITMQ_DEFAULT_VHOST
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
CONF
exec /usr/lib/rabbitmq/bin/rabbitmq-server
