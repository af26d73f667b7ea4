#!/bin/sh
# The example campaign end to end on the embedded defaults, in a throwaway home directory.
# Each step prints the command it runs. Usage: sh examples/demo.sh [path/to/bulksend]
set -e
here=$(cd "$(dirname "$0")" && pwd)
bulksend=${1:-bulksend}
BULKSEND_HOME=$(mktemp -d "${TMPDIR:-/tmp}/bulksend-demo.XXXXXX")
export BULKSEND_HOME
step() { printf '\n$ %s\n' "$*"; "$@"; }

step "$bulksend" validate "$here/recipients.csv" --region GB
step "$bulksend" estimate "$here/recipients.csv" --region GB --template "$here/spring.txt" --rates "$here/rates.csv"
printf '\n(demo home: %s)\n' "$BULKSEND_HOME"
