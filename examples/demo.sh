#!/bin/sh
# The example campaign end to end on the embedded defaults (SQLite ledger, outbox provider), in a
# throwaway home directory. Each step prints the command it runs. Usage: sh examples/demo.sh [bulksend]
set -e
here=$(cd "$(dirname "$0")" && pwd)
bulksend=${1:-bulksend}
BULKSEND_HOME=$(mktemp -d "${TMPDIR:-/tmp}/bulksend-demo.XXXXXX")
export BULKSEND_HOME
step() { printf '\n$ %s\n' "$*"; "$@"; }

step "$bulksend" credits topup 1000 --channel sms --ref demo-invoice-1
step "$bulksend" validate "$here/recipients.csv" --region GB
step "$bulksend" estimate "$here/recipients.csv" --region GB --template "$here/spring.txt" --rates "$here/rates.csv"
# Quiet hours (21:00-08:00 in each recipient's zone) are on by default: at night this campaign would end
# with "state: waiting" and "N messages wait until … UTC", and the same command would send the rest in the
# morning. The demo turns them off so that it shows the same thing at any hour (docs/schedule.md).
step "$bulksend" send "$here/campaign.toml" --yes --quiet-hours off
step "$bulksend" send "$here/campaign.toml" --yes --quiet-hours off
step "$bulksend" balance
step "$bulksend" credits audit
printf '\nThe messages are in %s/outbox/spring-sale.jsonl\n' "$BULKSEND_HOME"
