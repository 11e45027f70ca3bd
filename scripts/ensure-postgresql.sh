#!/bin/sh
# The store's tests start a throwaway PostgreSQL cluster; they need initdb and pg_ctl.
# Install Debian's postgresql when neither is on the machine.
if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
else
  echo "PostgreSQL (initdb, pg_ctl) is not installed; PostgreSQL store tests will be skipped" >&2
fi
